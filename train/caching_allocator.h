// A caching allocator over a raw one (cudaMalloc / cudaFree for the CUDA backend): a freed block is kept
// under its size class and handed out again for the next request of that class, so that work which frees
// and allocates the same sizes over and over (a training step's temporaries, a rollout's per-step buffers,
// the GEMM-rate probes) calls the raw allocator, which synchronises the whole device, only the first time.
// Size classes: multiples of 512 bytes up to 1 MiB, of 2 MiB above. When the raw allocator fails, the
// cache is given back and the request tried once more. Not thread-safe (a backend is used from one thread).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

namespace jigsaw::train {

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t bytes)>;  // nullptr when out of memory
  using RawFree = std::function<void(void* p)>;
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free)
      : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}
  // Every block still cached goes back to the raw allocator (blocks still in use are the owner's leak).
  ~CachingAllocator() { ReleaseCached(); }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  static size_t SizeClass(size_t bytes) {
    constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
    if (bytes == 0) bytes = 1;
    return bytes <= kSmallLimit ? (bytes + kSmall - 1) / kSmall * kSmall : (bytes + kLarge - 1) / kLarge * kLarge;
  }

  // A block of at least `bytes` (its size class); nullptr when even an emptied cache cannot make room.
  void* Allocate(size_t bytes) {
    const size_t size = SizeClass(bytes);
    auto it = cached_.find(size);
    void* p = nullptr;
    if (it != cached_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
      ++stats_.cache_hits;
    } else {
      p = raw_alloc_(size);
      if (!p && stats_.bytes_cached > 0) {
        ReleaseCached();
        p = raw_alloc_(size);
      }
      if (!p) return nullptr;
      ++stats_.raw_allocs;
      stats_.bytes_reserved += size;
      stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.bytes_reserved);
    }
    in_use_[p] = size;
    stats_.bytes_in_use += size;
    return p;
  }

  // Back to the cache. p must come from Allocate (nullptr is ignored).
  void Free(void* p) {
    if (!p) return;
    auto it = in_use_.find(p);
    if (it == in_use_.end()) return;  // not ours: the owner's bug, but never a double free of the raw block
    const size_t size = it->second;
    in_use_.erase(it);
    stats_.bytes_in_use -= size;
    stats_.bytes_cached += size;
    cached_[size].push_back(p);
  }

  // Every cached block back to the raw allocator.
  void ReleaseCached() {
    for (auto& [size, blocks] : cached_) {
      for (void* p : blocks) {
        raw_free_(p);
        ++stats_.raw_frees;
        stats_.bytes_reserved -= size;
      }
    }
    cached_.clear();
    stats_.bytes_cached = 0;
  }

  struct Stats {
    int64_t raw_allocs = 0, raw_frees = 0, cache_hits = 0;
    size_t bytes_in_use = 0, bytes_cached = 0;  // by size class
    size_t bytes_reserved = 0, peak_reserved = 0;  // what the raw allocator holds for us (in use + cached)
  };
  const Stats& stats() const { return stats_; }

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  std::map<size_t, std::vector<void*>> cached_;  // size class -> free blocks
  std::unordered_map<void*, size_t> in_use_;     // block -> its size class
  Stats stats_;
};

}  // namespace jigsaw::train
