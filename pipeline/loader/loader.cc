#include "pipeline/loader/loader.h"

#include "storage/kvstore/checksum_record.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/loader/buffer_pool.h"
#include "pipeline/loader/sampler.h"
#include "pipeline/shard/shard_store.h"
#include "pipeline/shard/static_fields.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "base/first_error.h"
#include "storage/kvstore/counting.h"
#include "storage/kvstore/io_threads.h"

namespace jigsaw {
namespace {

class OwnedBatch final : public Batch {
 public:
  OwnedBatch(std::shared_ptr<BufferPool> pool, std::vector<int64_t> shape)
      : pool_(std::move(pool)), bytes_(pool_->bytes()) {
    data_ = pool_->Get();
    shape_ = std::move(shape);
  }
  ~OwnedBatch() override {
    if (data_) pool_->Put(data_);
  }
  void* data() override { return data_; }
  size_t bytes() const override { return bytes_; }
  bool ok() const { return data_ != nullptr; }
  std::atomic<int64_t> decoded{0};  // chunk bytes decoded to fill this batch
  void Set(int64_t epoch, int64_t index, std::vector<int64_t> times, std::vector<int64_t> members) {
    epoch_ = epoch;
    index_ = index;
    times_ = std::move(times);
    members_ = std::move(members);
  }

 private:
  std::shared_ptr<BufferPool> pool_;
  size_t bytes_;
  void* data_ = nullptr;
};

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

class LoaderImpl final : public Loader {
 public:
  ~LoaderImpl() override { StopProducer(); }

