// The tile convention (DESIGN.md): a grid LATxLONxCH; rank r owns tile (i, j, k) with
// r = (i * LON + j) * CH + k. A dimension of n split in p parts uses the Zarr regular-chunk rule:
// c = ceil(n / p), part q covers [q*c, min((q+1)*c, n)); a split that leaves a part empty is refused.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/status.h"

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

// Chunk length for n split in p parts: ceil(n / p).
inline int64_t SplitLength(int64_t n, int64_t p) { return (n + p - 1) / p; }
// [begin, end) of part q.
std::pair<int64_t, int64_t> SplitPart(int64_t n, int64_t p, int64_t q);
// kInvalidArgument naming `what` when splitting n in p parts leaves a part empty (or p < 1, p > n).
Status CheckSplit(int64_t n, int64_t p, std::string_view what);

}  // namespace jigsaw
