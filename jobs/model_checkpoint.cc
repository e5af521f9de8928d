#include "jobs/model_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace jigsaw::train {

std::vector<CheckpointTensor> CheckpointTensors(WeatherMixer& model) {
  std::vector<CheckpointTensor> out;
  const DataType f32 = DataTypeFromName("float32").value();
  for (auto& p : model.parameters()) {
    const char* prefix[] = {"", "adam_m/", "adam_v/"};
    for (int w = 0; w < 3; ++w)
      out.push_back({TensorSpec{prefix[w] + p.name, f32, p.stored_shape, p.stored_partition}, &p, w});
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
  run.data = meta.value("data_contract", nlohmann::json());
  run.batch_size = meta.value("batch_size", int64_t{0});
  run.replicas = meta.value("replicas", int64_t{0});
  if (meta.contains("loader")) {
    run.loader.epoch = meta["loader"].value("epoch", int64_t{0});
    run.loader.batch = meta["loader"].value("batch", int64_t{0});
  }
  return run;
}

nlohmann::json DataContract(const StoreFacts& f) {
  return {{"channels", f.channels},           {"mean", f.mean},
          {"std", f.std},                     {"static_channels", f.static_channels},
          {"static_mean", f.static_mean},     {"static_std", f.static_std},
          {"step_seconds", f.step_seconds},   {"latitudes", f.latitudes},
          {"longitudes", f.longitudes}};
}

Status CheckDataContract(const CheckpointRun& run, const StoreFacts& f) {
  if (!run.data.is_object()) return OkStatus();
  const nlohmann::json ours = DataContract(f);
  auto differ = [&](const char* key, const std::string& what) -> Status {
    if (!run.data.contains(key) || run.data[key] == ours[key]) return OkStatus();
    return InvalidArgumentError("the store holds " + what + " " + ours[key].dump() + ", but checkpoint " +
                                run.step_dir + " was trained on " + run.data[key].dump());
  };
  RETURN_IF_ERROR(differ("channels", "the channels"));
  RETURN_IF_ERROR(differ("static_channels", "the static fields"));
  RETURN_IF_ERROR(differ("step_seconds", "a time step (seconds) of"));
  // The normalisation the model learned in: a store whose statistics differ would feed it other units.
  for (const auto& [key, names] : {std::pair{"mean", &f.channels}, std::pair{"std", &f.channels},
                                   std::pair{"static_mean", &f.static_channels},
                                   std::pair{"static_std", &f.static_channels}}) {
    const auto& want = run.data.value(key, nlohmann::json::array());
    const auto& got = ours[key];
    for (size_t k = 0; k < want.size() && k < got.size(); ++k) {
      const double a = want[k].get<double>(), b = got[k].get<double>();
      if (std::abs(a - b) > 1e-6 * std::max({std::abs(a), std::abs(b), 1e-30})) {
        return InvalidArgumentError("the store's " + std::string(key) + " of " + (*names)[k] + " is " +
                                    std::to_string(b) + ", but checkpoint " + run.step_dir +
                                    " was trained on data normalised with " + std::to_string(a) +
                                    " (a store of other times or sources: its statistics would feed the model "
                                    "other units)");
      }
    }
  }
  for (const char* axis : {"latitudes", "longitudes"}) {
    const auto& want = run.data.value(axis, nlohmann::json::array());
    const auto& got = ours[axis];
    bool same = want.size() == got.size();
    for (size_t k = 0; same && k < want.size(); ++k) same = std::abs(want[k].get<double>() - got[k].get<double>()) < 1e-6;
    if (!want.empty() && !same) {
      return InvalidArgumentError("the store's " + std::string(axis) + " (" + std::to_string(got.size()) +
                                  ") are not the grid checkpoint " + run.step_dir + " was trained on (" +
                                  std::to_string(want.size()) + ")");
    }
  }
  return OkStatus();
}

namespace {

// A checkpoint made before the stored layout kept a token dimension T in its run's order: domain part
// (a, b) of the grid LAT x LON first, row-major inside it. The index of its token `old` by patch position.
int64_t TokenByPosition(int64_t old, DomainGrid g, int64_t patch_rows, int64_t patch_cols) {
  const int64_t rows = patch_rows / g.lat, cols = patch_cols / g.lon, per = rows * cols;
  const int64_t part = old / per, inside = old % per;
  return ((part / g.lon) * rows + inside / cols) * patch_cols + (part % g.lon) * cols + inside % cols;
}

// A token-mix tensor of such a checkpoint, whole ([T, Hs], [Hs, T] or [T]), in the stored layout.
std::vector<float> TokensByPosition(const std::string& name, const std::vector<float>& old,
                                    const std::vector<int64_t>& old_shape, DomainGrid g, const ModelConfig& c) {
  std::vector<float> out(old.size());
  const int64_t T = c.tokens();
  const bool tokens_last = name.ends_with("token_w2");
  const int64_t outer = tokens_last ? old_shape[0] : 1, inner = tokens_last || old_shape.size() == 1 ? 1 : old_shape[1];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t to = TokenByPosition(t, g, c.patch_rows(), c.patch_cols());
      for (int64_t k = 0; k < inner; ++k) out[(o * T + to) * inner + k] = old[(o * T + t) * inner + k];
    }
  return out;
}

}  // namespace

