// jigsaw-bench: measure jigsaw's throughput on the user's own data and storage.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "pipeline/loader/loader.h"
#include "storage/zarr/throughput.h"

namespace {

using namespace jigsaw;

int Fail(const Status& s) {
  std::cerr << "jigsaw-bench: " << s.message() << "\n";
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jigsaw-bench: measure jigsaw's storage throughput on your own data."};
  app.require_subcommand(1);
  app.fallthrough();
  int threads = 0, repeats = 3;
  bool as_json = false;
  app.add_option("--threads", threads, "worker threads (default: all cores)");
  app.add_option("--repeats", repeats, "timed repetitions; medians are reported")->check(CLI::PositiveNumber);
  app.add_flag("--json", as_json, "machine-readable output");

  std::string url, array, raw, dtype_name = "float32";
  bool ceiling = false, fresh = false;
  std::vector<std::string> codecs = {"blosc-lz4", "blosc-lz4hc", "blosc-zstd", "blosc-zlib", "blosc-blosclz",
                                     "zstd", "gzip", "zlib"};

  auto* read = app.add_subcommand("read", "read and decode every stored chunk of an array, in parallel");
  read->add_option("URL", url, "store")->required();
  read->add_option("--array", array, "array path inside the store (default: the root array)");
  read->add_flag("--ceiling", ceiling, "also time decoding alone, from chunks already in memory");
  read->add_flag("--fresh-output", fresh,
                 "a new output buffer per repeat, paying its page faults (as peers that return new arrays); "
                 "default: one reused buffer, as a loader's batch buffers");

  auto* codec = app.add_subcommand("codecs", "single-thread encode/decode speed of each codec on a raw file");
  codec->add_option("FILE", raw, "raw little-endian elements (e.g. one chunk)")->required()->check(CLI::ExistingFile);
  codec->add_option("--dtype", dtype_name, "element type of FILE (default float32)");
  codec->add_option("--codecs", codecs, "codec names (default: all)");

  LoaderOptions lo;
  double seconds = 10;
  auto* loader = app.add_subcommand("loader", "run the prefetch loader for one rank and report what it delivers");
  loader->add_option("URL", url, "store written by jigsaw-shard")->required();
  loader->add_option("--rank", lo.rank, "model-parallel rank (its tile)");
  loader->add_option("--batch-size", lo.batch_size, "samples per batch (default 1)");
  loader->add_option("--lead-steps", lo.lead_steps, "targets per sample (default 1)");
  loader->add_option("--prefetch", lo.prefetch, "batches in flight (default 4)");
  loader->add_flag("--normalize", lo.normalize, "normalise with the store's statistics");
  loader->add_option("--dtype", lo.dtype, "float32 or bfloat16");
  loader->add_option("--seconds", seconds, "how long to run (default 10)");
  loader->add_option("--max-batches", repeats, "stop after this many batches (default: by time)");

  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<tbb::global_control> limit;
  if (threads > 0) limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);

  if (read->parsed()) {
    auto store = OpenKvStore(url);
    if (!store.ok()) return Fail(store.status());
    std::string path = array == "/" ? "" : array;
    ReadBenchOptions o{repeats, false, fresh};
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
                << r->stored_bytes / 1e9 << " GB stored) in " << r->median_seconds() << " s = "
                << j["gb_per_s"].get<double>() << " GB/s\n";
      if (ceiling) {
        std::cout << "codec-only ceiling " << j["ceiling_gb_per_s"].get<double>() << " GB/s; reads reach "
                  << 100 * j["fraction_of_ceiling"].get<double>() << "% of it\n";
      }
    }
    return 0;
  }
  if (loader->parsed()) {
    lo.threads = threads;
    if (loader->count("--max-batches") == 0) repeats = -1;
    auto l = Loader::Open(url, lo);
    if (!l.ok()) return Fail(l.status());
    auto start = std::chrono::steady_clock::now();
    int64_t batches = 0;
    while (true) {
      auto b = (*l)->Next();
      if (!b.ok()) return Fail(b.status());
      ++batches;
      if (repeats > 0 && batches >= repeats) break;
      if (repeats < 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= seconds) break;
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
                        {"bytes_read", st.bytes_read},
                        {"batch_bytes", (*l)->batch_bytes()},
                        {"allocator", (*l)->allocator_name()}};
    if (as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf("rank %lld: %lld batches, %.2f samples/s, %.3f GB/s delivered, read amplification %.2f, "
                  "consumer waited %.2f s of %.2f s (%s)\n",
                  static_cast<long long>(lo.rank), static_cast<long long>(batches), samples / st.seconds,
                  st.bytes_delivered / st.seconds / 1e9, st.read_amplification(), st.consumer_wait_seconds, st.seconds,
                  (*l)->allocator_name().c_str());
    }
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
      j.push_back({{"codec", c.codec}, {"encode_mb_s", c.encode_mb_s}, {"decode_mb_s", c.decode_mb_s}, {"ratio", c.ratio}});
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
