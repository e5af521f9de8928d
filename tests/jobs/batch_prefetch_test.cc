// The training batches' prefetch thread (jobs/batch_prefetch.h) over the CPU backend, with a source that
// numbers its batches: order, the source's position for checkpoints while the thread reads ahead, a
// source's failure, and a stop while the thread waits.
#include "jobs/batch_prefetch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace jigsaw::train {
namespace {

// Batch k: x0 all k, x1 all -k; its position before it is (epoch 0, batch k).
struct Numbered {
  std::atomic<int64_t> next{0};
  int64_t fail_at = -1;
  BatchPrefetch::Fill fill() {
    return [this](float* x0, float* x1) -> Status {
      const int64_t k = next.load();
      if (k == fail_at) return DataLossError("batch " + std::to_string(k) + " is gone");
      for (int i = 0; i < 6; ++i) x0[i] = static_cast<float>(k);
      for (int i = 0; i < 12; ++i) x1[i] = -static_cast<float>(k);
      next = k + 1;
      return OkStatus();
    };
  }
  BatchPrefetch::Position position() {
    return [this] { return LoaderState{0, next.load()}; };
  }
};

void WaitUntil(const std::function<bool()>& done) {
  for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST(BatchPrefetch, BatchesInOrderOnTheDeviceAndThePositionBeforeTheNextTaken) {
  auto be = NewCpuBackend(1);
  Numbered source;
  auto prefetch = BatchPrefetch::Start(be.get(), 6, 12, source.fill(), source.position());
  for (int64_t k = 0; k < 5; ++k) {
    auto batch = prefetch->Take();
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    std::vector<float> x0(6), x1(12);
    be->Download(x0.data(), batch->x0, 6);
    be->Download(x1.data(), batch->x1, 12);
    EXPECT_EQ(x0, std::vector<float>(6, static_cast<float>(k)));
    EXPECT_EQ(x1, std::vector<float>(12, -static_cast<float>(k)));
    // The thread reads ahead (batch k+1 into the free slot) while batch k is in use; a checkpoint taken
    // now must still name batch k+1 as the next.
    WaitUntil([&] { return source.next.load() >= k + 2; });
    EXPECT_EQ(source.next.load(), k + 2) << "two slots: the one in use and the next";
    EXPECT_EQ(prefetch->position().batch, k + 1);
  }
  EXPECT_GE(prefetch->TakeWaitSeconds(), 0.0);
}

TEST(BatchPrefetch, ASourcesFailureComesBackFromTakeAndTheThreadStops) {
  auto be = NewCpuBackend(1);
  Numbered source;
  source.fail_at = 2;
  auto prefetch = BatchPrefetch::Start(be.get(), 6, 12, source.fill(), source.position());
  EXPECT_TRUE(prefetch->Take().ok());
  EXPECT_TRUE(prefetch->Take().ok());
  auto failed = prefetch->Take();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(failed.status().message().find("batch 2 is gone"), std::string::npos);
  EXPECT_FALSE(prefetch->Take().ok()) << "the failure stays";
  EXPECT_EQ(prefetch->position().batch, 2) << "a checkpoint still names the batch that failed as the next";
}

TEST(BatchPrefetch, StopsWhileWaitingForASlot) {
  auto be = NewCpuBackend(1);
  Numbered source;
  {
    auto prefetch = BatchPrefetch::Start(be.get(), 6, 12, source.fill(), source.position(), 3);
    WaitUntil([&] { return source.next.load() >= 3; });  // every slot filled: the thread waits
    EXPECT_EQ(prefetch->position().batch, 0);
  }
  EXPECT_EQ(source.next.load(), 3);
  EXPECT_EQ(be->bytes_in_use(), 0) << "the device buffers are freed";
}

}  // namespace
}  // namespace jigsaw::train
