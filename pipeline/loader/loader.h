// The prefetch loader: one rank's tiles of a jigsaw-shard store, batch after batch, read ahead by a TBB
// pipeline (fetch -> decode -> normalise into the batch buffer) with a bounded number of batches in
// flight, so that the consumer (a GPU training step) never waits on storage.
//
// Thread safety: one consumer thread calls Next()/state()/Restore(); the pipeline runs on TBB workers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace jigsaw {

// Where batch buffers come from: page-locked memory when built with CUDA, aligned host memory otherwise.
struct BufferAllocator {
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* p, size_t bytes)> release;
  std::string name;
};
BufferAllocator DefaultBufferAllocator();

// The element type of the batches handed out: float32, or bfloat16 (raw 16-bit words, round to nearest even).
enum class BatchType { kFloat32, kBFloat16 };
Result<BatchType> ParseBatchType(std::string_view name);  // "float32" or "bfloat16"; else naming it
inline int BatchTypeBytes(BatchType t) { return t == BatchType::kFloat32 ? 4 : 2; }

struct LoaderOptions {
  int64_t rank = 0;  // model-parallel rank: which tile (r = (i * LON + j) * CH + k)
  int64_t dp_rank = 0, dp_size = 1;
  int64_t batch_size = 1;
  int64_t lead_steps = 1;  // targets at t + step ... t + lead_steps * step
  bool normalize = false;  // (x - mean) / std with the store's statistics
  BatchType dtype = BatchType::kFloat32;
  uint64_t seed = 0;
  bool shuffle = true;
  std::string start, end;  // time window of the samples and their targets (inclusive); default all
  int64_t prefetch = 4;    // batches in flight (memory bound = prefetch x batch bytes)
  int threads = 0;         // worker threads of the pipeline (0: all cores); results do not depend on it
  std::shared_ptr<BufferAllocator> allocator;  // default: DefaultBufferAllocator()
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch Next() returns
};

struct LoaderStats {
  int64_t batches = 0;
  int64_t bytes_read = 0;       // fetched from storage (encoded), read-ahead included
  int64_t bytes_decoded = 0;    // chunk bytes decoded for the delivered batches
  int64_t bytes_delivered = 0;  // tile bytes handed to the consumer (before dtype conversion)
  double seconds = 0;           // since the first Next()
  double consumer_wait_seconds = 0;
  // Decoded bytes per delivered byte: 1.00 for a tile-aligned store.
  double read_amplification() const { return bytes_delivered ? double(bytes_decoded) / bytes_delivered : 0; }
};

// One batch: data [batch, 1 + lead_steps, channels, lat, lon] for this rank's tile, and the input times (and
// members: in a store of ensemble members every (time, member) pair is a sample, its targets the same
// member's later times).
class Batch {
 public:
  virtual ~Batch() = default;
  virtual void* data() = 0;
  virtual size_t bytes() const = 0;
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& times() const { return times_; }  // seconds since 1970, one per sample
  // The ensemble member of each sample (a store sharded with --members); empty for a store without members.
  const std::vector<int64_t>& members() const { return members_; }
  int64_t epoch() const { return epoch_; }
  int64_t index() const { return index_; }

 protected:
  std::vector<int64_t> shape_, times_, members_;
  int64_t epoch_ = 0, index_ = 0;
};

class Loader {
 public:
  virtual ~Loader() = default;
  // Opens the store at `url` (refusing an incomplete one, naming why) for one rank of its tile grid.
  static Result<std::unique_ptr<Loader>> Open(std::string_view url, const LoaderOptions& options);

  // The next batch; epochs follow one another without end.
  virtual Result<std::shared_ptr<Batch>> Next() = 0;
  virtual LoaderState state() const = 0;
  // Continues exactly at `state` (also with another number of threads).
  virtual Status Restore(const LoaderState& state) = 0;
  virtual LoaderStats stats() const = 0;

  virtual int64_t batches_per_epoch() const = 0;
  virtual std::vector<int64_t> batch_shape() const = 0;
  virtual size_t batch_bytes() const = 0;
  virtual std::vector<std::string> channels() const = 0;  // this rank's channels
  // The tile: [channel, lat, lon] origin and shape in the global grid.
  virtual std::vector<int64_t> tile_origin() const = 0;
  virtual std::vector<int64_t> tile_shape() const = 0;
  virtual std::string allocator_name() const = 0;

  // This rank's tile of the store's time-independent fields (jigsaw-shard --static): [static channels of
  // its channel group, lat, lon] float32 in C order, normalised with their own statistics when
  // LoaderOptions::normalize is set (a constant field becomes 0). Read once, at Open; empty for a store
  // without static fields.
  virtual const std::vector<float>& static_tile() const = 0;
  virtual std::vector<int64_t> static_tile_shape() const = 0;    // {0, lat, lon} without static fields
  virtual std::vector<std::string> static_channels() const = 0;  // this rank's
};

}  // namespace jigsaw