  Status Init(std::string_view url, const LoaderOptions& o) {
    o_ = o;
    if (!o_.allocator) o_.allocator = std::make_shared<BufferAllocator>(DefaultBufferAllocator());
    if (o.batch_size < 1) return InvalidArgumentError("batch_size must be at least 1");
    if (o.lead_steps < 0) return InvalidArgumentError("lead_steps must not be negative");
    if (o.dp_size < 1 || o.dp_rank < 0 || o.dp_rank >= o.dp_size) {
      return InvalidArgumentError("dp_rank " + std::to_string(o.dp_rank) + " is outside dp_size " +
                                  std::to_string(o.dp_size));
    }
    // Each batch ahead is a buffer: a prefetch of thousands is a typo (and 2 prefetch + 2 buffers must not overflow).
    if (o.prefetch < 1 || o.prefetch > 1024)
      return InvalidArgumentError("prefetch " + std::to_string(o.prefetch) + " is not in [1, 1024] batches");
    ASSIGN_OR_RETURN(auto base, OpenCheckedKvStore(url));  // every chunk checked against the checksum record
    store_ = std::make_unique<CountingKvStore>(std::move(base));
    ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(store_.get()));
    if (!info.complete) {
      return FailedPreconditionError(store_->url() +
                                     " is not complete (its jigsaw-shard run did not finish); run it again to finish");
    }
    grid_ = info.tiles;
    if (o.rank < 0 || o.rank >= grid_.num_tiles()) {
      return InvalidArgumentError("rank " + std::to_string(o.rank) + " is outside the store's tile grid " +
                                  grid_.ToString() + " (ranks 0.." + std::to_string(grid_.num_tiles() - 1) + ")");
    }
    ASSIGN_OR_RETURN(data_, Array::Open(store_.get(), "data"));
    // The store is complete (checked above): every chunk of a time it holds was written; one that is not
    // there is corruption, not fill (jigsaw-shard drops all-NaN chunks only for missing times, which the
    // loader never reads).
    data_->RequireEveryChunk(true);
    const ArrayMetadata& m = data_->metadata();
    members_ = info.members;
    const int64_t M = num_members();
    cd_ = members_.empty() ? 1 : 2;
    if (m.rank() != 3 + cd_ || (cd_ == 2 && m.shape[1] != M)) {
      return DataLossError(store_->url() + ": data is not [time, " + (cd_ == 2 ? "member, " : "") +
                           "channel, lat, lon] as its plan says");
    }
    const int64_t T = m.shape[0];
    TileGrid::Tile t = grid_.TileOfRank(o.rank);
    auto [c0, c1] = SplitPart(m.shape[cd_], grid_.ch, t.k);
    auto [y0, y1] = SplitPart(m.shape[cd_ + 1], grid_.lat, t.i);
    auto [x0, x1] = SplitPart(m.shape[cd_ + 2], grid_.lon, t.j);
    tile_origin_ = {c0, y0, x0};
    tile_shape_ = {c1 - c0, y1 - y0, x1 - x0};
    if (static_cast<int64_t>(info.channels.size()) != m.shape[cd_]) {
      return DataLossError(store_->url() + ": the plan names " + std::to_string(info.channels.size()) +
                           " channels, data holds " + std::to_string(m.shape[cd_]));
    }
    for (int64_t c = c0; c < c1; ++c) channels_.push_back(info.channels[c]);
    // Times, missing times, the window.
    ASSIGN_OR_RETURN(auto time_array, Array::Open(store_.get(), "time"));
    times_.resize(T);
    RETURN_IF_ERROR(
        time_array->Read(time_array->full_box(), std::span<char>(reinterpret_cast<char*>(times_.data()), T * 8)));
    const std::set<std::string>& missing = info.missing_times;
    int64_t w0 = times_.front(), w1 = times_.back();
    if (!o.start.empty()) {
      ASSIGN_OR_RETURN(w0, ParseTimeBound(o.start, false));
    }
    if (!o.end.empty()) {
      ASSIGN_OR_RETURN(w1, ParseTimeBound(o.end, true));
    }
    std::vector<int64_t> valid;
    for (int64_t i = 0; i + o.lead_steps < T; ++i) {
      if (times_[i] < w0 || times_[i + o.lead_steps] > w1) continue;
      bool ok = true;
      for (int64_t j = 0; j <= o.lead_steps; ++j) ok &= !missing.count(FormatIsoTime(times_[i + j]));
      if (ok)  // a sample is (time, member): i * M + member
        for (int64_t e = 0; e < M; ++e) valid.push_back(i * M + e);
    }
    sampler_ = std::make_unique<Sampler>(valid, o.seed, o.shuffle, o.dp_rank, o.dp_size, o.batch_size);
    if (sampler_->batches_per_epoch() == 0) {
      return InvalidArgumentError(store_->url() + ": the window holds " + std::to_string(valid.size()) +
                                  " usable samples, fewer than one batch of " + std::to_string(o.batch_size) +
                                  " for each of " + std::to_string(o.dp_size) + " data-parallel replicas");
    }
    if (o.normalize) {
      for (const char* name : {"mean", "std"}) {
        ASSIGN_OR_RETURN(auto a, Array::Open(store_.get(), name));
        std::vector<double> v(a->metadata().shape[0]);
        RETURN_IF_ERROR(a->Read(a->full_box(), std::span<char>(reinterpret_cast<char*>(v.data()), v.size() * 8)));
        auto& dst = std::string(name) == "mean" ? mean_ : inv_std_;
        for (int64_t c = c0; c < c1; ++c)
          dst.push_back(std::string(name) == "mean" ? v[c] : (v[c] > 0 ? 1.0 / v[c] : 1.0));
      }
    }
    RETURN_IF_ERROR(ReadStaticTile(info, t.k));
    const ShardingSpec* sh = m.codecs->sharding();
    inner_chunk_ = sh ? sh->inner_shape : m.chunks;
    StartProducer({0, 0});
    return OkStatus();
  }

  // The rank's static fields: its channel group of them (the split rule of the data's channels) on its tile.
  Status ReadStaticTile(const ShardStoreInfo& info, int64_t k) {
    const int64_t S = static_cast<int64_t>(info.static_channels.size());
    if (S == 0) return OkStatus();
    auto [s0, s1] = SplitPart(S, grid_.ch, k);
    for (int64_t s = s0; s < s1; ++s) static_channels_.push_back(info.static_channels[s]);
    const Box box{{s0, tile_origin_[1], tile_origin_[2]}, {s1 - s0, tile_shape_[1], tile_shape_[2]}};
    ASSIGN_OR_RETURN(static_tile_, ReadStaticBox(store_.get(), S, info.height, info.width, box, o_.normalize));
    return OkStatus();
  }

