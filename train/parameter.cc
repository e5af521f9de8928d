#include "train/parameter.h"

namespace jigsaw::train {

std::vector<int64_t> Parameter::StoredIndices() const {
  std::vector<int64_t> out;
  out.reserve(stored_box.num_elements());
  const size_t rank = stored_shape.size();
  std::vector<int64_t> at(rank, 0);  // an odometer over the box, last dimension fastest
  for (int64_t n = stored_box.num_elements(); n > 0; --n) {
    int64_t flat = 0;
    for (size_t d = 0; d < rank; ++d) flat = flat * stored_shape[d] + stored_box.origin[d] + at[d];
    out.push_back(flat);
    for (size_t d = rank; d-- > 0;) {
      if (++at[d] < stored_box.shape[d]) break;
      at[d] = 0;
    }
  }
  return out;
}

std::vector<float> Parameter::Cut(const std::vector<float>& stored) const {
  std::vector<float> out;
  out.reserve(local_size());
  for (int64_t k : StoredIndices()) out.push_back(stored.at(k));
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
