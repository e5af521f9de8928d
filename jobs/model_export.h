// jigsaw-train checkpoints outside a run (jigsaw-ckpt): the mesh a reshard writes for runs on another
// mesh, and an export that describes itself, so that a model leaves jigsaw with everything needed to run it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "storage/checkpoint/checkpoint.h"

namespace jigsaw::train {

// Whether a step was written by jigsaw-train (its manifest's "jigsaw_train" metadata).
bool IsTrainCheckpoint(const Manifest& m);

// The mesh to reshard a jigsaw-train checkpoint onto for runs on `mesh` (domain=s,tensor=s) over the domain
// grid `grid` ("LATxLON", LAT LON = s; "" : 1 x s, the grid of a store tiled 1 x s x s): its StoredMesh. A
// mesh of the stored axes themselves (domain_lat=...) is taken as it is. Any tiling loads on any mesh; the
// grid of the runs to come makes their loads read one tile per block. Checkpoints made before the stored
// layout keep their mesh's axes (domain, tensor): `mesh` as given.
Result<Mesh> ReshardMesh(const Manifest& m, const std::string& mesh, const std::string& grid);

struct ModelExportOptions {
  bool with_moments = false;  // also adam_m/<name> and adam_v/<name>
  // The store whose data contract (channels, statistics, step, grid) goes with a checkpoint that recorded
  // none (made before it was recorded); "" : the store its run names.
  std::string data;
};

// The weights of a jigsaw-train step in the stored layout, into a new safetensors file, with
// `__metadata__["jigsaw"]` (ExportDescription) beside safetensors' own "format": "pt". A checkpoint made
// before the stored layout is converted in memory (the whole model on one rank).
Status ExportModel(KvStore* root, const std::string& step_dir, const std::string& path,
                   const ModelExportOptions& options);

// What the export carries: the model (sizes, patch, ln_eps), the data contract, the step, the conventions
// (normalised units, x + f(x), token order, feature order) and every tensor's dimensions by name.
nlohmann::json ExportDescription(const nlohmann::json& model, const nlohmann::json& data_contract, int64_t step);

}  // namespace jigsaw::train
