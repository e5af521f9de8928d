#include "storage/zarr/store_ops.h"

#include <unistd.h>

#include <climits>
#include <filesystem>
#include <tbb/parallel_for.h>

#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"
#include "storage/zarr/npy.h"
#include "base/first_error.h"
#include "storage/kvstore/io_threads.h"

namespace jigsaw {
namespace {

bool IsMetadataKey(std::string_view key) {
  for (std::string_view n : {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
    if (key == n || (key.ends_with(n) && key[key.size() - n.size() - 1] == '/')) return true;
  return false;
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

struct Stored {
  int64_t bytes = 0, objects = 0;
};

// Chunk objects (not metadata) per array path, from one listing.
std::map<std::string, Stored> StoredPerArray(const std::vector<ListEntry>& keys, const std::vector<Node>& nodes) {
  std::map<std::string, Stored> out;
  for (const auto& n : nodes)
    if (n.meta.is_array) out[n.path];
  for (const auto& e : keys) {
    if (IsMetadataKey(e.key)) continue;
    // The longest array path that prefixes the key.
    std::string best;
    bool found = false;
    for (auto& [path, s] : out) {
      if (path.empty() || e.key.starts_with(path + "/")) {
        if (!found || path.size() > best.size()) best = path;
        found = true;
      }
    }
    if (found) {
      out[best].bytes += e.size;
      out[best].objects += 1;
    }
  }
  return out;
}

}  // namespace

Status ListStore(KvStore* store, bool as_json, std::ostream& out) {
  ASSIGN_OR_RETURN(auto nodes, ListNodes(store));
  // A store that cannot list (HTTP) shows its arrays from consolidated metadata, without stored sizes.
  auto keys = store->List("");
  const bool listed = keys.ok();
  if (!listed && keys.status().code() != StatusCode::kUnimplemented) return keys.status();
  auto stored = StoredPerArray(listed ? *keys : std::vector<ListEntry>{}, nodes);
  json j = {{"url", store->url()}, {"nodes", json::array()}};
  for (const auto& n : nodes) {
    json e = {{"path", n.path.empty() ? "/" : n.path},
              {"type", n.meta.is_array ? "array" : "group"},
              {"zarr_format", n.meta.zarr_format},
              {"attributes", n.meta.attributes}};
    if (n.meta.is_array) {
      const ArrayMetadata& m = *n.meta.array;
      const ShardingSpec* sh = m.codecs->sharding();
      e["shape"] = m.shape;
      e["dtype"] = m.dtype.kind == 'U' ? m.dtype.name + "(" + std::to_string(m.dtype.size / 4) + ")" : m.dtype.name;
      e["chunks"] = sh ? sh->inner_shape : m.chunks;
      if (sh) e["shard"] = m.chunks;
      e["codecs"] = m.codecs->Describe();
      e["fill_value"] = FillValueToJson(m.fill, m.dtype);
      e["dimension_names"] = m.dimension_names;
      e["stored_bytes"] = listed ? json(stored[n.path].bytes) : json(nullptr);
      e["stored_objects"] = listed ? json(stored[n.path].objects) : json(nullptr);
      e["decoded_bytes"] = [&] {
        int64_t b = m.dtype.size;
        for (int64_t s : m.shape) b *= s;
        return b;
      }();
    }
    j["nodes"].push_back(e);
  }
  if (as_json) {
    out << j.dump(2) << "\n";
    return OkStatus();
  }
  out << store->url() << "\n";
  for (const auto& e : j["nodes"]) {
    std::string path = e["path"];
    int depth = path == "/" ? 0 : 1 + static_cast<int>(std::count(path.begin(), path.end(), '/'));
    std::string indent(2 * depth, ' ');
    std::string name = path == "/" ? "/" : path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    out << indent << name << "  " << e["type"].get<std::string>() << " (zarr v" << e["zarr_format"] << ")";
    if (e["type"] == "array") {
      out << "  " << e["dtype"].get<std::string>() << " [" << JoinShape(e["shape"].get<std::vector<int64_t>>()) << "]";
      if (!e["dimension_names"].empty()) {
        std::string dims;
        for (const auto& d : e["dimension_names"]) dims += (dims.empty() ? "" : ", ") + d.get<std::string>();
        out << " (" << dims << ")";
      }
      out << "\n" << indent << "  chunks [" << JoinShape(e["chunks"].get<std::vector<int64_t>>()) << "]";
      if (e.contains("shard")) out << " in shards [" << JoinShape(e["shard"].get<std::vector<int64_t>>()) << "]";
      out << "  " << e["codecs"].get<std::string>() << "  fill " << e["fill_value"].dump();
      if (e["stored_bytes"].is_null()) {
        out << "\n"
            << indent << "  " << HumanBytes(e["decoded_bytes"])
            << " decoded (stored size unknown: the store cannot list)";
      } else {
        out << "\n"
            << indent << "  stored " << HumanBytes(e["stored_bytes"]) << " in " << e["stored_objects"] << " objects ("
            << HumanBytes(e["decoded_bytes"]) << " decoded)";
      }
    }
    if (!e["attributes"].empty()) out << "\n" << indent << "  " << e["attributes"].size() << " attributes";
    out << "\n";
  }
  return OkStatus();
}

Result<Box> ParseSlice(std::string_view text, const std::vector<int64_t>& shape, std::vector<int64_t>* kept) {
  Box box{std::vector<int64_t>(shape.size(), 0), shape};
  *kept = shape;
  if (text.empty()) return box;
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t c = text.find(',', start);
    parts.push_back(text.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start));
    if (c == std::string_view::npos) break;
    start = c + 1;
  }
  if (parts.size() > shape.size()) {
    return InvalidArgumentError("slice \"" + std::string(text) + "\" has " + std::to_string(parts.size()) +
                                " parts for " + std::to_string(shape.size()) + " dimensions");
  }
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
  };
  auto parse_int = [&](std::string_view s, int64_t dim, int64_t def, int64_t* out) -> Status {
    s = trim(s);
    if (s.empty()) {
      *out = def;
      return OkStatus();
    }
    int64_t v;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      return InvalidArgumentError("slice \"" + std::string(text) + "\": \"" + std::string(s) + "\" is not an integer");
    }
    if (v < 0) v += dim;
    *out = std::clamp<int64_t>(v, 0, dim);
    return OkStatus();
  };
  std::vector<int64_t> keep;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i >= parts.size()) {
      keep.push_back(shape[i]);
      continue;
    }
    std::string_view p = trim(parts[i]);
    size_t colon = p.find(':');
    if (colon == std::string_view::npos) {
      int64_t v;
      auto [q, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
      if (ec != std::errc() || q != p.data() + p.size()) {
        return InvalidArgumentError("slice \"" + std::string(text) + "\": \"" + std::string(p) + "\" is not an index");
      }
      if (v < 0) v += shape[i];
      if (v < 0 || v >= shape[i]) {
        return InvalidArgumentError("slice \"" + std::string(text) + "\": index " + std::string(p) + " outside dimension " +
                               std::to_string(i) + " of length " + std::to_string(shape[i]));
      }
      box.origin[i] = v;
      box.shape[i] = 1;
      continue;
    }
    if (p.find(':', colon + 1) != std::string_view::npos) {
      return UnimplementedError("slice \"" + std::string(text) + "\": steps are not supported");
    }
    int64_t a, b;
    RETURN_IF_ERROR(parse_int(p.substr(0, colon), shape[i], 0, &a));
    RETURN_IF_ERROR(parse_int(p.substr(colon + 1), shape[i], shape[i], &b));
    box.origin[i] = a;
    box.shape[i] = std::max<int64_t>(0, b - a);
    keep.push_back(box.shape[i]);
  }
  *kept = keep;
  return box;
}

