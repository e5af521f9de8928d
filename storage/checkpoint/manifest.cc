#include "storage/checkpoint/manifest.h"

#include "base/version.h"

#include <cstdio>

#include "storage/checkpoint/format.h"
#include "storage/codec/json_fields.h"
#include "storage/zarr/metadata.h"

namespace jigsaw {

using namespace checkpoint_internal;

Result<Box> TileOf(const TensorSpec& t, const Mesh& mesh, int64_t rank) {
  Result<Box> box = TileOf(t.shape, t.partition, mesh, rank);
  if (!box.ok()) return box.status().Annotate("tensor " + t.name);
  return box;
}

std::string StepDirectory(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

nlohmann::json Manifest::ToJson() const {
  nlohmann::json mesh_j = nlohmann::json::array();
  for (const auto& [a, s] : mesh.axes) mesh_j.push_back({a, s});
  nlohmann::json tj = nlohmann::json::object();
  for (const auto& t : tensors) {
    nlohmann::json tiles = nlohmann::json::array();
    for (const auto& tile : t.tiles) {
      tiles.push_back({{"file", RankFile(tile.rank)},
                       {"rank", tile.rank},
                       {"origin", tile.box.origin},
                       {"shape", tile.box.shape},
                       {"offset", tile.offset},
                       {"nbytes", tile.nbytes},
                       {"crc32c", tile.crc32c},
                       {"block_crc32c", tile.block_crc32c}});
    }
    tj[t.spec.name] = {{"dtype", t.spec.dtype.name},
                       {"shape", t.spec.shape},
                       {"partition", PartitionSpecToJson(t.spec.partition)},
                       {"tiles", tiles}};
  }
  return {{"format", "jigsaw-checkpoint"},
          {"version", {kMajor, kMinor}},
          {"step", step},
          {"mesh", mesh_j},
          {"block_bytes", kBlock},
          {"written_by", std::string("jigsaw ") + Version()},
          {"tensors", tj},
          {"metadata", metadata}};
}

Result<Manifest> Manifest::FromJson(const nlohmann::json& j) {
  try {
    if (!j.is_object() || j.value("format", "") != "jigsaw-checkpoint")
      return InvalidArgumentError("not a jigsaw checkpoint manifest");
    ASSIGN_OR_RETURN(int64_t major, AsInt(j.at("version").at(0), "version"));
    if (major != kMajor) {
      return UnimplementedError("checkpoint format version " + std::to_string(major) + " (this jigsaw reads version " +
                                std::to_string(kMajor) + ")");
    }
    Manifest m;
    ASSIGN_OR_RETURN(m.step, AsInt(j.at("step"), "step"));
    for (const auto& a : j.at("mesh")) {
      ASSIGN_OR_RETURN(int64_t size, AsInt(a.at(1), "mesh axis size", 1));
      m.mesh.axes.emplace_back(a.at(0).get<std::string>(), size);
    }
    for (const auto& [name, t] : j.at("tensors").items()) {
      TensorRecord r;
      r.spec.name = name;
      ASSIGN_OR_RETURN(r.spec.dtype, DataTypeFromName(t.at("dtype").get<std::string>()));
      ASSIGN_OR_RETURN(r.spec.shape, IntList(t.at("shape"), "shape"));
      ASSIGN_OR_RETURN(r.spec.partition, ParsePartitionSpec(t.at("partition")));
      for (const auto& tile : t.at("tiles")) {
        TileRecord tr;
        ASSIGN_OR_RETURN(tr.rank, AsInt(tile.at("rank"), "rank", 0));
        ASSIGN_OR_RETURN(tr.box.origin, IntList(tile.at("origin"), "origin"));
        ASSIGN_OR_RETURN(tr.box.shape, IntList(tile.at("shape"), "shape"));
        ASSIGN_OR_RETURN(tr.offset, AsInt(tile.at("offset"), "offset", 0));
        ASSIGN_OR_RETURN(tr.nbytes, AsInt(tile.at("nbytes"), "nbytes", 0));
        ASSIGN_OR_RETURN(int64_t crc, AsInt(tile.at("crc32c"), "crc32c", 0, 0xFFFFFFFFll));
        tr.crc32c = static_cast<uint32_t>(crc);
        ASSIGN_OR_RETURN(auto blocks, IntList(tile.at("block_crc32c"), "block_crc32c", 0, 0xFFFFFFFFll));
        for (int64_t b : blocks) tr.block_crc32c.push_back(static_cast<uint32_t>(b));
        if (tr.box.origin.size() != r.spec.shape.size() || tr.box.shape.size() != r.spec.shape.size() ||
            tr.nbytes != Volume(tr.box.shape) * r.spec.dtype.size ||
            static_cast<int64_t>(tr.block_crc32c.size()) != (tr.nbytes + kBlock - 1) / kBlock) {
          return DataLossError("tensor " + name + ": a tile record is inconsistent");
        }
        r.tiles.push_back(std::move(tr));
      }
      m.tensors.push_back(std::move(r));
    }
    m.metadata = j.value("metadata", nlohmann::json::object());
    return m;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("malformed manifest: ") + e.what());
  }
}

const TensorRecord* Manifest::Find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.spec.name == name) return &t;
  return nullptr;
}

Result<std::string> LatestStep(KvStore* root) {
  ASSIGN_OR_RETURN(std::string latest, ReadText(root, "LATEST"));
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
  if (latest.empty() || latest.find('/') != std::string::npos)
    return DataLossError(root->url() + ": LATEST is malformed");
  return latest;
}

Result<std::pair<std::unique_ptr<KvStore>, std::string>> OpenCheckpointStep(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.starts_with("step-")) {
    ASSIGN_OR_RETURN(auto root, OpenKvStore(slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash)));
    return std::make_pair(std::move(root), base);
  }
  ASSIGN_OR_RETURN(auto root, OpenKvStore(path));
  ASSIGN_OR_RETURN(std::string step, LatestStep(root.get()));
  return std::make_pair(std::move(root), step);
}

Result<Manifest> ReadManifest(KvStore* root, std::string step_dir) {
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(step_dir, LatestStep(root));
  }
  const std::string key = step_dir + "/manifest.json";
  ASSIGN_OR_RETURN(std::string text, ReadText(root, key));
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, root->url() + "/" + key));
  if (!j.is_object() || !j.contains("manifest_crc32c") || j["manifest_crc32c"] != ManifestChecksum(j)) {
    return DataLossError(root->url() + "/" + key + ": manifest checksum mismatch (the manifest is corrupt)");
  }
  auto m = Manifest::FromJson(j);
  if (!m.ok()) return m.status().Annotate(root->url() + "/" + key);
  // Readers rely on it (ReadTensorBox fills boxes from the tiles alone).
  for (const auto& t : m->tensors) RETURN_IF_ERROR(CheckCoverage(t).Annotate(root->url() + "/" + key));
  return m;
}

}  // namespace jigsaw
