// Reading a jigsaw-shard store back: its recorded plan and layout (ReadShardStoreInfo), the description
// `jigsaw-shard info` prints, and `jigsaw-shard verify`.
#include <cmath>
#include <ostream>

#include "pipeline/shard/shard_store.h"
#include "pipeline/shard/shard_parts.h"
#include "pipeline/shard/static_fields.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"
#include "storage/zarr/store_ops.h"

namespace jigsaw {

Result<ShardStoreInfo> ReadShardStoreInfo(KvStore* store) {
  ASSIGN_OR_RETURN(NodeMetadata root, ReadNodeMetadata(store, ""));
  if (!root.attributes.contains("jigsaw") || root.attributes["jigsaw"].value("store", "") != "jigsaw-shard") {
    return InvalidArgumentError(store->url() + " is not a jigsaw-shard store (no \"jigsaw\" root attributes)");
  }
  ShardStoreInfo info;
  info.attributes = root.attributes["jigsaw"];
  if (info.attributes.value("version", 0) > kShardStoreVersion) {
    return UnimplementedError(store->url() + " was written by a newer jigsaw (store version " +
                              std::to_string(info.attributes.value("version", 0)) + ")");
  }
  info.complete = info.attributes.value("complete", false);
  // The plan, checked once here: every reader gets the same refusal for the same malformed key.
  const std::string where = store->url() + ": the \"jigsaw\" root attribute's plan";
  try {
    const json& plan = info.attributes.at("plan");
    auto tiles = TileGrid::Parse(plan.at("tiles").get<std::string>());
    if (!tiles.ok()) return tiles.status().Annotate(where + " (tiles)");
    info.tiles = *tiles;
    info.channels = plan.at("channels").get<std::vector<std::string>>();
    info.height = plan.at("grid").at(0).get<int64_t>();
    info.width = plan.at("grid").at(1).get<int64_t>();
    info.step_seconds = plan.at("step_seconds").get<int64_t>();
    for (const auto& t : plan.value("missing_times", json::array())) info.missing_times.insert(t.get<std::string>());
    info.static_channels = plan.value("static_channels", json::array()).get<std::vector<std::string>>();
    info.members = plan.value("members", json::array()).get<std::vector<int64_t>>();
  } catch (const json::exception& e) {
    return InvalidArgumentError(where + " is malformed: " + e.what());
  }
  if (info.height < 1 || info.width < 1 || info.step_seconds < 1 || info.channels.empty()) {
    return InvalidArgumentError(where + " has an empty grid, channel list or time step");
  }
  return info;
}

Status PrintShardStoreInfo(KvStore* store, bool as_json, std::ostream& out) {
  ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(store));
  ASSIGN_OR_RETURN(auto data, Array::Open(store, "data"));
  const ArrayMetadata& m = data->metadata();
  json j = info.attributes;
  j["url"] = store->url();
  j["data_shape"] = m.shape;
  j["tile_shape"] = m.codecs->sharding() ? m.codecs->sharding()->inner_shape : m.chunks;
  j["data_codecs"] = m.codecs->Describe();
  if (info.complete) {
    auto read_stats = [&](const char* name) -> Status {
      ASSIGN_OR_RETURN(auto a, Array::Open(store, name));
      std::vector<double> v(a->metadata().shape[0]);
      RETURN_IF_ERROR(a->Read(a->full_box(), std::span<char>(reinterpret_cast<char*>(v.data()), v.size() * 8)));
      j["statistics_values"][name] = v;
      return OkStatus();
    };
    for (const char* name : kShardStatNames) RETURN_IF_ERROR(read_stats(name));
    if (!info.static_channels.empty())
      for (const char* name : kStaticStatNames) RETURN_IF_ERROR(read_stats(name));
  }
  // A store written in parts: which are done, which to do.
  ASSIGN_OR_RETURN(PartsState parts, ReadPartsState(store));
  std::vector<std::string> to_do = DescribeMissingParts(info.attributes["plan"], parts);
  if (parts.count) {
    json done = json::array();
    for (const auto& [i, manifest] : parts.manifests) done.push_back(i + 1);
    j["parts"] = {{"count", parts.count}, {"done", done}, {"to_do", to_do}};
  }
  if (as_json) {
    out << j.dump(2) << "\n";
    return OkStatus();
  }
  const json& plan = info.attributes["plan"];
  out << store->url() << ": "
      << (info.complete    ? "complete"
          : parts.count    ? "INCOMPLETE (written in parts: run those to do, then jigsaw-shard finish)"
                           : "INCOMPLETE (run jigsaw-shard run again to finish)")
      << "\n";
  if (parts.count) {
    out << "parts: " << parts.manifests.size() << " of " << parts.count << " done";
    for (const auto& line : to_do) out << "\n  to do: " << line;
    out << "\n";
  }
  const size_t e = info.members.empty() ? 0 : 1;  // data's dimensions after time move by one with members
  out << "data " << m.dtype.name << " [" << m.shape[0] << " time, "
      << (e ? std::to_string(m.shape[1]) + " member, " : "") << m.shape[1 + e] << " channel, " << m.shape[2 + e]
      << " lat, " << m.shape[3 + e] << " lon], tiles " << plan.value("tiles", "?") << " of [" << j["tile_shape"][1 + e]
      << ", " << j["tile_shape"][2 + e] << ", " << j["tile_shape"][3 + e] << "], "
      << j["data_codecs"].get<std::string>() << "\n";
  out << "times " << plan.value("start", "?") << " .. " << plan.value("end", "?") << " every "
      << plan.value("step_seconds", 0) / 3600.0 << " h; " << plan["missing_times"].size() << " missing\n";
  out << "sources:";
  for (const auto& s : info.attributes["sources"]) out << " " << s.get<std::string>();
  out << "\n";
  if (info.complete) {
    out << "channel                          mean           std           min           max    tend.mean     "
           "tend.std\n";
    const auto& names = plan["channels"];
    const auto& sv = j["statistics_values"];
    for (size_t c = 0; c < names.size(); ++c) {
      char line[256];
      std::snprintf(line, sizeof line, "%-24s %13.6g %13.6g %13.6g %13.6g %12.4g %12.4g\n",
                    names[c].get<std::string>().c_str(), sv["mean"][c].get<double>(), sv["std"][c].get<double>(),
                    sv["min"][c].get<double>(), sv["max"][c].get<double>(), sv["tendency_mean"][c].get<double>(),
                    sv["tendency_std"][c].get<double>());
      out << line;
    }
    for (size_t c = 0; c < info.static_channels.size(); ++c) {
      const auto& sv = j["statistics_values"];
      char line[256];
      std::snprintf(line, sizeof line, "%-24s %13.6g %13.6g %13.6g %13.6g   (static)\n",
                    info.static_channels[c].c_str(), sv["static_mean"][c].get<double>(),
                    sv["static_std"][c].get<double>(), sv["static_min"][c].get<double>(),
                    sv["static_max"][c].get<double>());
      out << line;
    }
  }
  return OkStatus();
}

