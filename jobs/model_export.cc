#include "jobs/model_export.h"

#include "jobs/model_checkpoint.h"
#include "jobs/store_facts.h"
#include "storage/kvstore/kvstore.h"
#include "train/mesh.h"

namespace jigsaw::train {

bool IsTrainCheckpoint(const Manifest& m) { return m.metadata.contains("jigsaw_train"); }

namespace {

bool Stored(const Mesh& m) { return m.AxisSize("domain_lat") > 0; }

Result<DomainGrid> ParseGrid(const std::string& text, int64_t s) {
  if (text.empty()) return DomainGrid{1, s};
  const size_t x = text.find('x');
  DomainGrid g{0, 0};
  try {
    if (x != std::string::npos) g = {std::stoll(text.substr(0, x)), std::stoll(text.substr(x + 1))};
  } catch (const std::exception&) {
  }
  if (g.lat < 1 || g.lon < 1 || std::to_string(g.lat) + "x" + std::to_string(g.lon) != text)
    return InvalidArgumentError("--domain-grid " + text + " is not LATxLON (e.g. 1x2)");
  if (g.parts() != s)
    return InvalidArgumentError("--domain-grid " + text + " has " + std::to_string(g.parts()) +
                                " domain parts; a " + std::to_string(s) + "x" + std::to_string(s) + " mesh needs " +
                                std::to_string(s));
  return g;
}

}  // namespace

Result<Mesh> ReshardMesh(const Manifest& m, const std::string& mesh, const std::string& grid) {
  ASSIGN_OR_RETURN(Mesh asked, Mesh::Parse(mesh));
  if (!IsTrainCheckpoint(m) || !Stored(m.mesh) || Stored(asked)) {
    if (!grid.empty())
      return InvalidArgumentError("--domain-grid applies to jigsaw-train checkpoints in the stored layout (mesh "
                                  "domain_lat,...) resharded for a --mesh domain=s,tensor=s; this one's mesh is " +
                                  m.mesh.ToString());
    return asked;
  }
  ASSIGN_OR_RETURN(JigsawMesh j, ParseJigsawMesh(mesh));
  ASSIGN_OR_RETURN(DomainGrid g, ParseGrid(grid, j.s));
  return StoredMesh(g);
}

nlohmann::json ExportDescription(const nlohmann::json& model, const nlohmann::json& data, int64_t step) {
  nlohmann::json layouts = {
      {"embed_w", {"channel", "patch_pixel", "dim"}},
      {"embed_b", {"dim"}},
      {"blocks.N.token_norm_w", {"dim"}},
      {"blocks.N.token_norm_b", {"dim"}},
      {"blocks.N.token_w1", {"patch_row", "patch_col", "token_hidden"}},
      {"blocks.N.token_b1", {"token_hidden"}},
      {"blocks.N.token_w2", {"token_hidden", "patch_row", "patch_col"}},
      {"blocks.N.token_b2", {"patch_row", "patch_col"}},
      {"blocks.N.channel_norm_w", {"dim"}},
      {"blocks.N.channel_norm_b", {"dim"}},
      {"blocks.N.channel_w1", {"dim", "channel_hidden"}},
      {"blocks.N.channel_b1", {"channel_hidden"}},
      {"blocks.N.channel_w2", {"channel_hidden", "dim"}},
      {"blocks.N.channel_b2", {"dim"}},
      {"head_norm_w", {"dim"}},
      {"head_norm_b", {"dim"}},
      {"head_w", {"dim", "channel", "patch_pixel"}},
      {"head_b", {"channel", "patch_pixel"}},
      {"static_w", {"static_channel", "patch_pixel", "dim"}}};
  nlohmann::json conventions = {
      {"units",
       "the model reads and writes normalised states: (x - mean) / std per channel (std 0 taken as 1); static "
       "fields likewise with static_mean and static_std"},
      {"prediction", "residual: the next state is x + f(x), in normalised units, one time step (step_seconds) on"},
      {"tokens",
       "patch_h x patch_w patches by position, row-major over [patch_row, patch_col] = [height / patch_h, width / "
       "patch_w]; latitude north to south and longitude as the data contract lists them"},
      {"patch_pixel", "py * patch_w + px inside a patch; token features ordered (channel, py, px)"},
      {"block",
       "pre-norm mixer: z += (GELU(W_t1^T LN_t(z) + b_t1)^T W_t2 + b_t2)^T over tokens (W_t1 [T, token_hidden], W_t2 "
       "[token_hidden, T], T = patch_row * patch_col); z += GELU(LN_c(z) W_c1 + b_c1) W_c2 + b_c2; GELU in its erf "
       "form, LayerNorm over dim with eps ln_eps"},
      {"embedding", "z = patches(x) embed_w + embed_b (+ patches(static) static_w)"},
      {"head", "f(x) = unpatch(LN_h(z) head_w + head_b)"}};
  return {{"format", "jigsaw-weathermixer"}, {"version", 1},        {"step", step},
          {"model", model},                  {"data", data},        {"conventions", conventions},
          {"layouts", layouts}};
}

Status ExportModel(KvStore* root, const std::string& step_dir, const std::string& path,
                   const ModelExportOptions& o) {
  ASSIGN_OR_RETURN(CheckpointRun run, ReadCheckpointRun(root, step_dir));
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, run.step_dir));
  nlohmann::json data = run.data;
  if (!data.is_object()) {
    // Made before checkpoints recorded their data: the store named here or by the run.
    const std::string from = !o.data.empty() ? o.data : m.metadata["jigsaw_train"].value("data", std::string());
    auto facts = from.empty() ? Result<StoreFacts>(NotFoundError("the run names no store"))
                              : ReadStoreFacts(from);
    if (!facts.ok()) {
      return FailedPreconditionError("checkpoint " + run.step_dir +
                                     " records no data contract (channels, statistics): give the store it was "
                                     "trained on with --data (" + facts.status().message() + ")");
    }
    data = DataContract(*facts);
  }
  ASSIGN_OR_RETURN(ModelConfig mc, ModelConfig::FromJson(run.model));
  SafetensorsExportOptions so;
  so.include = [&](const std::string& name) { return o.with_moments || !name.starts_with("adam_"); };
  so.metadata["jigsaw"] = ExportDescription(mc.ToJson(), data, run.step).dump();
  if (Stored(m.mesh)) return ExportSafetensors(root, run.step_dir, path, so);

  // Before the stored layout: the model on one rank (LoadModelCheckpoint puts its tokens by patch position),
  // saved into memory in the stored layout, then exported from there.
  std::unique_ptr<Backend> be = NewCpuBackend(1);
  std::unique_ptr<TensorCommunicator> alone = NewLocalCommunicator();
  ASSIGN_OR_RETURN(MeshComms comms, SplitMesh(alone.get(), 1));
  ASSIGN_OR_RETURN(auto model, WeatherMixer::Create(mc, be.get(), &comms, 0));
  RETURN_IF_ERROR(LoadModelCheckpoint(root, run.step_dir, *model, o.with_moments).status());
  std::unique_ptr<KvStore> memory = NewMemoryKvStore("upgraded");
  {
    AsyncCheckpointSaver saver;
    nlohmann::json meta = m.metadata["jigsaw_train"];
    meta["model"] = mc.ToJson();
    RETURN_IF_ERROR(StartModelCheckpoint(&saver, memory.get(), run.step, *model, meta, alone.get()));
    RETURN_IF_ERROR(saver.Wait());
  }
  return ExportSafetensors(memory.get(), StepDirectory(run.step), path, so);
}

}  // namespace jigsaw::train