Result<CheckpointRun> LoadModelCheckpoint(KvStore* root, const std::string& step_dir, WeatherMixer& model,
                                          bool with_moments) {
  ASSIGN_OR_RETURN(CheckpointRun run, ReadCheckpointRun(root, step_dir));
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, run.step_dir));
  // The same model: every size of its identity must agree (the domain grid is the run's, not the model's).
  nlohmann::json ours = model.config().ToJson(), theirs = run.model;
  for (nlohmann::json* j : {&ours, &theirs}) {
    if (!j->contains("static_channels")) (*j)["static_channels"] = 0;
    j->erase("lat_parts");
    j->erase("lon_parts");
  }
  std::string differ;
  for (const auto& [k, v] : ours.items()) {
    const nlohmann::json other = theirs.contains(k) ? theirs[k] : nlohmann::json();
    if (other != v)
      differ += (differ.empty() ? "" : ", ") + k + " " + (other.is_null() ? "missing" : other.dump()) + " (this run: " +
                v.dump() + ")";
  }
  if (!differ.empty()) return InvalidArgumentError("checkpoint " + run.step_dir + " holds another model: " + differ);
  const DomainGrid legacy = LegacyDomainGrid(run.model);
  const ModelConfig& mc = model.config();
  if (legacy.lat < 1 || legacy.lon < 1 || mc.patch_rows() % legacy.lat != 0 || mc.patch_cols() % legacy.lon != 0) {
    return DataLossError("checkpoint " + run.step_dir + " records the domain grid " + legacy.ToString() +
                         ", which does not cut its " + std::to_string(mc.patch_rows()) + "x" +
                         std::to_string(mc.patch_cols()) + " patches into whole parts");
  }
  std::string bad;
  for (const CheckpointTensor& t : CheckpointTensors(model)) {
    if (t.which != 0 && !with_moments) continue;
    const TensorRecord* rec = m.Find(t.spec.name);
    const Parameter& p = *t.param;
    std::vector<float> host;
    if (rec && rec->spec.shape == t.spec.shape) {
      ASSIGN_OR_RETURN(LoadedBox bytes, LoadTensorBox(root, run.step_dir, m, *rec, p.stored_box));
      host.resize(bytes.size() / 4);
      std::memcpy(host.data(), bytes.data(), host.size() * 4);
    } else if (rec && rec->spec.shape == p.shape && p.shape != p.stored_shape && p.name.find(".token_") != std::string::npos) {
      // Made before the stored layout: the whole tensor, its tokens put by patch position, then this block.
      Box whole{std::vector<int64_t>(p.shape.size(), 0), p.shape};
      ASSIGN_OR_RETURN(LoadedBox bytes, LoadTensorBox(root, run.step_dir, m, *rec, whole));
      std::vector<float> old(bytes.size() / 4);
      std::memcpy(old.data(), bytes.data(), old.size() * 4);
      host = p.Cut(TokensByPosition(p.name, old, p.shape, legacy, model.config()));
    } else {
      bad += (bad.empty() ? "" : ", ") + t.spec.name +
             (rec ? " [" + JoinShape(rec->spec.shape) + "], not [" + JoinShape(t.spec.shape) + "]" : " (missing)");
      continue;
    }
    Tensor& dst = t.tensor();
    if (static_cast<int64_t>(host.size()) != dst.size()) {
      return InternalError("the box of " + t.spec.name + " holds " + std::to_string(host.size()) + " floats, not " +
                           std::to_string(dst.size()));
    }
    dst.Upload(host);
  }
  if (!bad.empty()) return InvalidArgumentError("checkpoint " + run.step_dir + " lacks or shapes differently: " + bad);
  return run;
}

