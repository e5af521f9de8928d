// jigsaw-ckpt: inspect, verify, reshard, import and export sharded checkpoints.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/common_flags.h"
#include "jobs/model_export.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/zarr/metadata.h"

namespace {

using namespace jigsaw;

int Fail(const Status& s) { return cli::Fail("jigsaw-ckpt", s); }

Result<std::function<PartitionSpec(const TensorSpec&)>> PartitionFile(const std::string& path, bool keep_when_empty) {
  if (path.empty()) {
    if (keep_when_empty) return std::function<PartitionSpec(const TensorSpec&)>();
    return LoadPartitionRules(nlohmann::json::object());
  }
  std::ifstream f(path);
  if (!f) return NotFoundError("cannot open partition file " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(ss.str(), path));
  auto rules = LoadPartitionRules(j);
  if (!rules.ok()) return rules.status().Annotate(path);
  return rules;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-ckpt: sharded checkpoints: inspect, verify, reshard between GPU counts, import/export safetensors."};
  app.require_subcommand(1);
  app.fallthrough();
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool as_json = false, no_sync = false;
  std::string path, out, mesh_text, partition_path;
  int64_t step = 0;

  auto* inspect = app.add_subcommand("inspect", "mesh, step, tensors and their tiles");
  inspect->add_option("ROOT_OR_STEP", path, "checkpoint root (its LATEST step) or a step directory")->required();
  inspect->add_flag("--json", as_json, "the manifest as JSON");

  auto* verify = app.add_subcommand("verify", "read every tile and check its crc32c; exit 1 naming each problem");
  verify->add_option("STEP", path, "step directory or root")->required();
  verify->add_flag("--json", as_json, "machine-readable output");

  auto* reshard = app.add_subcommand("reshard", "rewrite a step for another mesh, streaming tile intersections");
  reshard->add_option("STEP", path, "step directory or root")->required();
  reshard->add_option("--mesh", mesh_text, "target mesh, e.g. domain=4,tensor=2")->required();
  reshard->add_option("--partition", partition_path, "JSON: tensor name or glob -> partition spec (default: keep)");
  reshard->add_option("--out", out, "target checkpoint root")->required();
  std::string domain_grid, export_data;
  reshard->add_option("--domain-grid", domain_grid,
                      "jigsaw-train checkpoints: the domain grid LATxLON of the runs to come on --mesh domain=s,tensor=s "
                      "(default 1xs); any grid loads on any mesh, this one reads one tile per block");

  auto* import = app.add_subcommand("import", "a safetensors file -> a sharded checkpoint");
  import->add_option("FILE", path, "the .safetensors file")->required();
  import->add_option("--mesh", mesh_text, "mesh, e.g. domain=2,tensor=2")->required();
  import->add_option("--partition", partition_path,
                     "JSON: tensor name or glob -> partition spec; unmatched: replicated");
  import->add_option("--out", out, "checkpoint root")->required();
  import->add_option("--step", step, "step number (default 0)")->check(cli::AtLeast(0));

  std::string export_format, codec = "zstd";
  auto* exp =
      app.add_subcommand("export", "a step -> one safetensors file, or a Zarr v3 group with one array per tensor");
  exp->add_option("STEP", path, "step directory or root")->required();
  exp->add_option("--out", out, "a .safetensors file (local), or a Zarr store (path or URL, must be empty)")
      ->required();
  exp->add_option("--format", export_format, "safetensors or zarr (default: safetensors for *.safetensors, else zarr)")
      ->check(CLI::IsMember({"safetensors", "zarr"}));
  exp->add_option("--codec", codec, "Zarr export: none, zstd, blosc-lz4, gzip, ... (default zstd)");
  bool with_moments = false;
  exp->add_flag("--with-moments", with_moments,
                "jigsaw-train checkpoints: also the Adam moments (adam_m/<name>, adam_v/<name>); by default the "
                "weights only, which torch's load_state_dict(strict=True) takes");
  exp->add_option("--data", export_data,
                  "jigsaw-train checkpoints that recorded no data contract: the store they were trained on (its "
                  "channels and statistics go into the export)");
  exp->footer(
      "A jigsaw-train checkpoint exports as the model jigsaw.torch.WeatherMixer.from_checkpoint loads: every tensor "
      "in its stored layout (token-mix weights by patch position, whatever mesh trained it) and, in "
      "__metadata__[\"jigsaw\"], the model, the channels, the normalisation statistics, the static fields, the "
      "time step, the grid and the conventions (README, \"Exported models\").");

  app.add_flag("--no-sync", no_sync, "skip fsync (tests, scratch space)");
  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);
  SaveOptions save;
  save.sync = !no_sync;

