// The loader's batch buffers. Internal to pipeline/loader/.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "pipeline/loader/loader.h"

namespace jigsaw {

// Batch buffers of one size, recycled: a buffer whose batch the consumer dropped is handed to the next
// batch instead of being freed, so that steady state allocates nothing and takes no page faults. Shared
// with the batches, which may outlive the loader (a NumPy array holding one, say).
class BufferPool {
 public:
  BufferPool(std::shared_ptr<BufferAllocator> alloc, size_t bytes, size_t keep)
      : alloc_(std::move(alloc)), bytes_(bytes), keep_(keep) {}
  ~BufferPool() {
    for (void* p : free_) alloc_->release(p, bytes_);
  }
  void* Get() {
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        void* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return alloc_->allocate(bytes_);
  }
  void Put(void* p) {
    {
      std::lock_guard lock(mu_);
      if (free_.size() < keep_) {
        free_.push_back(p);
        return;
      }
    }
    alloc_->release(p, bytes_);
  }
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<BufferAllocator> alloc_;
  size_t bytes_, keep_;
  std::mutex mu_;
  std::vector<void*> free_;  // guarded by mu_
};

}  // namespace jigsaw
