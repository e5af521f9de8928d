// The three phases of a save, which SaveCheckpoint runs in a row and AsyncCheckpointSaver spreads over
// Start (1), a background thread (2) and Wait (3). Internal to storage/checkpoint/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "storage/checkpoint/save.h"

namespace jigsaw::checkpoint_internal {

// Every rank returns rank 0's verdict (`local` on rank 0; rank 0's message as kFailedPrecondition elsewhere).
Status Agree(Communicator* comm, Status local);
// The ranks of `mesh` whose files this process writes: every one when it saves alone, else its own.
std::vector<int64_t> RanksOf(const Mesh& mesh, Communicator* comm);
// What a rank sends rank 0 after writing: its error, or its tile records.
std::string SavePayload(const Status& error, nlohmann::json tiles);

// Phase 1 (collective): the ranks agree on what they save, and rank 0 clears unfinished saves.
Status PrepareSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                   Communicator* comm);
// Phase 2 (this process alone): the files of ranks `mine`; returns the payload for CommitSave.
std::string WriteRankFiles(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                           const TileProvider& provider, const SaveOptions& options, const std::vector<int64_t>& mine);
// Phase 3 (collective): rank 0 gathers the payloads, checks coverage, writes the manifest, then LATEST.
Status CommitSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                  const SaveOptions& options, Communicator* comm, const std::string& payload);

}  // namespace jigsaw::checkpoint_internal
