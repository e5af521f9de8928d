// jigsaw-bench: measure jigsaw's throughput on the user's own data and storage.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

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
