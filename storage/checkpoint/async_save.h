// A checkpoint save that runs while training goes on.
#pragma once

#include <memory>
#include <vector>

#include "storage/checkpoint/save.h"

namespace jigsaw {

// Asynchronous saves: Start() agrees on the save with the other ranks (as SaveCheckpoint does), copies
// every tile this process owns (so the caller may change its tensors as soon as it returns) and writes the
// rank files in the background; Wait() commits (collectively, with `comm`: every rank calls it, as it
// calls Start) and returns the save's status. At most one save is in flight: Start waits for the previous
// one and returns its status. `root` and `comm` must outlive the save. Destruction waits too, but commits
// only without `comm` (a collective commit cannot happen in one rank's destructor: the step is then left
// unfinished, and the next save clears it).
class AsyncCheckpointSaver {
 public:
  AsyncCheckpointSaver() = default;
  ~AsyncCheckpointSaver();
  AsyncCheckpointSaver(const AsyncCheckpointSaver&) = delete;
  AsyncCheckpointSaver& operator=(const AsyncCheckpointSaver&) = delete;

  // Returns once the tiles are copied; problems of this save (its arguments, a failed copy, the writes)
  // come from Wait().
  Status Start(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
               const TileProvider& provider, const SaveOptions& options, Communicator* comm = nullptr);
  Status Wait();
  bool in_flight() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace jigsaw