  Result<std::shared_ptr<Batch>> Next() override {
    auto t0 = std::chrono::steady_clock::now();
    if (!started_) {
      started_ = true;
      first_next_ = t0;
    }
    std::unique_lock lock(mu_);
    ready_cv_.wait(lock, [&] { return !queue_.empty() || !error_.ok(); });
    stats_.consumer_wait_seconds += Seconds(std::chrono::steady_clock::now() - t0);
    if (queue_.empty()) return error_;
    std::shared_ptr<OwnedBatch> b = std::move(queue_.front());
    queue_.pop_front();
    space_cv_.notify_all();
    next_ = {b->epoch(), b->index() + 1};
    if (next_.batch == sampler_->batches_per_epoch()) next_ = {next_.epoch + 1, 0};
    stats_.batches += 1;
    stats_.bytes_delivered += delivered_per_batch_;
    stats_.bytes_decoded += b->decoded.load();
    return std::shared_ptr<Batch>(std::move(b));
  }

  LoaderState state() const override {
    std::lock_guard lock(mu_);
    return next_;
  }

  Status Restore(const LoaderState& s) override {
    if (s.epoch < 0 || s.batch < 0 || s.batch >= sampler_->batches_per_epoch()) {
      return InvalidArgumentError("loader state (epoch " + std::to_string(s.epoch) + ", batch " +
                                  std::to_string(s.batch) + ") is outside an epoch of " +
                                  std::to_string(sampler_->batches_per_epoch()) + " batches");
    }
    StopProducer();
    StartProducer(s);
    return OkStatus();
  }

  LoaderStats stats() const override {
    std::lock_guard lock(mu_);
    LoaderStats s = stats_;
    s.bytes_read = store_->bytes();
    s.seconds = started_ ? Seconds(std::chrono::steady_clock::now() - first_next_) : 0;
    return s;
  }

  int64_t batches_per_epoch() const override { return sampler_->batches_per_epoch(); }
  std::vector<int64_t> batch_shape() const override {
    return {o_.batch_size, 1 + o_.lead_steps, tile_shape_[0], tile_shape_[1], tile_shape_[2]};
  }
  size_t batch_bytes() const override {
    size_t n = 1;
    for (int64_t d : batch_shape()) n *= d;
    return n * BatchTypeBytes(o_.dtype);
  }
  std::vector<std::string> channels() const override { return channels_; }
  std::vector<int64_t> tile_origin() const override { return tile_origin_; }
  std::vector<int64_t> tile_shape() const override { return tile_shape_; }
  std::string allocator_name() const override { return o_.allocator->name; }
  const std::vector<float>& static_tile() const override { return static_tile_; }
  std::vector<int64_t> static_tile_shape() const override {
    return {static_cast<int64_t>(static_channels_.size()), tile_shape_[1], tile_shape_[2]};
  }
  std::vector<std::string> static_channels() const override { return static_channels_; }

 private:
  struct Work {
    std::shared_ptr<OwnedBatch> batch;
    std::vector<int64_t> indices;
    Status status;
  };

  // Decoded chunk bytes touched by a tile box (1.00 x the box for a tile-aligned store).
  int64_t DecodedBytes(const Box& box) const {
    int64_t chunks = 1, chunk_elems = 1;
    for (size_t d = 0; d < box.shape.size(); ++d) {
      int64_t lo = box.origin[d] / inner_chunk_[d], hi = (box.origin[d] + box.shape[d] - 1) / inner_chunk_[d];
      chunks *= hi - lo + 1;
      chunk_elems *= inner_chunk_[d];
    }
    return chunks * chunk_elems * data_->metadata().dtype.size;
  }