  if (import->parsed()) {
    auto mesh = Mesh::Parse(mesh_text);
    if (!mesh.ok()) return Fail(mesh.status());
    auto rules = PartitionFile(partition_path, false);
    if (!rules.ok()) return Fail(rules.status());
    auto root = OpenKvStore(out);
    if (!root.ok()) return Fail(root.status());
    Status s = ImportSafetensors(path, root->get(), step, *mesh, *rules, save);
    if (!s.ok()) return Fail(s);
    std::cout << "imported " << path << " as " << (*root)->url() << "/" << StepDirectory(step) << " on mesh "
              << mesh->ToString() << "\n";
    return 0;
  }
  auto opened = OpenCheckpointStep(path);
  if (!opened.ok()) return Fail(opened.status());
  auto& [root, step_dir] = *opened;
  if (inspect->parsed()) {
    auto m = ReadManifest(root.get(), step_dir);
    if (!m.ok()) return Fail(m.status());
    if (as_json) {
      std::cout << m->ToJson().dump(2) << "\n";
      return 0;
    }
    int64_t bytes = 0;
    for (const auto& t : m->tensors)
      for (const auto& tile : t.tiles) bytes += tile.nbytes;
    std::cout << root->url() << "/" << step_dir << ": step " << m->step << ", mesh " << m->mesh.ToString() << " ("
              << m->mesh.size() << " ranks), " << m->tensors.size() << " tensors, " << bytes / 1e6 << " MB\n";
    for (const auto& t : m->tensors) {
      std::cout << "  " << t.spec.name << "  " << t.spec.dtype.name << " [";
      for (size_t d = 0; d < t.spec.shape.size(); ++d) std::cout << (d ? ", " : "") << t.spec.shape[d];
      std::cout << "]  partition " << PartitionSpecToJson(t.spec.partition).dump() << "  " << t.tiles.size()
                << " tiles\n";
    }
    return 0;
  }
  if (verify->parsed()) {
    auto problems = VerifyCheckpoint(root.get(), step_dir);
    if (!problems.ok()) return Fail(problems.status());
    if (as_json) {
      std::cout << nlohmann::json{{"ok", problems->empty()}, {"problems", *problems}}.dump(2) << "\n";
    } else {
      for (const auto& p : *problems) std::cout << "problem: " << p << "\n";
      std::cout << root->url() << "/" << step_dir << ": "
                << (problems->empty() ? "ok" : std::to_string(problems->size()) + " problems") << "\n";
    }
    return problems->empty() ? 0 : 1;
  }
  if (reshard->parsed()) {
    auto mesh = Mesh::Parse(mesh_text);
    if (!mesh.ok()) return Fail(mesh.status());
    auto rules = PartitionFile(partition_path, true);
    if (!rules.ok()) return Fail(rules.status());
    auto dst = OpenKvStore(out);
    if (!dst.ok()) return Fail(dst.status());
    auto m = ReadManifest(root.get(), step_dir);
    if (!m.ok()) return Fail(m.status());
    auto target = train::ReshardMesh(*m, mesh_text, domain_grid);
    if (!target.ok()) return Fail(target.status());
    *mesh = *target;
    Status s = ReshardCheckpoint(root.get(), step_dir, *mesh, *rules, dst->get(), save);
    if (!s.ok()) return Fail(s);
    std::cout << "resharded " << root->url() << "/" << step_dir << " onto mesh " << mesh->ToString() << " in "
              << (*dst)->url() << "\n";
    return 0;
  }
  if (exp->parsed()) {
    if (export_format.empty()) export_format = out.ends_with(".safetensors") ? "safetensors" : "zarr";
    Status s;
    if (export_format == "zarr") {
      if (!export_data.empty() || with_moments)
        return Fail(InvalidArgumentError("--data and --with-moments apply to a safetensors export (the Zarr export "
                                         "writes every tensor of the step as it is stored)"));
      auto m = ReadManifest(root.get(), step_dir);
      if (!m.ok()) return Fail(m.status());
      if (train::IsTrainCheckpoint(*m) && m->mesh.AxisSize("domain_lat") == 0)
        return Fail(FailedPreconditionError("this jigsaw-train checkpoint keeps its tokens in its run's order (made "
                                            "before the stored layout): export it to .safetensors, which converts it"));
      auto dst = OpenKvStore(out);
      if (!dst.ok()) return Fail(dst.status());
      s = ExportZarr(root.get(), step_dir, dst->get(), codec);
    } else if (out.find("://") != std::string::npos) {
      s = UnimplementedError("safetensors export writes a local file, not " + out + " (export --format zarr to a URL)");
    } else {
      auto m = ReadManifest(root.get(), step_dir);
      if (!m.ok()) return Fail(m.status());
      if (train::IsTrainCheckpoint(*m)) {
        s = train::ExportModel(root.get(), step_dir, out, {with_moments, export_data});
      } else {
        if (!export_data.empty() || with_moments)
          return Fail(InvalidArgumentError("--data and --with-moments apply to jigsaw-train checkpoints"));
        s = ExportSafetensors(root.get(), step_dir, out);
      }
    }
    if (!s.ok()) return Fail(s);
    std::cout << "exported " << root->url() << "/" << step_dir << " to " << out << "\n";
    return 0;
  }
  return 0;
}
