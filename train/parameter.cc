#include "train/parameter.h"

namespace jigsaw::train {

std::vector<float> Parameter::Cut(const std::vector<float>& global) const {
  std::vector<float> out(local_size());
  if (shape.size() == 1) {
    std::copy(global.begin() + origin[0], global.begin() + origin[0] + extent[0], out.begin());
    return out;
  }
  for (int64_t r = 0; r < extent[0]; ++r) {
    const auto* src = global.data() + (origin[0] + r) * shape[1] + origin[1];
    std::copy(src, src + extent[1], out.begin() + r * extent[1]);
  }
  return out;
}

namespace {
uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

float InitValue(uint64_t seed, int64_t tensor, int64_t index, float bound) {
  // A counter-based generator: a hash of (seed, tensor, index), so any block is made without the rest.
  const uint64_t h =
      SplitMix64(SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(tensor)) ^ static_cast<uint64_t>(index));
  const double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  return static_cast<float>((2.0 * u - 1.0) * bound);
}

}  // namespace jigsaw::train
