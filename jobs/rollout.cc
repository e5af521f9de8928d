#include "jobs/rollout.h"

#include "base/human.h"

#include "storage/codec/crc32c.h"
#include "storage/kvstore/checksum_record.h"

#include "base/peak_memory.h"

#include <chrono>
#include <cstdio>

#include "jobs/model_checkpoint.h"
#include "jobs/store_facts.h"
#include "pipeline/shard/plan.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"
#include "train/mesh.h"

namespace jigsaw::train {
namespace {

using Clock = std::chrono::steady_clock;

// The forecast store's identity: a rerun with another model, other data or other settings must not mix into
// it. The checkpoint and the data by content (the step's manifest checksum, the store's plan fingerprint),
// never by how their paths are spelled.
Result<nlohmann::json> Identity(KvStore* ckpt_root, const CheckpointRun& run, const StoreFacts& f,
                                const std::vector<int64_t>& inits, int64_t leads) {
  ASSIGN_OR_RETURN(ReadResult manifest, ckpt_root->Read(run.step_dir + "/manifest.json"));
  return nlohmann::json{{"checkpoint_manifest_crc32c", Crc32c(manifest.value)},
                        {"checkpoint_step", run.step},
                        {"data_fingerprint", f.fingerprint},
                        {"init_times", inits},
                        {"leads", leads},
                        {"step_seconds", f.step_seconds}};
}

Status CreateForecastStore(KvStore* out, int format, const StoreFacts& f, const std::vector<int64_t>& inits,
                           int64_t leads, const nlohmann::json& identity) {
  const int64_t C = static_cast<int64_t>(f.channels.size());
  ArraySpec s;
  s.zarr_format = format;
  s.shape = {static_cast<int64_t>(inits.size()), leads + 1, C, f.height, f.width};
  s.chunks = {1, 1, SplitLength(C, f.tiles.ch), SplitLength(f.height, f.tiles.lat), SplitLength(f.width, f.tiles.lon)};
  s.dtype = DataTypeFromName("float32").value();
  s.fill_value = "NaN";
  s.codec = "blosc-lz4";
  s.dimension_names = {"init_time", "lead_time", "channel", "latitude", "longitude"};
  s.attributes = {{"channels", f.channels}, {"long_name", "WeatherMixer forecast (jigsaw-rollout), physical units"}};
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(s));
  RETURN_IF_ERROR(WriteGroup(out, "", format,
                             {{"channels", f.channels}, {"jigsaw", JigsawMark("jigsaw-rollout", false, identity)}}));
  RETURN_IF_ERROR(Array::Create(out, "forecast", std::move(m)).status());
  RETURN_IF_ERROR(WriteTextCoordinateArray(out, format, "channel", f.channels, {{"long_name", "channel"}}));
  RETURN_IF_ERROR(WriteCoordinateArray(out, format, "init_time", "int64",
                                       std::string_view(reinterpret_cast<const char*>(inits.data()), inits.size() * 8),
                                       static_cast<int64_t>(inits.size()),
                                       {{"units", "seconds since 1970-01-01"}, {"calendar", "proleptic_gregorian"}}));
  std::vector<int64_t> hours(leads + 1);
  for (int64_t k = 0; k <= leads; ++k) hours[k] = k * f.step_seconds / 3600;
  RETURN_IF_ERROR(WriteCoordinateArray(out, format, "lead_time", "int64",
                                       std::string_view(reinterpret_cast<const char*>(hours.data()), hours.size() * 8),
                                       leads + 1,
                                       {{"units", "hours"},
                                        {"long_name", "forecast lead time"},
                                        {"dtype", "timedelta64[ns]"}}));  // xarray decodes it as a timedelta
  RETURN_IF_ERROR(
      WriteCoordinateArray(out, format, "latitude", "float64",
                           std::string_view(reinterpret_cast<const char*>(f.latitudes.data()), f.height * 8), f.height,
                           {{"units", "degrees_north"}, {"standard_name", "latitude"}}));
  return WriteCoordinateArray(out, format, "longitude", "float64",
                              std::string_view(reinterpret_cast<const char*>(f.longitudes.data()), f.width * 8),
                              f.width, {{"units", "degrees_east"}, {"standard_name", "longitude"}});
}

}  // namespace

