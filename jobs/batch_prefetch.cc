#include "jobs/batch_prefetch.h"

#include <chrono>
#include <utility>

namespace jigsaw::train {

std::unique_ptr<BatchPrefetch> BatchPrefetch::Start(Backend* backend, int64_t x0_size, int64_t x1_size, Fill fill,
                                                    Position position, int depth) {
  std::unique_ptr<BatchPrefetch> p(
      new BatchPrefetch(backend, x0_size, x1_size, std::move(fill), std::move(position), std::max(depth, 2)));
  p->thread_ = std::thread([raw = p.get()] { raw->Run(); });
  return p;
}

BatchPrefetch::BatchPrefetch(Backend* backend, int64_t x0_size, int64_t x1_size, Fill fill, Position position,
                             int depth)
    : be_(backend), n0_(x0_size), n1_(x1_size), fill_(std::move(fill)), position_(std::move(position)) {
  for (int i = 0; i < depth; ++i) {
    Slot s;
    s.host0 = be_->AllocHost(n0_);
    s.host1 = be_->AllocHost(n1_);
    s.dev0 = be_->Alloc(n0_);
    s.dev1 = be_->Alloc(n1_);
    slots_.push_back(s);
    free_.push_back(i);
  }
  uploader_ = be_->NewUploader();  // after the buffers: their zeroing is done before its first copy
}

BatchPrefetch::~BatchPrefetch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Slot& s : slots_) {
    be_->FreeHost(s.host0);
    be_->FreeHost(s.host1);
    be_->Free(s.dev0, n0_);
    be_->Free(s.dev1, n1_);
  }
}

void BatchPrefetch::Run() {
  for (;;) {
    int slot = -1;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stop_ || !free_.empty(); });
      if (stop_) return;
      slot = free_.front();
      free_.pop_front();
      // Recorded before the source moves on, so that a checkpoint taken meanwhile names this batch next.
      positions_.push_back(position_());
    }
    Slot& s = slots_[slot];
    Status made = fill_(s.host0, s.host1);
    if (made.ok()) {
      uploader_->Upload(s.dev0, s.host0, n0_);
      uploader_->Upload(s.dev1, s.host1, n1_);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace_back(slot, made);
    }
    changed_.notify_all();
    if (!made.ok()) return;  // the source failed: Take reports it; nothing more is made
  }
}

Result<BatchPrefetch::DeviceBatch> BatchPrefetch::Take() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  // The batch the last step used is done with: its slot can be filled again.
  if (in_use_ >= 0) {
    free_.push_back(in_use_);
    in_use_ = -1;
    changed_.notify_all();
  }
  changed_.wait(lock, [&] { return !ready_.empty(); });
  waited_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto [slot, made] = ready_.front();
  if (!made.ok()) return made;
  ready_.pop_front();
  positions_.pop_front();
  in_use_ = slot;
  return DeviceBatch{slots_[slot].dev0, slots_[slot].dev1};
}

double BatchPrefetch::TakeWaitSeconds() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(waited_, 0.0);
}

LoaderState BatchPrefetch::position() {
  std::lock_guard<std::mutex> lock(mu_);
  // Nothing begun and not taken: the thread is waiting for a slot, not reading the source.
  return positions_.empty() ? position_() : positions_.front();
}

}  // namespace jigsaw::train
