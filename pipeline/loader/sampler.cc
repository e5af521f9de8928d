#include "pipeline/loader/sampler.h"

#include <cstddef>
#include <utility>

namespace jigsaw {
namespace {

// splitmix64: a fixed, portable generator (std::shuffle's algorithm is implementation-defined).
uint64_t Mix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Sampler::Sampler(std::vector<int64_t> valid, uint64_t seed, bool shuffle, int64_t dp_rank, int64_t dp_size,
                 int64_t batch_size)
    : valid_(std::move(valid)),
      seed_(seed),
      shuffle_(shuffle),
      dp_rank_(dp_rank),
      dp_size_(dp_size),
      batch_size_(batch_size) {
  per_replica_ = static_cast<int64_t>(valid_.size()) / dp_size_;
  batches_per_epoch_ = per_replica_ / batch_size_;
}

std::vector<int64_t> Sampler::Epoch(int64_t epoch) const {
  std::vector<int64_t> order = valid_;
  if (shuffle_) {
    uint64_t state = seed_ * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(epoch) + 1;
    for (size_t i = order.size(); i > 1; --i) {
      // Unbiased enough for index shuffling: 64-bit modulo over at most millions of entries.
      size_t j = Mix(state) % i;
      std::swap(order[i - 1], order[j]);
    }
  }
  // Replica r takes positions r, r + dp_size, ...: disjoint, and equally long after truncation.
  std::vector<int64_t> mine;
  mine.reserve(per_replica_);
  for (int64_t k = 0; k < per_replica_; ++k) mine.push_back(order[k * dp_size_ + dp_rank_]);
  return mine;
}

std::vector<int64_t> Sampler::Batch(int64_t epoch, int64_t batch) const {
  std::vector<int64_t> all = Epoch(epoch);
  return std::vector<int64_t>(all.begin() + batch * batch_size_, all.begin() + (batch + 1) * batch_size_);
}

}  // namespace jigsaw
