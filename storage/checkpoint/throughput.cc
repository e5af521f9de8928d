#include "storage/checkpoint/throughput.h"

#include <tbb/parallel_for.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "base/first_error.h"
#include "base/peak_memory.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/codec/codec.h"

namespace jigsaw {

Result<nlohmann::json> MeasureCheckpoint(const CheckpointBenchOptions& o) {
  std::filesystem::remove_all(o.dir);
  const int64_t n = static_cast<int64_t>(o.gb * 1e9 / 4 / 16);
  std::vector<TensorSpec> specs;
  std::vector<std::string> data(16);
  for (int i = 0; i < 16; ++i) {
    specs.push_back({"blocks." + std::to_string(i) + ".w",
                     DataTypeFromName("float32").value(),
                     {n / 1024, 1024},
                     {"domain", "tensor"}});
    data[i].resize(static_cast<size_t>(n / 1024 * 1024 * 4));
    uint64_t x = 88172645463325252ull + i;
    for (size_t k = 0; k + 8 <= data[i].size(); k += 8) {  // xorshift noise: incompressible, like weights
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(&data[i][k], &x, 8);
    }
  }
  int64_t total = 0;
  for (const auto& d : data) total += static_cast<int64_t>(d.size());
  ASSIGN_OR_RETURN(auto root_store, OpenKvStore(o.dir + "/a"));
  KvStore* root_ptr = root_store.get();
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  const double rss_tensors_mb = (PeakRssBytes() / 1048576.0);  // the tensors themselves
  auto t0 = now();
  Status s = SaveCheckpoint(root_ptr, 1, o.mesh, specs,
                            [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
                              int idx = std::stoi(t.name.substr(7));
                              // One copy of the rank's tile, as a trainer's provider makes (no zero fill first).
                              const size_t n = static_cast<size_t>(box.num_elements() * 4);
                              std::string out;
                              out.resize_and_overwrite(n, [n](char*, size_t) { return n; });
                              std::vector<int64_t> zero(2, 0);
                              CopyBox(data[idx].data(), t.shape, box.origin, out.data(), box.shape, zero, box.shape, 4);
                              return out;
                            },
                            {.direct = !o.buffered});
  auto t1 = now();
  RETURN_IF_ERROR(s);
  const double rss_save_mb = (PeakRssBytes() / 1048576.0);
  data.clear();
  data.shrink_to_fit();
  // Cold reads where the machine allows dropping the page cache (as root); warm otherwise.
  auto drop_caches = [] {
    ::sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "3\n";  // fails quietly where not root: reads stay warm
  };
  auto m = ReadManifest(root_ptr);
  RETURN_IF_ERROR(m.status());
  // Every rank's tiles, all held until the end as a trainer holds its weights: first as LoadTensorBox gives
  // them (mapped where local), then read into memory of their own (ReadTensorBox, the copying path).
  auto load_all = [&](bool map, bool cold) -> Result<double> {
    std::vector<std::optional<LoadedBox>> held(static_cast<size_t>(o.mesh.size()) * m->tensors.size());
    FirstError err;
    if (cold) drop_caches();
    auto start = now();
    tbb::parallel_for(int64_t{0}, o.mesh.size(), [&](int64_t rank) {
      for (size_t i = 0; i < m->tensors.size(); ++i) {
        const auto& t = m->tensors[i];
        auto box = TileOf(t.spec, o.mesh, rank);
        if (!box.ok()) {
          err.Set(box.status());
          continue;
        }
        auto& slot = held[rank * m->tensors.size() + i];
        if (map) {
          auto r = LoadTensorBox(root_ptr, StepDirectory(1), *m, t, *box);
          if (r.ok())
            slot.emplace(std::move(*r));
          else
            err.Set(r.status());
        } else {
          auto r = ReadTensorBox(root_ptr, StepDirectory(1), *m, t, *box);
          if (r.ok())
            slot.emplace(std::move(*r));
          else
            err.Set(r.status());
        }
      }
    });
    double seconds = secs(start, now());
    RETURN_IF_ERROR(err.Get());
    return seconds;
  };
  auto load_seconds = load_all(true, true);
  RETURN_IF_ERROR(load_seconds.status());
  auto warm_load_seconds = load_all(true, false);  // the page cache now holds the files
  RETURN_IF_ERROR(warm_load_seconds.status());
  auto copy_load_seconds = load_all(false, true);
  RETURN_IF_ERROR(copy_load_seconds.status());
  auto warm_copy_load_seconds = load_all(false, false);
  RETURN_IF_ERROR(warm_copy_load_seconds.status());
  ASSIGN_OR_RETURN(auto dst, OpenKvStore(o.dir + "/b"));
  auto t4 = now();
  s = ReshardCheckpoint(root_ptr, StepDirectory(1), o.reshard_to, nullptr, dst.get(), {});
  auto t5 = now();
  RETURN_IF_ERROR(s);
  // The ceiling: a plain copy of the checkpoint's files, then sync, as `cp -r && sync` would.
  std::error_code ec;
  std::filesystem::copy(o.dir + "/a", o.dir + "/copy", std::filesystem::copy_options::recursive, ec);
  if (ec) return ErrnoToStatus(ec.value(), "copy " + o.dir + "/a");
  ::sync();
  auto t6 = now();
  nlohmann::json j = {{"bytes", total},
                      {"save_seconds", secs(t0, t1)},
                      {"load_seconds", *load_seconds},
                      {"reshard_seconds", secs(t4, t5)},
                      {"copy_seconds", secs(t5, t6)},
                      {"save_gb_per_s", total / secs(t0, t1) / 1e9},
                      {"load_gb_per_s", total / *load_seconds / 1e9},
                      {"warm_load_gb_per_s", total / *warm_load_seconds / 1e9},
                      {"read_load_gb_per_s", total / *copy_load_seconds / 1e9},
                      {"warm_read_load_gb_per_s", total / *warm_copy_load_seconds / 1e9},
                      {"peak_rss_tensors_mb", rss_tensors_mb},
                      {"peak_rss_after_save_mb", rss_save_mb}};
  return j;
}

}  // namespace jigsaw
