#include "pipeline/grid/tile_grid.h"

#include <charconv>

namespace jigsaw {

Result<TileGrid> TileGrid::Parse(std::string_view text) {
  int64_t v[3];
  std::string_view s = text;
  for (int i = 0; i < 3; ++i) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v[i]);
    if (ec != std::errc() || v[i] < 1) {
      return InvalidArgumentError("tile grid \"" + std::string(text) +
                                  "\" is not LATxLONxCH with positive parts (e.g. 1x2x2)");
    }
    s.remove_prefix(p - s.data());
    if (i < 2) {
      if (s.empty() || s[0] != 'x')
        return InvalidArgumentError("tile grid \"" + std::string(text) + "\" is not LATxLONxCH (e.g. 1x2x2)");
      s.remove_prefix(1);
    }
  }
  if (!s.empty()) return InvalidArgumentError("tile grid \"" + std::string(text) + "\" is not LATxLONxCH (e.g. 1x2x2)");
  return TileGrid{v[0], v[1], v[2]};
}

std::string TileGrid::ToString() const {
  return std::to_string(lat) + "x" + std::to_string(lon) + "x" + std::to_string(ch);
}

TileGrid::Tile TileGrid::TileOfRank(int64_t rank) const {
  int64_t k = rank % ch, rest = rank / ch;
  return {rest / lon, rest % lon, k};
}

}  // namespace jigsaw
