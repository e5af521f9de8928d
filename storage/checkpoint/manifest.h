// A checkpoint step's manifest (docs/formats.md, "Checkpoints"): the mesh, each tensor's dtype, shape,
// partition spec and tiles (which rank file, where, and their crc32c), the step and free metadata. Written
// last by a save; a step directory without one is unfinished.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/box.h"
#include "parallel/mesh.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

struct TensorSpec {
  std::string name;
  DataType dtype;
  std::vector<int64_t> shape;
  PartitionSpec partition;  // empty: replicated
};

// The box of `tensor` that `rank` holds on `mesh`.
Result<Box> TileOf(const TensorSpec& tensor, const Mesh& mesh, int64_t rank);

struct TileRecord {
  int64_t rank = 0;  // the file rank-<rank>.bin
  Box box;
  int64_t offset = 0, nbytes = 0;
  uint32_t crc32c = 0;
  std::vector<uint32_t> block_crc32c;  // per 1 MiB block
};

struct TensorRecord {
  TensorSpec spec;
  std::vector<TileRecord> tiles;
};

struct Manifest {
  static constexpr int kMajor = 1, kMinor = 0;
  int64_t step = 0;
  Mesh mesh;
  std::vector<TensorRecord> tensors;
  nlohmann::json metadata = nlohmann::json::object();

  nlohmann::json ToJson() const;
  static Result<Manifest> FromJson(const nlohmann::json& j);
  const TensorRecord* Find(std::string_view name) const;
};

std::string StepDirectory(int64_t step);  // "step-00001000"

// Opens "ROOT/step-00001000" as (ROOT, "step-00001000"), or "ROOT" as (ROOT, its LATEST step).
Result<std::pair<std::unique_ptr<KvStore>, std::string>> OpenCheckpointStep(std::string path);

// The manifest of a step directory ("step-00001000") or, when `step_dir` is empty, of LATEST.
Result<Manifest> ReadManifest(KvStore* root, std::string step_dir = "");
Result<std::string> LatestStep(KvStore* root);

}  // namespace jigsaw