Result<std::string> GetArrayNpy(KvStore* store, const std::string& array_path, const GetOptions& options) {
  ASSIGN_OR_RETURN(auto array, Array::Open(store, array_path));
  const ArrayMetadata& m = array->metadata();
  std::vector<int64_t> kept;
  ASSIGN_OR_RETURN(Box box, ParseSlice(options.slice, m.shape, &kept));
  // The result is held in memory (twice, with the .npy): refuse one that cannot fit, before allocating
  // (a shape of 2^62 x 2^62 would otherwise overflow into a tiny buffer).
  int64_t bytes = m.dtype.size * (options.decode_cf ? 2 : 1);
  for (int64_t d : box.shape) {
    if (__builtin_mul_overflow(bytes, d, &bytes)) bytes = INT64_MAX;
  }
  const int64_t memory = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  if (bytes > memory / 2) {
    return InvalidArgumentError(store->url() + "/" + array_path + ": the box " + box.ToString() + " holds " +
                                (bytes == INT64_MAX ? std::string("more than 2^63") : std::to_string(bytes)) +
                                " bytes, more than half this machine's memory (" + std::to_string(memory >> 20) +
                                " MiB): read a slice (--slice)");
  }
  std::string data(box.num_elements() * m.dtype.size, '\0');
  RETURN_IF_ERROR(array->Read(box, data));
  if (!options.decode_cf) return EncodeNpy(m.dtype, kept, data);
  const int64_t n = box.num_elements();
  if (m.attributes.contains("units") && m.attributes["units"].is_string() &&
      m.attributes["units"].get<std::string>().find(" since ") != std::string::npos) {
    ASSIGN_OR_RETURN(CfTimeUnits units,
                     ParseCfTimeUnits(m.attributes["units"].get<std::string>(), m.attributes.value("calendar", "")));
    std::vector<double> raw(n);
    for (int64_t i = 0; i < n; ++i) raw[i] = ElementToDouble(data.data() + i * m.dtype.size, m.dtype);
    auto secs = DecodeCfTimes(raw, units);
    ASSIGN_OR_RETURN(DataType i64, DataTypeFromName("int64"));
    return EncodeNpy(i64, kept, std::string_view(reinterpret_cast<const char*>(secs.data()), secs.size() * 8));
  }
  std::vector<double> values(n);
  UnpackCf(data.data(), m.dtype, n, CfPackingOf(m), values.data());
  ASSIGN_OR_RETURN(DataType f64, DataTypeFromName("float64"));
  return EncodeNpy(f64, kept, std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * 8));
}

