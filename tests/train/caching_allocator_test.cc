// The CUDA backend's caching allocator (train/caching_allocator.h) over malloc, counting the raw calls.
#include "train/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <set>

namespace jigsaw::train {
namespace {

struct Raw {
  std::set<void*> live;
  size_t limit = SIZE_MAX, held = 0;
  std::map<void*, size_t> sizes;
  CachingAllocator Make() {
    return CachingAllocator(
        [this](size_t n) -> void* {
          if (held + n > limit) return nullptr;
          void* p = std::malloc(n);
          live.insert(p);
          sizes[p] = n;
          held += n;
          return p;
        },
        [this](void* p) {
          EXPECT_EQ(live.erase(p), 1u) << "freed twice or never allocated";
          held -= sizes[p];
          std::free(p);
        });
  }
};

TEST(CachingAllocator, SizeClasses) {
  EXPECT_EQ(CachingAllocator::SizeClass(0), 512u);
  EXPECT_EQ(CachingAllocator::SizeClass(1), 512u);
  EXPECT_EQ(CachingAllocator::SizeClass(512), 512u);
  EXPECT_EQ(CachingAllocator::SizeClass(513), 1024u);
  EXPECT_EQ(CachingAllocator::SizeClass(1 << 20), size_t{1} << 20);
  EXPECT_EQ(CachingAllocator::SizeClass((1 << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::SizeClass((5 << 20) + 3), size_t{6} << 20);
}

TEST(CachingAllocator, AStepThatRepeatsCallsTheRawAllocatorOnlyTheFirstTime) {
  Raw raw;
  {
    CachingAllocator a = raw.Make();
    for (int step = 0; step < 5; ++step) {
      void* x = a.Allocate(1000);
      void* y = a.Allocate(3 << 20);
      void* z = a.Allocate(1000);
      EXPECT_NE(x, z);
      std::memset(y, step, 3 << 20);  // usable, whole
      a.Free(x);
      a.Free(z);
      a.Free(y);
    }
    EXPECT_EQ(a.stats().raw_allocs, 3);
    EXPECT_EQ(a.stats().cache_hits, 12);
    EXPECT_EQ(a.stats().bytes_in_use, 0u);
    EXPECT_EQ(a.stats().bytes_cached, 1024u + 1024u + (size_t{4} << 20));
    EXPECT_EQ(a.stats().peak_reserved, a.stats().bytes_cached);
    EXPECT_EQ(raw.live.size(), 3u);
    a.Free(nullptr);  // ignored
  }
  EXPECT_TRUE(raw.live.empty()) << "the destructor gives every cached block back";
}

TEST(CachingAllocator, OutOfMemoryGivesTheCacheBackAndTriesAgain) {
  Raw raw;
  raw.limit = size_t{8} << 20;
  CachingAllocator a = raw.Make();
  void* big = a.Allocate(size_t{6} << 20);
  ASSERT_NE(big, nullptr);
  a.Free(big);  // cached: 6 MiB held of 8
  void* other = a.Allocate(size_t{4} << 20);  // does not fit beside the cached block: the cache goes first
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(a.stats().raw_frees, 1);
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  EXPECT_EQ(a.Allocate(size_t{6} << 20), nullptr) << "no room even with the cache empty";
  a.Free(other);
  EXPECT_EQ(a.stats().bytes_reserved, size_t{4} << 20);
  a.ReleaseCached();
  EXPECT_TRUE(raw.live.empty());
  EXPECT_EQ(a.stats().bytes_reserved, 0u);
}

TEST(CachingAllocator, AForeignPointerIsNotFreed) {
  Raw raw;
  CachingAllocator a = raw.Make();
  int local = 0;
  a.Free(&local);  // not ours: ignored, never handed to the raw free
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  void* p = a.Allocate(10);
  a.Free(p);
  a.Free(p);  // a second free of the same block is ignored too
  EXPECT_EQ(a.stats().bytes_cached, 512u);
  void* again = a.Allocate(10);
  void* other = a.Allocate(10);
  EXPECT_EQ(again, p);
  EXPECT_NE(other, p);
  a.Free(again);
  a.Free(other);  // in-use blocks are the owner's to free: the destructor gives back only cached ones
}

}  // namespace
}  // namespace jigsaw::train
