// The first error of a parallel loop: tasks Set() their status, the caller Get()s the first failure after
// the loop; failed() lets remaining tasks skip their work. Thread-safe.
#pragma once

#include <atomic>
#include <mutex>

#include "base/status.h"

namespace jigsaw {

class FirstError {
 public:
  void Set(Status s) {
    if (s.ok()) return;
    std::lock_guard lock(mu_);
    if (first_.ok()) first_ = std::move(s);
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() {
    std::lock_guard lock(mu_);
    return first_;
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  Status first_;  // guarded by mu_
};

}  // namespace jigsaw