Result<RolloutReport> RunRollout(const RolloutOptions& o, TensorCommunicator* world, std::ostream& out) {
  const auto t0 = Clock::now();
  const bool leader = world->rank() == 0;
  // ---- what can be refused, before any work ----
  ASSIGN_OR_RETURN(JigsawMesh jigsaw_mesh, ParseJigsawMesh(o.mesh));
  const int64_t s = jigsaw_mesh.s;
  if (world->size() != s * s) {
    return InvalidArgumentError("a rollout on " + o.mesh + " runs on " + std::to_string(s * s) + " ranks, not " +
                                std::to_string(world->size()));
  }
  ASSIGN_OR_RETURN(auto ck, OpenCheckpointStep(o.ckpt));
  auto run_or = ReadCheckpointRun(ck.first.get(), ck.second);
  if (!run_or.ok()) return run_or.status().Annotate(o.ckpt);
  ASSIGN_OR_RETURN(ModelConfig mc, ModelConfig::FromJson(run_or->model));
  auto facts_or = ReadStoreFacts(o.data);
  if (!facts_or.ok()) return facts_or.status().Annotate(o.data);
  const StoreFacts& f = *facts_or;
  RETURN_IF_ERROR(RequireSingleMember(f, "jigsaw-rollout").Annotate(o.data));
  if (static_cast<int64_t>(f.channels.size()) != mc.channels || f.height != mc.height || f.width != mc.width) {
    return InvalidArgumentError(o.data + ": " + std::to_string(f.channels.size()) + " channels on " +
                                std::to_string(f.height) + "x" + std::to_string(f.width) +
                                ", but the checkpoint's model has " + std::to_string(mc.channels) + " on " +
                                std::to_string(mc.height) + "x" + std::to_string(mc.width));
  }
  if (static_cast<int64_t>(f.static_channels.size()) != mc.static_channels) {
    return InvalidArgumentError(o.data + ": " + std::to_string(f.static_channels.size()) +
                                " static fields, but the checkpoint's model takes " +
                                std::to_string(mc.static_channels) + " static channels");
  }
  RETURN_IF_ERROR(CheckDataContract(*run_or, f).Annotate(o.data));
  auto grid = RunDomainGrid(mc, s, f.tiles.lat, f.tiles.lon, f.tiles.ch);
  if (!grid.ok()) return grid.status().Annotate(o.data + " on --mesh " + o.mesh);
  ASSIGN_OR_RETURN(const int64_t lead_seconds, ParseStep(o.lead));
  if (lead_seconds % f.step_seconds != 0) {
    return InvalidArgumentError("--lead " + o.lead + " is not a multiple of the store's step (" +
                                std::to_string(f.step_seconds / 3600) + "h)");
  }
  const int64_t leads = lead_seconds / f.step_seconds;
  ASSIGN_OR_RETURN(const int64_t first, ParseTimeBound(o.init, false));
  int64_t last = first, every = f.step_seconds;
  if (!o.init_end.empty()) {
    ASSIGN_OR_RETURN(last, ParseTimeBound(o.init_end, true));
  }
  if (!o.init_every.empty()) {
    ASSIGN_OR_RETURN(every, ParseStep(o.init_every));
  }
  if (last < first || every <= 0)
    return InvalidArgumentError("--init-end lies before --init, or --init-every is not positive");
  std::vector<int64_t> inits, init_index;
  for (int64_t t = first; t <= last; t += every) {
    auto it = std::lower_bound(f.times.begin(), f.times.end(), t);
    if (it == f.times.end() || *it != t)
      return InvalidArgumentError(o.data + " holds no state at " + FormatIsoTime(t) + " to start from");
    inits.push_back(t);
    init_index.push_back(it - f.times.begin());
  }

  // ---- the model on this mesh, weights from the checkpoint ----
  ASSIGN_OR_RETURN(auto backend, NewRankBackend(o.backend, o.threads, world));
  ASSIGN_OR_RETURN(MeshComms comms, SplitMeshOn(backend->device(), world, s));
  ASSIGN_OR_RETURN(auto model, WeatherMixer::Create(mc, backend.get(), &comms, 0, *grid));
  // A forecast has no backward: one set of block activations serves every block (the same tendencies).
  RETURN_IF_ERROR(model->SetRecompute(true));
  auto loaded = LoadModelCheckpoint(ck.first.get(), ck.second, *model, false);
  if (!loaded.ok()) return loaded.status().Annotate(o.ckpt);
  const TileShape tile = model->tile();
  RETURN_IF_ERROR(SetStaticInput(o.data, f, model.get()));

  // ---- the forecast store: rank 0 makes (or checks) it, then every rank writes its tiles ----
  ASSIGN_OR_RETURN(auto out_store, OpenKvStore(o.out));
  // Every rank records what it writes; rank 0 gathers the entries into the checksum record, written last.
  RecordingKvStore recording(out_store.get());
  KvStore* const dst_store = &recording;
  ASSIGN_OR_RETURN(const nlohmann::json identity, Identity(ck.first.get(), *loaded, f, inits, leads));
  Status made;
  if (leader) {
    made = [&]() -> Status {
      auto info = Array::Open(dst_store, "forecast");
      if (info.ok()) {
        auto root = ReadNodeMetadata(dst_store, "");
        const nlohmann::json* attrs = root.ok() ? &root->attributes : nullptr;
        if (!attrs || !attrs->contains("jigsaw") ||
            (*attrs)["jigsaw"].value("identity", nlohmann::json()) != identity) {
          return FailedPreconditionError(o.out +
                                         " holds another forecast (other checkpoint, initial times or lead): "
                                         "remove it or write elsewhere");
        }
        return OkStatus();
      }
      // Never over a store this forecast did not make (the data store, a source, another tool's output).
      RETURN_IF_ERROR(RequireEmptyOrOurs(dst_store, identity, "--out " + o.out, "this forecast"));
      return CreateForecastStore(dst_store, o.zarr_format, f, inits, leads, identity);
    }();
  }
  RETURN_IF_ERROR(AllOk(world, made));
  ASSIGN_OR_RETURN(auto forecast, Array::Open(dst_store, "forecast"));
  // Every chunk is stored, a NaN one too: a rerun tells what is done by the chunks there, and jigsaw-score
  // reads a chunk gone as a forecast lost.
  forecast->KeepFillChunks(true);
  ASSIGN_OR_RETURN(auto src, OpenCheckedKvStore(o.data));
  ASSIGN_OR_RETURN(auto data, Array::Open(src.get(), "data"));
  data->RequireEveryChunk(true);  // a complete store (ReadStoreFacts): a missing chunk is corruption
  if (data->metadata().dtype.name != "float32") {
    return UnimplementedError(o.data + ": rollouts read float32 stores; this one holds " + data->metadata().dtype.name);
  }

  RolloutReport report;
  report.inits = static_cast<int64_t>(inits.size());
  report.leads = leads;
  const int64_t n = tile.size();
  auto box_at = [&](int64_t a, int64_t b) {
    return Box{{a, b, tile.channel0, tile.row0, tile.col0}, {1, 1, tile.channels, tile.height, tile.width}};
  };
  // Whether initial time k's forecast is all written already: every rank writes its leads in order, so the
  // chunks of its last lead, all present, mean all of its forecast is. The same answer on every rank.
  auto done = [&](size_t k) -> Result<bool> {
    float todo = o.write ? 0.0f : 1.0f;
    const auto& ch = forecast->metadata().chunks;
    for (int64_t c = tile.channel0 / ch[2]; c * ch[2] < tile.channel0 + tile.channels; ++c)
      for (int64_t y = tile.row0 / ch[3]; y * ch[3] < tile.row0 + tile.height; ++y)
        for (int64_t x = tile.col0 / ch[4]; x * ch[4] < tile.col0 + tile.width; ++x) {
          const std::vector<int64_t> index = {static_cast<int64_t>(k), leads, c, y, x};
          ASSIGN_OR_RETURN(ReadResult probe, dst_store->Read(forecast->ChunkKey(index), ByteRange::Span(0, 1)));
          if (probe.missing) todo = 1.0f;
        }
    RETURN_IF_ERROR(world->AllReduceSum(&todo, 1));  // all ranks run the model together, or none
    return todo == 0;
  };
  // Forecasts go through the model `batch` at a time (their tokens the rows of every product).
  const int64_t group = model->SamplesAtOnce(o.batch);
  std::vector<float> state(group * n), tendency(group * n), physical(group * n);
  int64_t applications = 0;
  size_t next = 0;
  while (next < inits.size()) {
    std::vector<size_t> todo;  // the initial times of this group
    for (; next < inits.size() && static_cast<int64_t>(todo.size()) < group; ++next) {
      ASSIGN_OR_RETURN(bool finished, done(next));
      if (finished) {
        ++report.inits_skipped;
      } else {
        todo.push_back(next);
      }
    }
    const int64_t g = static_cast<int64_t>(todo.size());
    if (g == 0) continue;
    for (int64_t q = 0; q < g; ++q) {
      RETURN_IF_ERROR(data->Read(
          Box{{init_index[todo[q]], tile.channel0, tile.row0, tile.col0}, {1, tile.channels, tile.height, tile.width}},
          std::span<char>(reinterpret_cast<char*>(physical.data() + q * n), n * 4)));
    }
    // fn(e, mean, std) for every element e of the group's tiles, with its channel's statistics.
    auto per_element = [&](auto fn) {
      for (int64_t q = 0; q < g; ++q)
        for (int64_t c = 0; c < tile.channels; ++c) {
          const double m = f.mean[tile.channel0 + c], sd = f.std[tile.channel0 + c];
          for (int64_t i = 0; i < tile.height * tile.width; ++i) fn(q * n + c * tile.height * tile.width + i, m, sd);
        }
    };
    for (int64_t lead = 0; lead <= leads; ++lead) {
      if (lead == 0) {
        per_element([&](int64_t e, double m, double sd) { state[e] = static_cast<float>((physical[e] - m) / sd); });
      } else {
        // x_{k+1} = x_k + tendency(x_k), in normalised units; back to physical units to write.
        const auto m0 = Clock::now();
        RETURN_IF_ERROR(model->Predict(state.data(), tendency.data(), g));
        applications += g;
        for (int64_t e = 0; e < g * n; ++e) state[e] += tendency[e];
        per_element([&](int64_t e, double m, double sd) { physical[e] = static_cast<float>(state[e] * sd + m); });
        report.model_seconds += std::chrono::duration<double>(Clock::now() - m0).count();
      }
      if (o.write) {
        for (int64_t q = 0; q < g; ++q) {
          RETURN_IF_ERROR(
              forecast->Write(box_at(static_cast<int64_t>(todo[q]), lead),
                              std::string_view(reinterpret_cast<const char*>(physical.data() + q * n), n * 4)));
          report.gb_written += n * 4 / 1e9;
        }
      }
    }
    report.inits_written += g;
    if (leader && o.progress) {
      std::fprintf(stderr, "\rforecast %zu/%zu (%s)   ", todo.back() + 1, inits.size(),
                   FormatIsoTime(inits[todo.back()]).c_str());
    }
  }
  if (leader && o.progress) std::fprintf(stderr, "\n");
  RETURN_IF_ERROR(world->Barrier());
  ASSIGN_OR_RETURN(auto written, world->Gather(EncodeChecksumRecord(recording.Recorded())));
  Status finished;
  if (leader) {
    finished = [&]() -> Status {
      for (size_t r = 0; r < written.size(); ++r) {
        ASSIGN_OR_RETURN(ChecksumRecord part,
                         DecodeChecksumRecord(written[r], "rank " + std::to_string(r) + "'s record"));
        recording.Adopt(part);
      }
      RETURN_IF_ERROR(WriteGroup(dst_store, "", o.zarr_format,
                                 {{"channels", f.channels}, {"jigsaw", JigsawMark("jigsaw-rollout", true, identity)}}));
      RETURN_IF_ERROR(WriteConsolidated(dst_store, o.zarr_format));
      return recording.WriteRecord();
    }();
  }
  RETURN_IF_ERROR(AllOk(world, finished));
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  report.forecast_steps_per_s = applications / report.seconds;
  report.peak_rss_bytes = PeakRssBytes();
  if (leader) {
    out << "jigsaw-rollout: " << report.inits << " forecasts of " << leads << " steps in " << o.out << ": "
        << report.inits_written << " written, " << report.inits_skipped << " already there; "
        << Significant(report.forecast_steps_per_s) << " forecast steps/s, peak memory "
        << report.peak_rss_bytes / (1 << 20) << " MiB (rank 0)\n";
  }
  return report;
}

}  // namespace jigsaw::train
