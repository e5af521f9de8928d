// A checkpoint save that runs while training goes on.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/checkpoint/save.h"

namespace jigsaw {

// Asynchronous saves, for a training loop that must not wait on the disk. A save goes through three
// stages, each overlapping training:
//   Start(step)      agrees on the save with the other ranks (as SaveCheckpoint does), takes a copy of this
//                    process's tiles (or, with `copy_later`, has the background thread take it) and returns;
//   background       writes the rank files from that copy;
//   the next Start   gathers the tile records (collective), and rank 0 writes the manifest, then LATEST, on
//                    a background thread of its own.
// So Start returns the verdict of what finished since the last call: the writes of the previous save (any
// rank's failure, on every rank) and the commit of the one before it. Wait() finishes everything, committing
// synchronously, and returns the verdict of what was not yet reported; call it before reading LATEST or
// exiting. Every rank calls Start and Wait in the same order (they are collective over `comm`). At most one
// save writes at a time. `root` and `comm` must outlive the saver. Destruction finishes the writes but
// commits only without `comm` (a collective commit cannot happen in one rank's destructor: the step is then
// left unfinished, and the next save clears it).
class AsyncCheckpointSaver {
 public:
  AsyncCheckpointSaver();
  ~AsyncCheckpointSaver();
  AsyncCheckpointSaver(const AsyncCheckpointSaver&) = delete;
  AsyncCheckpointSaver& operator=(const AsyncCheckpointSaver&) = delete;

  // Tiles from a provider, called before Start returns (the caller may change its tensors at once).
  Status Start(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
               const TileProvider& provider, const SaveOptions& options, Communicator* comm = nullptr);

  // Tiles in memory: `tiles[i]` is this process's tile of `tensors[i]` (one process per rank of `mesh`, or a
  // mesh of one rank), checked against the tile's shape. They are copied, on every core, into buffers the
  // saver keeps from one save to the next (so that a save does not fault in fresh pages), before Start
  // returns; with `copy_later`, by the background thread instead, and the caller leaves the tiles unchanged
  // until TilesCopied() returns (a training step: Start, forward and backward, which only read the
  // weights, TilesCopied, then the optimiser's update).
  Status Start(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
               std::vector<TensorBuffer> tiles, const SaveOptions& options, Communicator* comm = nullptr,
               bool copy_later = false);
  void TilesCopied();

  Status Wait();
  bool in_flight() const;

 private:
  struct Save;
  std::unique_ptr<Save> NewSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                                const SaveOptions& options, Communicator* comm);
  // Collective, one gather and one broadcast: finishes the background commit and the writes of the save in
  // flight, gathers its records and starts its commit on rank 0's background thread; and agrees on `next`
  // (when given) as PrepareSave does, into next->prepared. The verdict of what finished.
  Status Advance(Save* next);

  std::unique_ptr<Communicator> local_;  // the communicator of a process that saves alone
  std::unique_ptr<Save> writing_;        // the save whose rank files are being written
  bool committing_ = false;              // a commit was started (every rank; rank 0 runs it)
  std::thread committer_;
  Status commit_status_;
  Communicator* commit_comm_ = nullptr;
  std::vector<std::string> pool_;  // tile buffers of the last save, reused by the next
};

}  // namespace jigsaw