  Status Fill(Work& w) {
    const int64_t k1 = 1 + o_.lead_steps;
    const int64_t plane = tile_shape_[1] * tile_shape_[2];
    const int64_t tile_elems = tile_shape_[0] * plane;
    const DataType& stored = data_->metadata().dtype;
    const bool bf16_out = o_.dtype == BatchType::kBFloat16;
    FirstError err;
    RunWithIoThreads(*store_, [&] {
      tbb::parallel_for(int64_t{0}, o_.batch_size * k1, [&](int64_t job) {
        const int64_t s = job / k1, j = job % k1;
        const int64_t ti = w.indices[s] / num_members() + j, member = w.indices[s] % num_members();
        const bool e = cd_ == 2;
        const Box box{DataIndex(e, ti, member, tile_origin_[0], tile_origin_[1], tile_origin_[2]),
                      DataIndex(e, 1, 1, tile_shape_[0], tile_shape_[1], tile_shape_[2])};
        // Decode straight into the batch when the types agree; else through a scratch buffer.
        std::vector<char> scratch;
        char* dst = static_cast<char*>(w.batch->data()) + job * tile_elems * (bf16_out ? 2 : 4);
        const bool direct = stored.name == "float32" && !bf16_out;
        if (!direct) scratch.resize(tile_elems * stored.size);
        std::span<char> target = direct ? std::span<char>(dst, tile_elems * 4) : std::span<char>(scratch);
        Status st;
        tbb::this_task_arena::isolate([&] { st = data_->Read(box, target); });
        w.batch->decoded += DecodedBytes(box);
        if (!st.ok()) return err.Set(st.Annotate("time " + FormatIsoTime(times_[ti])));
        if (direct && !o_.normalize) return;  // decoded in place as delivered: nothing to do per element
        // Widen, normalise, narrow: one pass per element.
        for (int64_t c = 0; c < tile_shape_[0]; ++c) {
          const double mean = o_.normalize ? mean_[c] : 0.0, inv = o_.normalize ? inv_std_[c] : 1.0;
          for (int64_t i = c * plane; i < (c + 1) * plane; ++i) {
            float v;
            if (direct) {
              std::memcpy(&v, dst + i * 4, 4);
            } else if (stored.size == 4) {
              std::memcpy(&v, scratch.data() + i * 4, 4);
            } else {
              uint16_t h;
              std::memcpy(&h, scratch.data() + i * 2, 2);
              v = stored.name == "float16" ? HalfToFloat(h) : BFloat16ToFloat(h);
            }
            if (o_.normalize) v = static_cast<float>((v - mean) * inv);
            if (bf16_out) {
              uint16_t h = FloatToBFloat16(v);
              std::memcpy(dst + i * 2, &h, 2);
            } else {
              std::memcpy(dst + i * 4, &v, 4);
            }
          }
        }
      });
    });
    return err.Get();
  }

  void StartProducer(LoaderState from) {
    {
      std::lock_guard lock(mu_);
      stop_ = false;
      queue_.clear();
      error_ = OkStatus();
      next_ = from;
    }
    delivered_per_batch_ = o_.batch_size * (1 + o_.lead_steps) * tile_shape_[0] * tile_shape_[1] * tile_shape_[2] *
                           data_->metadata().dtype.size;
    if (!pool_) pool_ = std::make_shared<BufferPool>(o_.allocator, batch_bytes(), 2 * o_.prefetch + 2);
    producer_ = std::thread([this, from] { Produce(from); });
  }

  void StopProducer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    space_cv_.notify_all();
    if (producer_.joinable()) producer_.join();
  }

