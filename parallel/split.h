// The one split rule (docs/formats.md, "The tile convention"): a dimension of n split in p parts uses the Zarr
// regular-chunk rule, c = ceil(n / p), part q covers [q*c, min((q+1)*c, n)); a split that leaves a part
// empty is refused. Tile grids, checkpoint tiles and the trainer's blocks all split by it.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace jigsaw {

// Chunk length for n split in p parts: ceil(n / p).
inline int64_t SplitLength(int64_t n, int64_t p) { return (n + p - 1) / p; }
// [begin, end) of part q.
std::pair<int64_t, int64_t> SplitPart(int64_t n, int64_t p, int64_t q);
// kInvalidArgument naming `what` when splitting n in p parts leaves a part empty (or p < 1, p > n).
Status CheckSplit(int64_t n, int64_t p, std::string_view what);
// The p + 1 part boundaries of n split in p parts: part q is [b[q], b[q+1]).
std::vector<int64_t> SplitBounds(int64_t n, int64_t p);

}  // namespace jigsaw
