// The three phases of a save, which SaveCheckpoint runs in a row and AsyncCheckpointSaver spreads over
// Start (1), a background thread (2) and Wait (3). Internal to storage/checkpoint/.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
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

// Phase 1 (collective): the ranks agree on what they save, and rank 0 clears unfinished saves (step
// directories without a manifest, or with one past LATEST's step) before anyone writes. In parts: what each
// rank sends rank 0, rank 0's check of them all, the clearing of the step about to be written (refused when
// it is committed), and of the others (the asynchronous saver does that in the background, keeping `keep`).
std::string PlanMessage(int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors, Communicator* comm);
Status CheckPlans(const std::vector<std::string>& plans);
Status ClearStep(KvStore* root, int64_t step);
Status ClearUnfinished(KvStore* root, const std::set<std::string>& keep);
Status PrepareSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                   Communicator* comm);

// The bytes of a tile as phase 2 writes them: a view of the caller's memory, or of `*scratch` filled.
// `index` is the tensor's position in the save's list (tensor == tensors[index]).
using TileSource = std::function<Result<std::string_view>(int64_t rank, size_t index, const TensorSpec& tensor,
                                                          const Box& box, std::string* scratch)>;
// Phase 2 (this process alone): the files of ranks `mine`; returns the payload for phase 3.
std::string WriteRankFiles(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                           const TileSource& source, const SaveOptions& options, const std::vector<int64_t>& mine);

// Phase 3 (collective): rank 0 gathers the payloads and makes the manifest from them, checking that every
// element of every tensor is covered exactly once, then writes the manifest, then LATEST; every rank returns
// the verdict. CommitSave runs it all; the asynchronous saver gathers with other things and writes in the
// background.
Result<Manifest> ManifestFromPayloads(int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                                      const SaveOptions& options, const std::vector<std::string>& payloads);
Status WriteManifestAndLatest(KvStore* root, const Manifest& m, const SaveOptions& options);
Status CommitSave(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                  const SaveOptions& options, Communicator* comm, const std::string& payload);

}  // namespace jigsaw::checkpoint_internal
