// Which time indices each batch holds: a seeded permutation per epoch (the same on every machine and for
// any thread count), split between data-parallel replicas into disjoint, equally long lists (the remainder
// is dropped so that no replica gets an extra batch), cut into batches. Every model-parallel rank of a
// group uses the same dp_rank and so gets the same time indices.
#pragma once

#include <cstdint>
#include <vector>

namespace jigsaw {

class Sampler {
 public:
  // `valid` are the usable sample time indices (sorted).
  Sampler(std::vector<int64_t> valid, uint64_t seed, bool shuffle, int64_t dp_rank, int64_t dp_size,
          int64_t batch_size);

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t samples_per_epoch() const { return batches_per_epoch_ * batch_size_; }
  // The time indices of batch `batch` of epoch `epoch` for this replica.
  std::vector<int64_t> Batch(int64_t epoch, int64_t batch) const;
  // This replica's whole epoch, in order.
  std::vector<int64_t> Epoch(int64_t epoch) const;

 private:
  std::vector<int64_t> valid_;
  uint64_t seed_;
  bool shuffle_;
  int64_t dp_rank_, dp_size_, batch_size_, per_replica_, batches_per_epoch_;
};

}  // namespace jigsaw
