// Saving a checkpoint step: every rank writes its own tiles to its rank file, then rank 0 writes the
// manifest and moves LATEST (a step without a manifest is garbage, cleared by the next save).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parallel/communicator.h"
#include "storage/checkpoint/manifest.h"

namespace jigsaw {

// Supplies the bytes of `box` of tensor `tensor` (C order, dtype elements) as rank `rank` holds them.
using TileProvider = std::function<Result<std::string>(int64_t rank, const TensorSpec& tensor, const Box& box)>;

// Tensors in the caller's memory as a TileProvider, in one of two ways. `whole`: each buffer is a whole
// tensor and tiles are cut out of it (one process saving every rank). Otherwise each buffer is the tile
// that the saving rank holds (a collective save, one process per rank), checked against the tile's shape.
// `buffers[i]` belongs to `tensors[i]`; shapes are checked when the provider runs, and the buffers must stay
// valid until the save (or AsyncCheckpointSaver::Start) returns.
struct TensorBuffer {
  const char* data = nullptr;
  std::vector<int64_t> shape;
};
TileProvider TilesFromMemory(std::vector<TensorSpec> tensors, std::vector<TensorBuffer> buffers, bool whole);

struct SaveOptions {
  bool sync = true;                                    // fsync data and manifest before LATEST moves
  bool direct = true;                                  // rank files bypass the page cache where the file
                                                       // system allows (WriteOptions::direct)
  nlohmann::json metadata = nlohmann::json::object();  // optimiser, RNG, loader cursor, model config
};

// Saves step `step` collectively. Without `comm` (or with a communicator of size 1) this process saves every
// rank of `mesh` (tools, tests); under MPI each of mesh.size() processes saves its own rank. Rank 0 first
// removes unfinished saves (steps without a manifest); each rank writes its owned tiles to its file; rank 0
// gathers the tile records, checks that every element of every tensor is covered exactly once, writes the
// manifest, then LATEST. Every rank returns the same verdict.
Status SaveCheckpoint(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                      const TileProvider& provider, const SaveOptions& options, Communicator* comm = nullptr);

}  // namespace jigsaw
