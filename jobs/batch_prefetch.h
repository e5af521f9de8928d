// Training batches made on a thread of their own and put on the backend's device ahead of the step that
// takes them: while step i runs, batch i+1 is assembled from the loader into page-locked host memory and
// copied to the device beside the step's work (Backend::Uploader), so that a step starts on a batch that
// is already there. `depth` batches are in flight at most (2: the one in use and the next).
//
// Checkpoints need the loader's position as the trainer sees it, before the oldest batch not yet taken:
// position() gives that, however far ahead the thread has read.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status.h"
#include "pipeline/loader/loader.h"
#include "train/backend.h"

namespace jigsaw::train {

class BatchPrefetch {
 public:
  // Writes the next batch into host buffers x0 [x0_size] and x1 [x1_size] (called on the prefetch thread).
  using Fill = std::function<Status(float* x0, float* x1)>;
  // The source's position before its next batch (called on the prefetch thread, and on the caller's when
  // nothing is in flight).
  using Position = std::function<LoaderState()>;

  static std::unique_ptr<BatchPrefetch> Start(Backend* backend, int64_t x0_size, int64_t x1_size, Fill fill,
                                              Position position, int depth = 2);
  ~BatchPrefetch();  // stops the thread (after the batch it is making) and frees the buffers
  BatchPrefetch(const BatchPrefetch&) = delete;
  BatchPrefetch& operator=(const BatchPrefetch&) = delete;

  struct DeviceBatch {
    const float* x0;
    const float* x1;
  };
  // The next batch, on the device; valid until the next Take. Waits for it if need be; a failure to make it
  // (the loader's) comes back here.
  Result<DeviceBatch> Take();
  // Seconds Take waited since the last call (the step waiting for data).
  double TakeWaitSeconds();
  // The source's position before the oldest batch not yet taken.
  LoaderState position();

 private:
  struct Slot {
    float *host0 = nullptr, *host1 = nullptr, *dev0 = nullptr, *dev1 = nullptr;
  };
  BatchPrefetch(Backend* backend, int64_t x0_size, int64_t x1_size, Fill fill, Position position, int depth);
  void Run();

  Backend* be_;
  const int64_t n0_, n1_;
  Fill fill_;
  Position position_;
  std::unique_ptr<Backend::Uploader> uploader_;
  std::vector<Slot> slots_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<int> free_;                                  // slots to fill, in order
  std::deque<std::pair<int, Status>> ready_;              // filled slots (or the failure), in order
  std::deque<LoaderState> positions_;                     // before each batch begun and not yet taken
  int in_use_ = -1;                                       // the slot of the batch last taken
  bool stop_ = false;
  double waited_ = 0;
  std::thread thread_;
};

}  // namespace jigsaw::train
