// The tile convention (docs/formats.md): a grid LATxLONxCH; rank r owns tile (i, j, k) with
// r = (i * LON + j) * CH + k. Each dimension splits by the one rule of parallel/split.h.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "parallel/split.h"

namespace jigsaw {

struct TileGrid {
  int64_t lat = 1, lon = 1, ch = 1;

  static Result<TileGrid> Parse(std::string_view text);  // "1x2x2"
  std::string ToString() const;
  int64_t num_tiles() const { return lat * lon * ch; }

  struct Tile {
    int64_t i, j, k;
  };
  Tile TileOfRank(int64_t rank) const;
  int64_t RankOfTile(const Tile& t) const { return (t.i * lon + t.j) * ch + t.k; }
};

}  // namespace jigsaw
