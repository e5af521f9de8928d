#include "jobs/model_checkpoint.h"

#include <cstring>

namespace jigsaw::train {

std::vector<CheckpointTensor> CheckpointTensors(WeatherMixer& model) {
  std::vector<CheckpointTensor> out;
  const DataType f32 = DataTypeFromName("float32").value();
  for (auto& p : model.parameters()) {
    PartitionSpec part;
    for (char c : p.stored_split) {
      part.push_back(c == 'i'   ? std::optional<std::string>("domain")
                     : c == 'j' ? std::optional<std::string>("tensor")
                                : std::nullopt);
    }
    const char* prefix[] = {"", "adam_m/", "adam_v/"};
    for (int w = 0; w < 3; ++w) out.push_back({TensorSpec{prefix[w] + p.name, f32, p.stored_shape, part}, &p, w});
  }
  return out;
}

Result<CheckpointRun> ReadCheckpointRun(KvStore* root, const std::string& step_dir) {
  CheckpointRun run;
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(run.step_dir, LatestStep(root));
  } else {
    run.step_dir = step_dir;
  }
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, run.step_dir));
  if (!m.metadata.contains("jigsaw_train"))
    return InvalidArgumentError("checkpoint " + run.step_dir + " was not written by jigsaw-train");
  const auto& meta = m.metadata["jigsaw_train"];
  run.step = m.step;
  run.model = meta.value("model", nlohmann::json::object());
  run.config = meta.value("config", nlohmann::json::object());
  if (meta.contains("loader")) {
    run.loader.epoch = meta["loader"].value("epoch", int64_t{0});
    run.loader.batch = meta["loader"].value("batch", int64_t{0});
  }
  return run;
}

Result<CheckpointRun> LoadModelCheckpoint(KvStore* root, const std::string& step_dir, WeatherMixer& model,
                                          const Mesh& mesh, int64_t rank, bool with_moments) {
  ASSIGN_OR_RETURN(CheckpointRun run, ReadCheckpointRun(root, step_dir));
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, run.step_dir));
  // The same model: every size and the token order (the domain grid) must agree.
  std::string differ;
  const nlohmann::json ours = model.config().ToJson();
  for (const auto& [k, v] : ours.items()) {
    if (!run.model.contains(k) || run.model[k] != v) {
      differ += (differ.empty() ? "" : ", ") + k + " " + (run.model.contains(k) ? run.model[k].dump() : "missing") +
                " (this run: " + v.dump() + ")";
    }
  }
  if (!differ.empty()) return InvalidArgumentError("checkpoint " + run.step_dir + " holds another model: " + differ);
  std::string bad;
  for (const CheckpointTensor& t : CheckpointTensors(model)) {
    if (t.which != 0 && !with_moments) continue;
    const TensorRecord* rec = m.Find(t.spec.name);
    if (!rec || rec->spec.shape != t.spec.shape) {
      bad += (bad.empty() ? "" : ", ") + t.spec.name;
      continue;
    }
    ASSIGN_OR_RETURN(Box box, TileOf(t.spec, mesh, rank));
    ASSIGN_OR_RETURN(LoadedBox bytes, LoadTensorBox(root, run.step_dir, m, *rec, box));
    Tensor& dst = t.tensor();
    if (static_cast<int64_t>(bytes.size()) != dst.size() * 4) {
      return InternalError("the box of " + t.spec.name + " holds " + std::to_string(bytes.size()) + " bytes, not " +
                           std::to_string(dst.size() * 4));
    }
    std::vector<float> host(dst.size());
    std::memcpy(host.data(), bytes.data(), bytes.size());
    dst.Upload(host);
  }
  if (!bad.empty()) return InvalidArgumentError("checkpoint " + run.step_dir + " lacks or shapes differently: " + bad);
  return run;
}

Status StartModelCheckpoint(AsyncCheckpointSaver* saver, KvStore* root, int64_t step, WeatherMixer& model,
                            const Mesh& mesh, int64_t rank, const nlohmann::json& run_metadata, Communicator* comm,
                            bool copy_later) {
  std::vector<CheckpointTensor> tensors = CheckpointTensors(model);
  std::vector<TensorSpec> specs;
  std::vector<std::vector<float>> host;  // device tensors, copied down
  std::vector<TensorBuffer> tiles;
  for (const auto& t : tensors) {
    specs.push_back(t.spec);
    host.push_back(t.tensor().device() == Device::kCpu ? std::vector<float>() : t.tensor().Download());
    if (!host.back().empty()) copy_later = false;  // `host` goes when this returns
  }
  for (size_t k = 0; k < tensors.size(); ++k) {
    ASSIGN_OR_RETURN(Box box, TileOf(specs[k], mesh, rank));
    const float* data = host[k].empty() ? tensors[k].tensor().data() : host[k].data();
    tiles.push_back({reinterpret_cast<const char*>(data), box.shape});
  }
  SaveOptions so;
  so.metadata["jigsaw_train"] = run_metadata;
  return saver->Start(root, step, mesh, specs, std::move(tiles), so, comm, copy_later);
}

}  // namespace jigsaw::train