Result<VerifyReport> VerifyStore(KvStore* store, const ProgressFn& progress) {
  VerifyReport report;
  std::mutex mu;
  auto problem = [&](std::string p) {
    std::lock_guard lock(mu);
    report.problems.push_back(std::move(p));
  };
  ASSIGN_OR_RETURN(auto keys, store->List(""));
  for (const auto& e : keys) {
    if (e.key == kUnfinishedMarker) {
      auto what = store->Read(kUnfinishedMarker);
      problem(store->url() + ": " + (what.ok() ? what->value.substr(0, what->value.find('\n')) : "unfinished") + " (" +
              kUnfinishedMarker + "): rerun it, which starts over");
    }
  }
  std::erase_if(keys, [](const ListEntry& e) { return e.key == kUnfinishedMarker || e.key == kChecksumRecordKey; });
  // Every object against the checksum record, when there is one: chunks as they are decoded, the rest here.
  std::optional<ChecksumRecord> record;
  if (auto r = ReadChecksumRecord(store); !r.ok()) {
    problem(r.status().message());
  } else {
    record = std::move(*r);
  }
  auto check_object = [&](std::string_view key, std::string_view bytes) {
    if (!record || !record->contains(key)) return;  // a key the record lacks is reported once, below
    if (std::string p = CheckObject(*record, store->url(), key, bytes); !p.empty()) problem(std::move(p));
  };
  if (record) {
    report.checksum_record = true;
    report.objects_checked = static_cast<int64_t>(keys.size());
    std::set<std::string_view> listed;
    for (const auto& e : keys) listed.insert(e.key);
    for (const auto& [key, sum] : *record) {
      if (!listed.contains(key)) {
        problem(store->url() + "/" + key + ": missing (the checksum record lists it, " + std::to_string(sum.size) +
                " bytes)");
      }
    }
    for (const auto& e : keys) {
      if (!record->contains(e.key)) {
        problem(store->url() + "/" + e.key + ": not in the checksum record (added after the store was written)");
        continue;
      }
      if (!IsMetadataKey(e.key)) continue;
      ASSIGN_OR_RETURN(ReadResult r, store->Read(e.key));
      check_object(e.key, r.value);
    }
  }
  std::vector<Node> nodes;
  {
    // Parse each metadata document on its own so that one bad document is reported, not fatal.
    std::set<std::string> paths;
    for (const auto& e : keys)
      if (auto p = NodePathOf(e.key)) paths.insert(*p);
    if (paths.empty()) return NotFoundError("no Zarr metadata in " + store->url());
    for (const auto& p : paths) {
      auto m = ReadNodeMetadata(store, p);
      if (!m.ok()) {
        problem(m.status().message());
        continue;
      }
      nodes.push_back({p, std::move(*m)});
    }
  }
  // Chunk keys per array.
  std::vector<std::pair<const Node*, std::string>> work;  // (array node, chunk key relative to the array)
  for (const auto& e : keys) {
    if (IsMetadataKey(e.key)) continue;
    // jigsaw's own records beside the arrays (jigsaw-shard's part manifests, jigsaw-parts/...): no array's,
    // by design, and checked against the checksum record like every object.
    if (e.key.starts_with("jigsaw-") && e.key.find('/') != std::string::npos) continue;
    const Node* owner = nullptr;
    for (const auto& n : nodes) {
      if (!n.meta.is_array) continue;
      if ((n.path.empty() || e.key.starts_with(n.path + "/")) && (!owner || n.path.size() > owner->path.size()))
        owner = &n;
    }
    if (!owner) {
      problem(store->url() + ": key \"" + e.key + "\" belongs to no array");
      continue;
    }
    work.emplace_back(owner, owner->path.empty() ? e.key : e.key.substr(owner->path.size() + 1));
  }
  for (const auto& n : nodes) report.arrays += n.meta.is_array;
  std::atomic<int64_t> done{0};
  RunWithIoThreads(*store, [&] {
    tbb::parallel_for(size_t{0}, work.size(), [&](size_t k) {
      const auto& [node, rel] = work[k];
      const ArrayMetadata& m = *node->meta.array;
      const std::string key = JoinKey(node->path, rel);
      auto idx = m.ParseChunkKey(rel);
      if (!idx) {
        problem(store->url() + ": key \"" + key + "\" is not a chunk key of array /" + node->path);
      } else {
        auto grid = m.grid();
        bool inside = true;
        for (size_t d = 0; d < grid.size(); ++d) inside &= (*idx)[d] >= 0 && (*idx)[d] < grid[d];
        if (!inside) {
          problem(store->url() + ": chunk \"" + key + "\" lies outside the array's shape");
        } else {
          auto r = store->Read(key);
          if (!r.ok()) {
            problem(r.status().Annotate(store->url() + ": chunk " + key).message());
          } else {
            check_object(key, r->value);
            std::string buf(m.chunk_layout().num_bytes(), '\0');
            Status s = m.codecs->Decode(r->value, buf);
            if (!s.ok()) problem(store->url() + ": chunk " + key + ": " + s.message());
          }
        }
      }
      int64_t now = ++done;
      if (progress) progress(now, static_cast<int64_t>(work.size()));
    });
  });
  report.chunks_checked = static_cast<int64_t>(work.size());
  // Consolidated metadata must describe the nodes as they are.
  for (const auto& n : nodes) {
    if (!n.path.empty() || n.meta.consolidated.is_null()) continue;
    auto fresh = BuildConsolidated(store, n.meta.zarr_format);
    if (!fresh.ok()) {
      problem(fresh.status().message());
      continue;
    }
    const json& have = n.meta.consolidated.contains("metadata") ? n.meta.consolidated["metadata"] : json::object();
    const json& want = (*fresh)["metadata"];
    for (const auto& [k, v] : want.items()) {
      if (!have.contains(k))
        problem(store->url() + ": consolidated metadata lacks \"" + k + "\"");
      else if (have[k] != v)
        problem(store->url() + ": consolidated metadata for \"" + k + "\" differs from the node's own");
    }
    for (const auto& [k, v] : have.items())
      if (!want.contains(k))
        problem(store->url() + ": consolidated metadata names \"" + k + "\", which does not exist");
  }
  std::sort(report.problems.begin(), report.problems.end());
  return report;
}

}  // namespace jigsaw