Result<std::vector<std::string>> CommittedSteps(KvStore* root) {
  ASSIGN_OR_RETURN(std::vector<ListEntry> keys, root->List("step-"));
  std::vector<std::string> steps;
  for (const ListEntry& e : keys) {
    const std::string& key = e.key;
    const size_t slash = key.find('/');
    if (slash == std::string::npos || key.substr(slash + 1) != "manifest.json") continue;
    const std::string step = key.substr(0, slash);
    if (ReadManifest(root, step).ok()) steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end());  // "step-%08d": by number
  return steps;
}

Result<std::string> StartingStep(KvStore* root, bool resume, std::string* note) {
  // With LATEST, its step alone is read: the root's other steps (every manifest) only when it is missing.
  Result<std::string> latest = resume ? LatestStep(root) : Result<std::string>(NotFoundError("not resuming"));
  if (latest.ok()) {
    if (Status m = ReadManifest(root, *latest).status(); !m.ok())
      return DataLossError(root->url() + "/LATEST names " + *latest + ", which does not load: " + m.message());
    return *latest;
  }
  if (latest.status().code() != StatusCode::kNotFound)
    return DataLossError(root->url() + "/LATEST is damaged (" + latest.status().message() +
                         "): repair it (echo step-NNNNNNNN > LATEST) or remove it to resume from the newest step "
                         "that verifies");
  ASSIGN_OR_RETURN(std::vector<std::string> committed, CommittedSteps(root));
  auto named = [&] {
    std::string list;
    for (size_t k = 0; k < committed.size(); ++k) {
      if (k == 3 && committed.size() > 5) {
        list += ", ... " + std::to_string(committed.size() - 4) + " more";
        k = committed.size() - 1;
      }
      list += (list.empty() ? "" : ", ") + committed[k];
    }
    return list;
  };
  if (!resume) {
    if (committed.empty()) return std::string();
    return FailedPreconditionError(root->url() + " holds committed steps (" + named() +
                                   "): give --resume to continue that run, or another --ckpt for a new one");
  }
  for (size_t k = committed.size(); k-- > 0;) {
    // A step that cannot be read now (a network error) is no damaged step: stop rather than pass it over.
    ASSIGN_OR_RETURN(auto problems, VerifyCheckpoint(root, committed[k]));
    if (problems.empty()) {
      if (note) *note = "no LATEST in " + root->url() + "; resuming from " + committed[k] + ", the newest step that verifies";
      return committed[k];
    }
  }
  if (!committed.empty())
    return DataLossError(root->url() + " has no LATEST and none of its steps verifies (" + named() + ")");
  return std::string();
}

Status StartModelCheckpoint(AsyncCheckpointSaver* saver, KvStore* root, int64_t step, WeatherMixer& model,
                            const nlohmann::json& run_metadata, Communicator* comm, bool copy_later) {
  const Mesh& mesh = model.stored_mesh();
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
    const float* data = host[k].empty() ? tensors[k].tensor().data() : host[k].data();
    tiles.push_back({reinterpret_cast<const char*>(data), tensors[k].param->stored_box.shape});
  }
  SaveOptions so;
  so.metadata["jigsaw_train"] = run_metadata;
  return saver->Start(root, step, mesh, specs, std::move(tiles), so, comm, copy_later);
}

}  // namespace jigsaw::train