Result<std::vector<std::string>> VerifyShardStore(KvStore* store) {
  std::vector<std::string> problems;
  ASSIGN_OR_RETURN(ShardStoreInfo info, ReadShardStoreInfo(store));
  if (!info.complete) problems.push_back(store->url() + ": the store is not complete (the run did not finish)");
  if (!info.complete) {
    ASSIGN_OR_RETURN(PartsState parts, ReadPartsState(store));
    for (const auto& line : DescribeMissingParts(info.attributes["plan"], parts))
      problems.push_back(store->url() + ": not done: " + line);
  }
  // Written last, after the store is marked complete (VerifyStore checks it against the nodes when present).
  ASSIGN_OR_RETURN(NodeMetadata root, ReadNodeMetadata(store, ""));
  if (root.consolidated.is_null()) {
    problems.push_back(store->url() + ": no consolidated metadata (the run did not finish; run it again)");
  }
  ASSIGN_OR_RETURN(VerifyReport report, VerifyStore(store, nullptr));
  problems.insert(problems.end(), report.problems.begin(), report.problems.end());
  if (ShardStoreHasChecksumRecord(info.attributes.value("version", 1)) && !report.checksum_record) {
    problems.push_back(store->url() + ": no checksum record (" + kChecksumRecordKey +
                       "), the last object a run writes: the run did not finish; run it again");
  }
  const json& plan = info.attributes.value("plan", json::object());
  auto data = Array::Open(store, "data");
  if (!data.ok()) {
    problems.push_back(data.status().message());
    return problems;
  }
  const ArrayMetadata& m = (*data)->metadata();
  const int64_t T = plan.value("num_times", int64_t{-1});
  const int64_t C = static_cast<int64_t>(plan.value("channels", json::array()).size());
  auto g = plan.value("grid", json::array({-1, -1}));
  const bool ensemble = !info.members.empty();
  const int64_t M = ensemble ? static_cast<int64_t>(info.members.size()) : 1;
  const std::vector<int64_t> want_shape = DataIndex(ensemble, T, M, C, g[0].get<int64_t>(), g[1].get<int64_t>());
  const int cd = ensemble ? 2 : 1;  // the channel dimension
  if (m.shape != want_shape) problems.push_back(store->url() + ": data shape differs from the recorded plan");
  auto tiles = TileGrid::Parse(plan.value("tiles", ""));
  if (!tiles.ok()) {
    problems.push_back(store->url() + ": the recorded plan has no valid tile grid");
  } else if (m.shape == want_shape) {
    const std::vector<int64_t> tile =
        DataIndex(ensemble, 1, 1, SplitLength(C, tiles->ch), SplitLength(want_shape[cd + 1], tiles->lat),
                  SplitLength(want_shape[cd + 2], tiles->lon));
    const auto* sh = m.codecs->sharding();
    if ((sh ? sh->inner_shape : m.chunks) != tile)
      problems.push_back(store->url() + ": data chunks are not the plan's tiles");
    // Every time step that is not missing must have its chunks stored.
    std::set<std::string> missing;
    for (const auto& s : plan.value("missing_times", json::array())) missing.insert(s.get<std::string>());
    auto tvals = Array::Open(store, "time");
    if (tvals.ok() && info.complete) {
      std::vector<int64_t> times(T);
      if ((*tvals)->Read((*tvals)->full_box(), std::span<char>(reinterpret_cast<char*>(times.data()), T * 8)).ok()) {
        ASSIGN_OR_RETURN(auto keys, store->List("data/"));
        std::set<std::string> present;
        for (const auto& e : keys) present.insert(e.key);
        auto grid = m.grid();
        for (int64_t t = 0; t < T; ++t) {
          if (missing.count(FormatIsoTime(times[t]))) continue;
          for (int64_t e = 0; e < M; ++e)
            for (int64_t c = 0; c < grid[cd]; ++c)
              for (int64_t y = 0; y < grid[cd + 1]; ++y)
                for (int64_t x = 0; x < grid[cd + 2]; ++x) {
                  std::string key = (*data)->ChunkKey(DataIndex(ensemble, t / m.chunks[0], e, c, y, x));
                  if (!present.count(key)) {
                    problems.push_back(store->url() + ": chunk " + key + " for " + FormatIsoTime(times[t]) +
                                       " is absent");
                    present.insert(key);  // once per object
                  }
                }
        }
        // Values that are not finite, each field read once (a sample at a time), unless the plan asked for
        // missing values (--allow-missing): they would train to NaN weights.
        if (!plan.value("allow_missing", false)) {
          const int64_t H = want_shape[cd + 1], W = want_shape[cd + 2];
          const auto channels = plan.value("channels", json::array());
          std::string bytes;
          std::vector<float> values;
          for (int64_t t = 0; t < T; ++t) {
            if (missing.count(FormatIsoTime(times[t]))) continue;
            for (int64_t e = 0; e < M; ++e) {
              Box box{DataIndex(ensemble, t, e, 0, 0, 0), DataIndex(ensemble, 1, 1, C, H, W)};
              bytes.resize(box.num_elements() * m.dtype.size);
              Status read = (*data)->Read(box, bytes);
              if (!read.ok()) {
                problems.push_back(store->url() + ": data at " + FormatIsoTime(times[t]) + ": " + read.message());
                continue;
              }
              ToFloats(bytes, m.dtype, &values);
              for (int64_t c = 0; c < C; ++c) {
                int64_t bad = 0;
                for (int64_t k = 0; k < H * W; ++k) bad += !std::isfinite(values[c * H * W + k]);
                if (bad > 0) {
                  problems.push_back(store->url() + ": " + channels[c].get<std::string>() + " at " +
                                     FormatIsoTime(times[t]) + (ensemble ? " (member " + std::to_string(e) + ")" : "") +
                                     " holds " + std::to_string(bad) + " values that are not finite");
                }
              }
            }
          }
        }
      }
    }
  }
  for (const char* name : kShardStatNames) {
    if (!info.complete) break;
    auto a = Array::Open(store, name);
    if (!a.ok() || (*a)->metadata().shape != std::vector<int64_t>{C}) {
      problems.push_back(store->url() + ": statistics array " + name + " missing or of the wrong shape");
    }
  }
  // The static fields: the array of the plan's fields, tiled like `data`, and their statistics.
  if (const int64_t S = static_cast<int64_t>(info.static_channels.size()); S > 0 && info.complete) {
    auto a = Array::Open(store, "static");
    const std::vector<int64_t> want_chunks = {SplitLength(S, info.tiles.ch), SplitLength(info.height, info.tiles.lat),
                                              SplitLength(info.width, info.tiles.lon)};
    if (!a.ok() || (*a)->metadata().shape != std::vector<int64_t>{S, info.height, info.width} ||
        (*a)->metadata().chunks != want_chunks) {
      problems.push_back(store->url() + ": static array missing, or not of the plan's " + std::to_string(S) +
                         " fields in its tiles");
    }
    for (const char* name : kStaticStatNames) {
      auto st = Array::Open(store, name);
      if (!st.ok() || (*st)->metadata().shape != std::vector<int64_t>{S})
        problems.push_back(store->url() + ": statistics array " + name + " missing or of the wrong shape");
    }
  }
  return problems;
}

}  // namespace jigsaw
