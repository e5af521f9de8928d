// jigsaw-bench: measure jigsaw's throughput on the user's own data and storage.
#include <tbb/global_control.h>

#include <tbb/parallel_for.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <chrono>
#include <fstream>
#include <optional>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/common_flags.h"
#include "pipeline/sources/grib_index.h"
#include "jobs/train_config.h"
#include "train/gemm_rate.h"
#include "pipeline/loader/loader.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/checkpoint/throughput.h"
#include "storage/codec/codec.h"
#include "storage/zarr/metadata.h"
#include "pipeline/grid/tile_grid.h"
#include "pipeline/shard/shard_store.h"
#include "storage/zarr/throughput.h"
#include "base/first_error.h"
#include "base/peak_memory.h"

namespace {

using namespace jigsaw;

int Fail(const Status& s) { return cli::Fail("jigsaw-bench", s); }

// This process's peak resident memory so far.

// The chunks of `data` (time, [member,] channel, lat, lon) that are `rank`'s tiles in a jigsaw-shard store.
Result<std::function<bool(const std::vector<int64_t>&)>> RankChunks(KvStore* store, int64_t rank) {
  ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(store));  // the grid as the loader reads it
  const TileGrid grid = info.tiles;
  if (rank >= grid.num_tiles()) {
    return InvalidArgumentError("rank " + std::to_string(rank) + " is outside the " + grid.ToString() + " tile grid");
  }
  const TileGrid::Tile t = grid.TileOfRank(rank);
  const size_t e = info.members.empty() ? 0 : 1;  // [time, member, channel, lat, lon] with ensemble members
  return std::function<bool(const std::vector<int64_t>&)>([t, e](const std::vector<int64_t>& i) {
    return i.size() == 4 + e && i[1 + e] == t.k && i[2 + e] == t.i && i[3 + e] == t.j;
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jigsaw-bench: measure jigsaw's storage throughput on your own data."};
  app.require_subcommand(1);
  app.fallthrough();
  int repeats = 3;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);
  bool as_json = false;
  app.add_option("--repeats", repeats, "timed repetitions; medians are reported")->check(CLI::PositiveNumber);
  app.add_flag("--json", as_json, "machine-readable output");

  std::string url, array, raw, dtype_name = "float32";
  bool ceiling = false, fresh = false;
  std::vector<std::string> codecs = {"blosc-lz4",     "blosc-lz4hc", "blosc-zstd", "blosc-zlib",
                                     "blosc-blosclz", "zstd",        "gzip",       "zlib"};

  auto* read = app.add_subcommand("read", "read and decode every stored chunk of an array, in parallel");
  read->add_option("URL", url, "store")->required();
  read->add_option("--array", array, "array path inside the store (default: the root array)");
  read->add_flag("--ceiling", ceiling, "also time decoding alone, from chunks already in memory");
  int64_t read_rank = -1;
  read->add_option("--rank", read_rank,
                   "only this rank's tiles (a store written by jigsaw-shard: its chunks are the ranks' tiles), "
                   "the bytes the loader reads for it");
  read->add_flag("--fresh-output", fresh,
                 "a new output buffer per repeat, paying its page faults (as peers that return new arrays); "
                 "default: one reused buffer, as a loader's batch buffers");

  auto* codec = app.add_subcommand("codecs", "single-thread encode/decode speed of each codec on a raw file");
  codec->add_option("FILE", raw, "raw little-endian elements (e.g. one chunk)")->required()->check(CLI::ExistingFile);
  codec->add_option("--dtype", dtype_name, "element type of FILE (default float32)");
  codec->add_option("--codecs", codecs, "codec names, and crc32c (the checksum of every v3 chunk) (default: all)");

  LoaderOptions lo;
  double seconds = 10;
  double step_seconds = 0;
  auto* loader = app.add_subcommand("loader", "run the prefetch loader for one rank and report what it delivers");
  loader->add_option("URL", url, "store written by jigsaw-shard")->required();
  loader->add_option("--rank", lo.rank, "model-parallel rank (its tile)");
  loader->add_option("--batch-size", lo.batch_size, "samples per batch (default 1)");
  loader->add_option("--lead-steps", lo.lead_steps, "targets per sample (default 1)");
  loader->add_option("--prefetch", lo.prefetch, "batches in flight (default 4)");
  loader->add_flag("--normalize", lo.normalize, "normalise with the store's statistics");
  std::string batch_type = "float32";
  loader->add_option("--dtype", batch_type, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}));
  loader->add_option("--seconds", seconds, "how long to run (default 10)")->check(cli::AtLeast(0.001));
  loader->add_option("--step-seconds", step_seconds,
                     "stand-in compute: sleep this long after each batch, as a training step would take "
                     "(the loader prefetches meanwhile); the --json report's wait_share is then the run's share "
                     "spent waiting for data, and steady_wait_share and steady_samples_per_s the same once the "
                     "pipeline is full (from the arrival of batch --prefetch to the last's; first_batch_seconds "
                     "is the fill)")
      ->check(cli::AtLeast(0.0));
  loader->add_option("--max-batches", repeats, "stop after this many batches (default: by time)")
      ->check(cli::AtLeast(1));

  std::string ckpt_dir, ckpt_mesh = "domain=2,tensor=2", reshard_mesh = "domain=4,tensor=2";
  double gb = 2.0;
  auto* ckpt = app.add_subcommand("ckpt", "save (with fsync), load and reshard a synthetic checkpoint");
  ckpt->add_option("DIR", ckpt_dir, "scratch directory (replaced)")->required();
  ckpt->add_option("--gb", gb, "checkpoint size in GB (16 float32 tensors, default 2)");
  ckpt->add_option("--mesh", ckpt_mesh, "mesh to save on (default domain=2,tensor=2)");
  ckpt->add_option("--reshard-mesh", reshard_mesh, "mesh to reshard to (default domain=4,tensor=2)");
  bool buffered = false;
  ckpt->add_flag("--buffered", buffered, "write rank files through the page cache (default: past it, O_DIRECT)");

  std::string gemm_backend = "cpu", gemm_config, gemm_grid = "720x1440", gemm_shapes;
  int64_t gemm_channels = 69;
  int gemm_threads = 0, gemm_repeats = 3;
  auto* gemm =
      app.add_subcommand("gemm",
                         "the backend's GEMM rate at a WeatherMixer step's own shapes (the ceiling jigsaw-train's "
                         "FLOP rate is measured against), or at shapes given");
  gemm->add_option("--backend", gemm_backend, "cpu, cpu:bf16, cuda, cuda:tf32 or cuda:bf16")->capture_default_str();
  gemm->add_option("--config", gemm_config, "model.json (jigsaw-train's): the step's GEMM shapes");
  gemm->add_option("--grid", gemm_grid, "HxW of a sample, with --config")->capture_default_str();
  gemm->add_option("--channels", gemm_channels, "channels of a sample, with --config")->capture_default_str();
  gemm->add_option("--shapes", gemm_shapes, "instead: MxNxK[,MxNxK...] products C[M,N] = A[M,K] B[K,N]");
  gemm->add_option("--blas-threads", gemm_threads, "CPU threads (0: all)");
  gemm->add_option("--repeats", gemm_repeats, "passes; the best counts")->capture_default_str();
  gemm->add_flag("--json", as_json, "machine-readable output");

  std::string grib_path;
  auto* grib = app.add_subcommand("grib",
                                  "ecCodes decoding every message of a GRIB file on one thread: the ceiling of "
                                  "jigsaw-shard's GRIB reads (which decode one message at a time)");
  grib->add_option("FILE", grib_path, "GRIB file")->required();
  grib->add_flag("--json", as_json, "machine-readable output");

  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);

  if (grib->parsed()) {
    std::vector<double> seconds;
    int64_t bytes = 0;
    for (int r = 0; r < repeats; ++r) {
      bytes = 0;
      auto s = DecodeEveryMessage(grib_path, &bytes);
      if (!s.ok()) return Fail(s.status());
      seconds.push_back(*s);
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    if (as_json) {
      std::cout << nlohmann::json{{"file", grib_path}, {"bytes_float32", bytes}, {"seconds", median},
                                  {"gb_per_s", bytes / median / 1e9}}.dump() << "\n";
    } else {
      std::cout << grib_path << ": " << bytes / 1e9 << " GB of float32 values decoded in " << median << " s = "
                << bytes / median / 1e9 << " GB/s (median of " << repeats << ", one thread)\n";
    }
    return 0;
  }

  if (gemm->parsed()) {
    auto backend = train::NewBackend(gemm_backend, gemm_threads);
    if (!backend.ok()) return Fail(backend.status());
    std::vector<train::GemmShape> shapes;
    if (!gemm_shapes.empty()) {
      std::stringstream list(gemm_shapes);
      for (std::string item; std::getline(list, item, ',');) {
        long long m = 0, n = 0, k = 0;
        char x1 = 0, x2 = 0;
        std::stringstream one(item);
        if (!(one >> m >> x1 >> n >> x2 >> k) || x1 != 'x' || x2 != 'x' || m < 1 || n < 1 || k < 1 || !one.eof()) {
          return Fail(InvalidArgumentError("--shapes: \"" + item + "\" is not MxNxK with positive sizes"));
        }
        shapes.push_back({false, false, m, n, k});
      }
    } else {
      if (gemm_config.empty())
        return Fail(InvalidArgumentError("gemm: give --config model.json (with --grid, --channels) or --shapes"));
      std::ifstream f(gemm_config);
      if (!f) return Fail(NotFoundError("cannot open " + gemm_config));
      std::stringstream text;
      text << f.rdbuf();
      auto j = ParseJson(text.str(), gemm_config);
      if (!j.ok()) return Fail(j.status());
      auto config = train::ParseTrainConfig(*j);
      if (!config.ok()) return Fail(config.status().Annotate(gemm_config));
      train::ModelConfig mc = config->model;
      mc.channels = gemm_channels;
      if (std::sscanf(gemm_grid.c_str(), "%ldx%ld", &mc.height, &mc.width) != 2) {
        return Fail(InvalidArgumentError("--grid " + gemm_grid + " is not HxW"));
      }
      if (config->token_mix_ratio > 0)
        mc.token_hidden = std::max<int64_t>(1, std::llround(config->token_mix_ratio * mc.tokens()));
      Status valid = mc.Validate(1);
      if (!valid.ok()) return Fail(valid.Annotate(gemm_config));
      shapes = train::StepGemmShapes(mc);
    }
    const train::GemmRate rate = train::MeasureGemmRate(backend->get(), shapes, gemm_repeats);
    if (as_json) {
      std::cout << nlohmann::json{{"backend", gemm_backend},
                                  {"shapes", shapes.size()},
                                  {"flops", rate.flops},
                                  {"seconds", rate.seconds},
                                  {"flop_per_s", rate.flop_per_s()}}
                       .dump()
                << "\n";
    } else {
      std::cout << gemm_backend << ": " << shapes.size() << " GEMMs, " << rate.flops / 1e9 << " GFLOP in "
                << rate.seconds << " s = " << rate.flop_per_s() / 1e9 << " GFLOP/s (best of " << gemm_repeats << ")\n";
    }
    return 0;
  }

  if (read->parsed()) {
    auto store = OpenKvStore(url);
    if (!store.ok()) return Fail(store.status());
    std::string path = array == "/" ? "" : array;
    ReadBenchOptions o{repeats, false, fresh, nullptr};
    if (read_rank >= 0) {
      auto keep = RankChunks(store->get(), read_rank);
      if (!keep.ok()) return Fail(keep.status());
      o.keep = *keep;
    }
    auto r = MeasureChunkReads(store->get(), path, o);
    if (!r.ok()) return Fail(r.status());
    nlohmann::json j = {{"url", (*store)->url()},
                        {"array", array},
                        {"output", fresh ? "fresh" : "reused"},
                        {"chunks", r->chunks},
                        {"stored_bytes", r->stored_bytes},
                        {"decoded_bytes", r->decoded_bytes},
                        {"seconds", r->median_seconds()},
                        {"gb_per_s", r->decoded_bytes / r->median_seconds() / 1e9}};
    if (ceiling) {
      o.from_memory = true;
      auto c = MeasureChunkReads(store->get(), path, o);
      if (!c.ok()) return Fail(c.status());
      j["ceiling_seconds"] = c->median_seconds();
      j["ceiling_gb_per_s"] = c->decoded_bytes / c->median_seconds() / 1e9;
      j["fraction_of_ceiling"] = c->median_seconds() / r->median_seconds();
    }
    if (as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "read " << r->chunks << " chunks, " << r->decoded_bytes / 1e9 << " GB decoded ("
                << r->stored_bytes / 1e9 << " GB stored) in " << r->median_seconds()
                << " s = " << j["gb_per_s"].get<double>() << " GB/s\n";
      if (ceiling) {
        std::cout << "codec-only ceiling " << j["ceiling_gb_per_s"].get<double>() << " GB/s; reads reach "
                  << 100 * j["fraction_of_ceiling"].get<double>() << "% of it\n";
      }
    }
    return 0;
  }
  if (loader->parsed()) {
    lo.threads = common.threads;
    lo.dtype = ParseBatchType(batch_type).value();  // checked by the flag
    if (loader->count("--max-batches") == 0) repeats = -1;
    using Clock = std::chrono::steady_clock;
    auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
    const auto opened = Clock::now();
    auto l = Loader::Open(url, lo);
    if (!l.ok()) return Fail(l.status());
    auto start = Clock::now();
    int64_t batches = 0;
    // The steady state: from the arrival of batch `prefetch` (the pipeline's depth: the batches read at once
    // while it fills, which arrive together where bandwidth is short) to the last's, and the waits in between.
    std::vector<double> arrivals, waits;
    while (true) {
      const auto asked = Clock::now();
      auto b = (*l)->Next();
      if (!b.ok()) return Fail(b.status());
      waits.push_back(since(asked));
      arrivals.push_back(since(opened));
      ++batches;
      if (step_seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(step_seconds));
      if (repeats > 0 && batches >= repeats) break;
      if (repeats < 0 && since(start) >= seconds) break;
    }
    LoaderStats st = (*l)->stats();
    const double samples = static_cast<double>(batches * lo.batch_size);
    nlohmann::json j = {{"url", url},
                        {"rank", lo.rank},
                        {"batches", batches},
                        {"samples", samples},
                        {"seconds", st.seconds},
                        {"samples_per_s", samples / st.seconds},
                        {"gb_per_s", st.bytes_delivered / st.seconds / 1e9},
                        {"read_amplification", st.read_amplification()},
                        {"consumer_wait_seconds", st.consumer_wait_seconds},
                        {"step_seconds", step_seconds},
                        {"wait_share", st.consumer_wait_seconds / st.seconds},
                        {"first_batch_seconds", arrivals.front()},
                        {"bytes_read", st.bytes_read},
                        {"batch_bytes", (*l)->batch_bytes()},
                        {"allocator", (*l)->allocator_name()}};
    const size_t from = static_cast<size_t>(lo.prefetch);  // arrivals[from - 1]: the pipeline is full
    if (arrivals.size() > from && arrivals.back() > arrivals[from - 1]) {
      const double window = arrivals.back() - arrivals[from - 1];
      double waited = 0;
      for (size_t i = from; i < waits.size(); ++i) waited += waits[i];
      j["steady_samples_per_s"] = static_cast<double>((arrivals.size() - from) * lo.batch_size) / window;
      j["steady_wait_share"] = waited / window;
    }
    if (as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf(
          "rank %lld: %lld batches, %.2f samples/s, %.3f GB/s delivered, read amplification %.2f, "
          "consumer waited %.2f s of %.2f s (%s)\n",
          static_cast<long long>(lo.rank), static_cast<long long>(batches), samples / st.seconds,
          st.bytes_delivered / st.seconds / 1e9, st.read_amplification(), st.consumer_wait_seconds, st.seconds,
          (*l)->allocator_name().c_str());
    }
    return 0;
  }
  if (ckpt->parsed()) {
    auto mesh = Mesh::Parse(ckpt_mesh);
    auto target = Mesh::Parse(reshard_mesh);
    if (!mesh.ok()) return Fail(mesh.status());
    if (!target.ok()) return Fail(target.status());
    auto r = MeasureCheckpoint({.dir = ckpt_dir, .gb = gb, .mesh = *mesh, .reshard_to = *target, .buffered = buffered});
    if (!r.ok()) return Fail(r.status());
    std::cout << r->dump(2) << "\n";
    return 0;
  }
  if (codec->parsed()) {
    auto dtype = DataTypeFromName(dtype_name);
    if (!dtype.ok()) return Fail(dtype.status());
    std::ifstream f(raw, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string data = ss.str();
    auto r = MeasureCodecs(data, *dtype, codecs, repeats);
    if (!r.ok()) return Fail(r.status());
    nlohmann::json j = nlohmann::json::array();
    for (const auto& c : *r) {
      j.push_back(
          {{"codec", c.codec}, {"encode_mb_s", c.encode_mb_s}, {"decode_mb_s", c.decode_mb_s}, {"ratio", c.ratio}});
    }
    if (as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& c : *r) {
        std::printf("%-14s encode %8.1f MB/s  decode %8.1f MB/s  ratio %.2f\n", c.codec.c_str(), c.encode_mb_s,
                    c.decode_mb_s, c.ratio);
      }
    }
    return 0;
  }
  return 0;
}