  void Produce(LoaderState from) {
    const int64_t bpe = sampler_->batches_per_epoch();
    int64_t g = from.epoch * bpe + from.batch;
    int64_t cached_epoch = -1;
    std::vector<int64_t> order;
    const auto shape = batch_shape();
    // From a remote store, every batch in flight is fetched at once (each waits on the network).
    int threads = o_.threads > 0             ? o_.threads
                  : store_->io_threads() > 0 ? std::max<int>(tbb::info::default_concurrency(), o_.prefetch)
                                             : tbb::task_arena::automatic;
    tbb::task_arena arena(threads);
    arena.execute([&] {
      tbb::parallel_pipeline(
          static_cast<size_t>(o_.prefetch),
          tbb::make_filter<void, Work*>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Work* {
            {
              std::lock_guard lock(mu_);
              if (stop_ || !error_.ok()) {
                fc.stop();
                return nullptr;
              }
            }
            auto* w = new Work;
            const int64_t epoch = g / bpe, index = g % bpe;
            ++g;
            if (epoch != cached_epoch) {
              order = sampler_->Epoch(epoch);
              cached_epoch = epoch;
            }
            w->indices.assign(order.begin() + index * o_.batch_size, order.begin() + (index + 1) * o_.batch_size);
            w->batch = std::make_shared<OwnedBatch>(pool_, shape);
            std::vector<int64_t> t;
            std::vector<int64_t> mv;
            for (int64_t i : w->indices) {
              t.push_back(times_[i / num_members()]);
              if (!members_.empty()) mv.push_back(members_[i % num_members()]);
            }
            w->batch->Set(epoch, index, std::move(t), std::move(mv));
            if (!w->batch->ok())
              w->status = IoError("cannot allocate a batch buffer of " + std::to_string(batch_bytes()) + " bytes");
            return w;
          }) & tbb::make_filter<Work*, Work*>(tbb::filter_mode::parallel, [&](Work* w) {
            if (w->status.ok()) w->status = Fill(*w);
            return w;
          }) & tbb::make_filter<Work*, void>(tbb::filter_mode::serial_in_order, [&](Work* w) {
            std::unique_ptr<Work> owned(w);
            std::unique_lock lock(mu_);
            if (!w->status.ok()) {
              if (error_.ok()) error_ = w->status;
              ready_cv_.notify_all();
              return;
            }
            // Bounded: at most `prefetch` finished batches wait for the consumer.
            space_cv_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < o_.prefetch; });
            if (stop_) return;
            queue_.push_back(std::move(w->batch));
            ready_cv_.notify_all();
          }));
    });
  }

  LoaderOptions o_;
  std::unique_ptr<CountingKvStore> store_;
  std::unique_ptr<Array> data_;
  TileGrid grid_;
  std::vector<int64_t> tile_origin_, tile_shape_, times_, inner_chunk_;
  std::vector<std::string> channels_;
  std::vector<double> mean_, inv_std_;
  std::vector<float> static_tile_;
  std::vector<std::string> static_channels_;
  std::vector<int64_t> members_;  // of an ensemble store; a sample is then (time index, member index)
  int cd_ = 1;                    // data's channel dimension: 2 with members
  int64_t num_members() const { return members_.empty() ? 1 : static_cast<int64_t>(members_.size()); }
  std::unique_ptr<Sampler> sampler_;
  std::shared_ptr<BufferPool> pool_;
  std::thread producer_;
  int64_t delivered_per_batch_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point first_next_;

  mutable std::mutex mu_;  // guards the members below
  std::condition_variable ready_cv_, space_cv_;
  std::deque<std::shared_ptr<OwnedBatch>> queue_;
  Status error_;
  bool stop_ = false;
  LoaderState next_;
  LoaderStats stats_;
};

}  // namespace

Result<BatchType> ParseBatchType(std::string_view name) {
  if (name == "float32") return BatchType::kFloat32;
  if (name == "bfloat16") return BatchType::kBFloat16;
  return InvalidArgumentError("batch dtype \"" + std::string(name) + "\" is neither float32 nor bfloat16");
}

Result<std::unique_ptr<Loader>> Loader::Open(std::string_view url, const LoaderOptions& options) {
  auto l = std::make_unique<LoaderImpl>();
  RETURN_IF_ERROR(l->Init(url, options));
  return std::unique_ptr<Loader>(std::move(l));
}

}  // namespace jigsaw
