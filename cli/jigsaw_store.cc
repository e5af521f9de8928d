// jigsaw-store: inspect, read, copy/convert and verify Zarr stores. Parses flags, calls storage/zarr.
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/common_flags.h"
#include "cli/progress.h"
#include "storage/zarr/store_ops.h"

namespace {

using namespace jigsaw;

int Fail(const Status& s) { return cli::Fail("jigsaw-store", s); }

Result<std::vector<int64_t>> ParseShape(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",x", start);
    if (end == std::string::npos) end = text.size();
    try {
      out.push_back(std::stoll(text.substr(start, end - start)));
    } catch (...) {
      return InvalidArgumentError("cannot read the shape \"" + text + "\" (expected e.g. 4,1,721,720)");
    }
    if (out.back() <= 0) return InvalidArgumentError("shape \"" + text + "\" has a non-positive length");
    start = end + 1;
  }
  return out;
}

Status WriteFileAtomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());  // a full disk leaves nothing behind
      return IoError("cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return ErrnoToStatus(e, "rename to " + path);
  }
  return OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "jigsaw-store: inspect, read, copy/convert and verify Zarr v2/v3 stores.\n"
      "Stores are paths, file:///paths, s3://bucket/prefix, gs://bucket/prefix (read-only), http(s)://... (read-only)\n"
      "or memory://names."};
  app.require_subcommand(1);
  app.fallthrough();
  cli::CommonFlags common;
  cli::AddCommonFlags(app, &common);

  std::string url, array, slice, out_path, dst;
  bool as_json = false, decode_cf = false, no_shard = false;
  std::string format, codec, shard, byte_order = "source";

  auto* ls = app.add_subcommand("ls", "list groups and arrays: shape, dtype, chunks, codecs, dimensions, stored bytes");
  ls->add_option("URL", url, "store")->required();
  ls->add_flag("--json", as_json, "machine-readable output");

  auto* get = app.add_subcommand("get", "write a box of an array as a NumPy .npy file");
  get->add_option("URL", url, "store")->required();
  get->add_option("ARRAY", array, "array path inside the store (\"/\" for a root array)")->required();
  get->add_option("--slice", slice, "NumPy-style box, e.g. \"0,:,10:20\" (an integer drops that dimension)");
  get->add_option("--out", out_path, "output .npy file")->required();
  get->add_flag("--decode-cf", decode_cf,
                "apply CF decoding: scale_factor/add_offset/_FillValue to float64 with NaN, times to int64 "
                "seconds since 1970-01-01");

  auto* copy = app.add_subcommand("copy", "copy a whole group, converting format, codec and sharding");
  copy->add_option("SRC", url, "source store")->required();
  copy->add_option("DST", dst, "destination store (must not hold a Zarr store yet)")->required();
  copy->add_option("--format", format, "zarr2 or zarr3 (default: as the source)")
      ->check(CLI::IsMember({"zarr2", "zarr3"}));
  copy->add_option("--codec", codec,
                   "blosc-lz4, blosc-lz4hc, blosc-zstd, blosc-zlib, blosc-blosclz, zstd, gzip, zlib "
                   "or none (default: as the source; into v3, a zlib source becomes gzip, as zlib is no v3 codec)");
  copy->add_option("--shard", shard,
                   "v3 shard shape, a multiple of the chunk shape, e.g. 8,1,721,720; applies to arrays of its rank");
  copy->add_flag("--no-shard", no_shard, "write plain chunks even when the source is sharded");
  copy->add_option("--byte-order", byte_order, "source (default: each array keeps its own), little or big")
      ->check(CLI::IsMember({"source", "little", "big"}));

  auto* verify =
      app.add_subcommand("verify", "decode every chunk, check checksums and metadata; non-zero exit on problems");
  verify->add_option("URL", url, "store")->required();
  verify->add_flag("--json", as_json, "machine-readable output");

  JIGSAW_CLI_PARSE(app, argc, argv);
  auto limit = cli::ApplyCommonFlags(common);

  auto src = OpenKvStore(url);
  if (!src.ok()) return Fail(src.status());

  if (ls->parsed()) {
    Status s = ListStore(src->get(), as_json, std::cout);
    return s.ok() ? 0 : Fail(s);
  }
  if (get->parsed()) {
    GetOptions o{slice, decode_cf};
    auto npy = GetArrayNpy(src->get(), array == "/" ? "" : array, o);
    if (!npy.ok()) return Fail(npy.status());
    Status s = WriteFileAtomic(out_path, *npy);
    return s.ok() ? 0 : Fail(s);
  }
  if (copy->parsed()) {
    auto out = OpenKvStore(dst);
    if (!out.ok()) return Fail(out.status());
    CopyOptions o;
    o.zarr_format = format == "zarr2" ? 2 : format == "zarr3" ? 3 : 0;
    o.codec = codec;
    o.no_shard = no_shard;
    using ByteOrder = CopyOptions::ByteOrder;
    o.byte_order = byte_order == "big"      ? ByteOrder::kBig
                   : byte_order == "little" ? ByteOrder::kLittle
                                            : ByteOrder::kSource;
    if (!shard.empty()) {
      auto s = ParseShape(shard);
      if (!s.ok()) return Fail(s.status());
      o.shard = *s;
    }
    cli::ProgressBar bar("copy", true);
    o.progress = [&](int64_t d, int64_t t) { bar.Update(d, t); };
    Status s = CopyStore(src->get(), out->get(), o, std::cout);
    bar.Finish();
    return s.ok() ? 0 : Fail(s);
  }
  if (verify->parsed()) {
    cli::ProgressBar bar("verify", false);
    auto report = VerifyStore(src->get(), [&](int64_t d, int64_t t) { bar.Update(d, t); });
    bar.Finish();
    if (!report.ok()) return Fail(report.status());
    if (as_json) {
      nlohmann::json j = {{"url", (*src)->url()},
                          {"ok", report->problems.empty()},
                          {"arrays", report->arrays},
                          {"chunks_checked", report->chunks_checked},
                          {"checksum_record", report->checksum_record},
                          {"objects_checked_against_record", report->objects_checked},
                          {"problems", report->problems}};
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& p : report->problems) std::cout << "problem: " << p << "\n";
      std::cout << (*src)->url() << ": " << report->arrays << " arrays, " << report->chunks_checked
                << " chunks checked, "
                << (report->checksum_record
                        ? std::to_string(report->objects_checked) + " objects against its checksum record"
                        : std::string("no checksum record (written by another tool or an older jigsaw)"))
                << ", " << report->problems.size() << " problems\n";
    }
    return report->problems.empty() ? 0 : 1;
  }
  return 0;
}
