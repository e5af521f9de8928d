#include "parallel/split.h"

#include <algorithm>
#include <string>

namespace jigsaw {

std::pair<int64_t, int64_t> SplitPart(int64_t n, int64_t p, int64_t q) {
  int64_t c = SplitLength(n, p);
  return {std::min(q * c, n), std::min((q + 1) * c, n)};
}

Status CheckSplit(int64_t n, int64_t p, std::string_view what) {
  if (p < 1 || p > n || (p - 1) * SplitLength(n, p) >= n) {
    return InvalidArgumentError("cannot split " + std::string(what) + " of length " + std::to_string(n) + " in " +
                                std::to_string(p) + " parts: a part would be empty (parts are ceil(n/p) = " +
                                std::to_string(SplitLength(n, std::max<int64_t>(p, 1))) + " long)");
  }
  return OkStatus();
}

std::vector<int64_t> SplitBounds(int64_t n, int64_t p) {
  std::vector<int64_t> b(p + 1);
  for (int64_t q = 0; q <= p; ++q) b[q] = std::min(q * SplitLength(n, p), n);
  return b;
}

}  // namespace jigsaw
