#include "pipeline/shard/shard_store.h"

#include "base/version.h"

#include "pipeline/shard/moments.h"
#include "pipeline/shard/static_fields.h"

#include <tbb/parallel_for.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"
#include "storage/zarr/store_ops.h"
#include "base/first_error.h"

namespace jigsaw {

void ToFloats(const std::string& bytes, const DataType& t, std::vector<float>* out) {
  const size_t n = bytes.size() / t.size;
  out->resize(n);
  if (t.size == 4) {
    std::memcpy(out->data(), bytes.data(), n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    (*out)[i] = t.name == "float16" ? HalfToFloat(h) : BFloat16ToFloat(h);
  }
}

namespace {

DataType OutputType(const ShardPlan& p) { return DataTypeFromName(p.options.dtype).value(); }

Result<ArrayMetadata> DataMetadata(const ShardPlan& p) {
  auto tile = p.tile_shape();
  ArraySpec s;
  s.zarr_format = p.options.zarr_format;
  const bool e = !p.options.members.empty();  // [time, member, channel, lat, lon], a chunk one member's tile
  s.shape = DataIndex(e, static_cast<int64_t>(p.times.size()), p.num_members(), p.num_channels(), p.nlat(), p.nlon());
  s.chunks = DataIndex(e, 1, 1, tile[0], tile[1], tile[2]);
  if (p.options.time_per_shard > 1) s.shard = DataIndex(e, p.options.time_per_shard, 1, tile[0], tile[1], tile[2]);
  s.dimension_names = e ? std::vector<std::string>{"time", "member", "channel", "latitude", "longitude"}
                        : std::vector<std::string>{"time", "channel", "latitude", "longitude"};
  s.dtype = OutputType(p);
  s.fill_value = "NaN";
  s.codec = p.options.codec;
  // Every v3 chunk carries its crc32c (the spec's codec, which zarr-python and TensorStore check too), so
  // that a changed byte fails `verify` and every read instead of decoding to other numbers.
  s.crc32c = p.options.zarr_format == 3;
  json names = json::array();
  for (const auto& c : p.channels) names.push_back(c.name);
  s.attributes = {{"channels", names}, {"long_name", "Jigsaw tiles: one chunk per rank per time step"}};
  return MakeArrayMetadata(s);
}

json RootAttributes(const ShardPlan& p, bool complete, const json& statistics) {
  json names = json::array();
  for (const auto& c : p.channels) names.push_back(c.name);
  return {{"channels", names},
          {"tile_grid", {p.tiles.lat, p.tiles.lon, p.tiles.ch}},
          {"jigsaw",
           {{"store", "jigsaw-shard"},
            {"version", kShardStoreVersion},
            {"complete", complete},
            {"written_by", std::string("jigsaw ") + Version()},
            {"plan", p.ToJson()},
            {"plan_fingerprint", p.fingerprint()},
            {"sources", p.sources},
            {"statistics", statistics}}}};
}

// Explains how the plan recorded in a store differs from `plan`.
std::string PlanDifference(const json& stored, const json& want) {
  std::string diff;
  for (const auto& [k, v] : want.items()) {
    if (!stored.contains(k))
      diff += "\n  " + k + ": (absent) vs " + v.dump();
    else if (stored[k] != v)
      diff +=
          "\n  " + k + ": " + stored[k].dump().substr(0, 200) + " in the store vs " + v.dump().substr(0, 200) + " now";
  }
  return diff.empty() ? "\n  (same options, different fingerprint: a different jigsaw version)" : diff;
}

// Reads member m's sources (all of them: [m * n, (m + 1) * n) for n plan sources) for times [t0, t1) into
// buf [t][channel][lat][lon] (float32), NaN where missing.
Status ReadSources(const ShardPlan& p, const std::vector<std::unique_ptr<Source>>& all, int64_t m, int64_t t0,
                   int64_t t1, std::vector<float>& buf) {
  const std::span<const std::unique_ptr<Source>> sources(all.data() + m * p.sources.size(), p.sources.size());
  const int64_t plane = p.nlat() * p.nlon(), C = p.num_channels();
  const int64_t full_plane = static_cast<int64_t>(sources.front()->grid().latitude.size()) * p.nlon();
  std::vector<std::pair<int64_t, size_t>> work;  // (time, read)
  for (int64_t t = t0; t < t1; ++t)
    for (size_t r = 0; r < p.reads.size(); ++r) work.emplace_back(t, r);
  FirstError err;
  tbb::parallel_for(size_t{0}, work.size(), [&](size_t w) {
    auto [t, r] = work[w];
    const auto& read = p.reads[r];
    const int64_t nch = std::max<int64_t>(1, read.level_indices.size());
    float* dst = buf.data() + ((t - t0) * C + read.first_channel) * plane;
    if (read.source[t] < 0) {
      std::fill(dst, dst + nch * plane, NAN);
      return;
    }
    const Source& src = *sources[read.source[t]];
    Status s;
    if (p.options.lat_crop == 0) {
      s = src.Read(read.variable, read.index[t], read.level_indices, dst);
    } else {  // read full planes, keep the northern rows
      thread_local std::vector<float> full;
      full.resize(nch * full_plane);
      s = src.Read(read.variable, read.index[t], read.level_indices, full.data());
      for (int64_t l = 0; s.ok() && l < nch; ++l)
        std::memcpy(dst + l * plane, full.data() + l * full_plane, plane * sizeof(float));
    }
    err.Set(s.Annotate("source " + src.url()));
  });
  return err.Get();
}

// Per-channel statistics over the window, fed one time step at a time in time order (so the result does
// not depend on threads or on which steps a resumed run read back from the store).
class StatisticsAccumulator {
 public:
  explicit StatisticsAccumulator(const ShardPlan& p)
      : p_(p),
        value_(p.num_channels()),
        tendency_(p.num_channels()),
        missing_(p.missing_times.begin(), p.missing_times.end()),
        prev_used_(p.num_members(), false) {}

  // `sample` is time step ti of member m: [channel][lat][lon] as stored (widened to float); `previous` is
  // the member's step ti - 1 (or null). Both must stay valid until the member's next call.
  // Member m's step before the first one this process adds (a part's first time): whether it counts.
  void Prime(int64_t m, bool previous_used) { prev_used_[m] = previous_used; }
  bool Uses(int64_t ti) const {
    return ti >= p_.stats_begin && ti < p_.stats_end && !missing_.count(p_.times[ti]);
  }
  PartMoments moments() const { return {value_, tendency_}; }

  void Add(int64_t ti, int64_t m, const float* sample, const float* previous) {
    if (!Uses(ti)) {
      prev_used_[m] = false;
      return;
    }
    const bool tendency = prev_used_[m] && previous != nullptr;
    const int64_t plane = p_.nlat() * p_.nlon();
    tbb::parallel_for(int64_t{0}, p_.num_channels(), [&](int64_t c) {
      const float* x = sample + c * plane;
      value_[c].Add(Moments::Of(x, plane));
      if (tendency) tendency_[c].Add(Moments::OfDifference(x, previous + c * plane, plane));
    });
    prev_used_[m] = true;
  }

  json Result() const { return ShardStatistics(moments()); }

 private:
  const ShardPlan& p_;
  std::vector<Moments> value_, tendency_;
  std::set<int64_t> missing_;
  std::vector<bool> prev_used_;  // per member: its previous step was in the window and present
};

}  // namespace

Status WriteStatisticsArray(KvStore* out, int zarr_format, const std::string& name, const std::string& dim,
                            const std::vector<double>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  ArraySpec s;
  s.zarr_format = zarr_format;
  s.shape = {n};
  s.chunks = {n};
  s.dtype = DataTypeFromName("float64").value();
  s.codec = "none";
  s.fill_value = "NaN";
  s.dimension_names = {dim};
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(s));
  ASSIGN_OR_RETURN(auto a, Array::Create(out, name, std::move(m)));
  return a->Write(a->full_box(), std::string_view(reinterpret_cast<const char*>(values.data()), n * 8));
}

Result<ShardRunReport> RunShard(const ShardPlan& p, const std::vector<std::unique_ptr<Source>>& sources,
                                KvStore* destination, const ShardProgressFn& progress, std::ostream& log,
                                const ShardPart& part, bool finish_when_last) {
  // Every object written is recorded; the checksum record is the last object of a complete store.
  RecordingKvStore recording(destination);
  KvStore* const out = &recording;
  auto start = std::chrono::steady_clock::now();
  ShardRunReport report;
  const int format = p.options.zarr_format;
  // What is there already? Parts starting side by side (mpirun) may find another's first object half made
  // (a temporary file before its rename): they wait for the root group it is writing.
  auto existing = ReadNodeMetadata(out, "");
  for (int wait = 0; !part.whole() && wait < 100 && existing.status().code() == StatusCode::kNotFound; ++wait) {
    ASSIGN_OR_RETURN(bool empty, out->IsEmpty());
    if (empty) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    existing = ReadNodeMetadata(out, "");
  }
  bool resume = false;
  if (existing.ok()) {
    const json& attrs = existing->attributes;
    if (!attrs.contains("jigsaw") || attrs["jigsaw"].value("store", "") != "jigsaw-shard") {
      return FailedPreconditionError(out->url() +
                                     " holds a Zarr store that jigsaw-shard did not write; choose a new --out");
    }
    if (attrs["jigsaw"].value("plan_fingerprint", "") != p.fingerprint()) {
      return FailedPreconditionError(out->url() + " holds another plan; differences:" +
                                     PlanDifference(attrs["jigsaw"].value("plan", json::object()), p.ToJson()) +
                                     "\nchoose a new --out, or delete the store to start over");
    }
    resume = true;
  } else if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  } else {
    ASSIGN_OR_RETURN(bool empty, out->IsEmpty());
    if (!empty)
      return FailedPreconditionError(out->url() + " is not empty and is not a jigsaw-shard store; choose a new --out");
  }
  if (resume && existing->attributes["jigsaw"].value("complete", false)) {
    // The consolidated metadata is written after the store is marked complete: a run killed between the two
    // leaves it missing, and this run finishes the job.
    ASSIGN_OR_RETURN(json consolidated, BuildConsolidated(out, format));
    ASSIGN_OR_RETURN(auto record, ReadChecksumRecord(out));
    if (existing->consolidated != consolidated) {
      RETURN_IF_ERROR(WriteConsolidated(out, format));
      RETURN_IF_ERROR(recording.WriteRecord());
      log << out->url() << " was complete but for its consolidated metadata, now written (and its checksum record)\n";
    } else if (!record && ShardStoreHasChecksumRecord(existing->attributes["jigsaw"].value("version", 1))) {
      RETURN_IF_ERROR(recording.WriteRecord());
      log << out->url() << " was complete but for its checksum record, now written\n";
    } else {
      log << out->url() << " is already complete for this plan; nothing to do\n";
    }
    report.times_skipped = static_cast<int64_t>(p.times.size());
    return report;
  }
  // Parts: this one's blocks of K times, claimed; a part already done has nothing to write.
  const int64_t T_all = static_cast<int64_t>(p.times.size()), K_all = std::max<int64_t>(1, p.options.time_per_shard);
  const int64_t num_blocks = (T_all + K_all - 1) / K_all;
  if (part.count > num_blocks) {
    return InvalidArgumentError("--part " + part.ToString() + ": " + std::to_string(part.count) + " parts of " +
                                std::to_string(T_all) + " times (" + std::to_string(num_blocks) + " blocks of " +
                                std::to_string(K_all) + ") would leave parts without a time; use at most " +
                                std::to_string(num_blocks) + " parts");
  }
  const auto [block_begin, block_end] = PartBlocks(num_blocks, part);
  std::unique_ptr<PartClaim> claim;
  if (resume) {
    ASSIGN_OR_RETURN(PartsState parts, ReadPartsState(out));
    if (parts.count && parts.count != part.count) {
      return FailedPreconditionError(
          out->url() + " is being written in " + std::to_string(parts.count) + " parts" +
          (part.whole() ? "" : "; --part " + part.ToString() + " is a split into " + std::to_string(part.count)) +
          ": run its parts with --part i/" + std::to_string(parts.count) + " (then jigsaw-shard finish)");
    }
    if (!part.whole() && parts.manifests.count(part.index)) {
      log << out->url() << ": part " << part.ToString() << " is already done\n";
      report.times_skipped = std::min(T_all, block_end * K_all) - block_begin * K_all;
      if (finish_when_last && parts.missing().empty()) RETURN_IF_ERROR(FinishShardParts(destination, log));
      return report;
    }
  }
  // Metadata first, marked incomplete; coordinates. The root group is a store's first object, parts' too, so
  // that a part starting beside another sees either nothing or a jigsaw-shard store.
  RETURN_IF_ERROR(WriteGroup(out, "", format, RootAttributes(p, false, nullptr)));
  ASSIGN_OR_RETURN(ArrayMetadata dm, DataMetadata(p));
  ASSIGN_OR_RETURN(auto data, Array::Create(out, "data", dm));
  RETURN_IF_ERROR(WriteCoordinateArray(
      out, format, "time", "int64", std::string_view(reinterpret_cast<const char*>(p.times.data()), p.times.size() * 8),
      p.times.size(),
      {{"units", "seconds since 1970-01-01"}, {"calendar", "proleptic_gregorian"}, {"standard_name", "time"}}));
  std::vector<std::string> channel_names;
  for (const auto& c : p.channels) channel_names.push_back(c.name);
  RETURN_IF_ERROR(WriteTextCoordinateArray(out, format, "channel", channel_names, {{"long_name", "channel"}}));
  if (!p.options.members.empty()) {
    RETURN_IF_ERROR(WriteCoordinateArray(
        out, format, "member", "int64",
        std::string_view(reinterpret_cast<const char*>(p.options.members.data()), p.options.members.size() * 8),
        p.options.members.size(), {{"long_name", "ensemble member"}, {"standard_name", "realization"}}));
  }
  RETURN_IF_ERROR(
      WriteCoordinateArray(out, format, "latitude", "float64",
                           std::string_view(reinterpret_cast<const char*>(p.grid.latitude.data()), p.nlat() * 8),
                           p.nlat(), {{"units", "degrees_north"}, {"standard_name", "latitude"}}));
  RETURN_IF_ERROR(
      WriteCoordinateArray(out, format, "longitude", "float64",
                           std::string_view(reinterpret_cast<const char*>(p.grid.longitude.data()), p.nlon() * 8),
                           p.nlon(), {{"units", "degrees_east"}, {"standard_name", "longitude"}}));

  if (!part.whole()) {
    ASSIGN_OR_RETURN(claim, ClaimPart(destination, part, p.fingerprint()));
  }
  // Data, K time steps (one shard row) at a time, member by member; blocks whose objects all exist are
  // skipped.
  std::set<std::string> present;
  ASSIGN_OR_RETURN(auto keys, out->List("data/"));
  for (const auto& e : keys) present.insert(e.key);
  const bool ensemble = !p.options.members.empty();
  const int64_t T = static_cast<int64_t>(p.times.size()), K = dm.chunks[0], M = p.num_members();
  const int64_t sample = p.num_channels() * p.nlat() * p.nlon();
  const int64_t total_bytes = (std::min(T, block_end * K) - block_begin * K) * M * sample * p.element_size();
  const DataType dt = dm.dtype;
  const auto grid = dm.grid();
  const int cd = ensemble ? 2 : 1;  // the channel dimension of data
  // The block of times [t0, t1) of member m, in data's coordinates.
  auto block_box = [&](int64_t t0, int64_t t1, int64_t m) {
    return Box{DataIndex(ensemble, t0, m, 0, 0, 0),
               DataIndex(ensemble, t1 - t0, 1, p.num_channels(), p.nlat(), p.nlon())};
  };
  // Per member, two sample buffers, swapped per block, so that the previous step stays readable for the
  // tendencies.
  std::vector<std::vector<float>> bufs(M), prev_bufs(M);
  bool have_prev_block = false;
  std::string converted;
  StatisticsAccumulator stats(p);
  if (block_begin > 0) {
    // A part after the first: the tendency from the time before its first, as stored (read from the
    // sources and rounded to the stored type), so that the pair straddling the boundary counts once, here.
    const int64_t before = block_begin * K - 1;
    const bool prev_in_window = before + 1 - K < p.stats_end && before + 1 > p.stats_begin;
    for (int64_t m = 0; m < M && prev_in_window; ++m) {
      std::vector<float> one(sample);
      RETURN_IF_ERROR(ReadSources(p, sources, m, before, before + 1, one));
      if (dt.size == 2) {
        std::string narrow(one.size() * 2, '\0');
        for (size_t i = 0; i < one.size(); ++i) {
          const uint16_t h = dt.name == "float16" ? FloatToHalf(one[i]) : FloatToBFloat16(one[i]);
          std::memcpy(&narrow[i * 2], &h, 2);
        }
        ToFloats(narrow, dt, &one);
      }
      prev_bufs[m].assign(K * sample, 0.0f);
      std::copy(one.begin(), one.end(), prev_bufs[m].begin() + (K - 1) * sample);
      stats.Prime(m, stats.Uses(before));
    }
    have_prev_block = prev_in_window;
  }
  for (int64_t t0 = block_begin * K; t0 < std::min(T, block_end * K); t0 += K) {
    const int64_t t1 = std::min(T, t0 + K);
    const bool in_window = t0 < p.stats_end && t1 > p.stats_begin;
    bool block_written = false;
    for (int64_t m = 0; m < M; ++m) {
      std::vector<float>& buf = bufs[m];
      bool all_there = true;
      for (int64_t c = 0; c < grid[cd] && all_there; ++c)
        for (int64_t y = 0; y < grid[cd + 1] && all_there; ++y)
          for (int64_t x = 0; x < grid[cd + 2] && all_there; ++x) {
            all_there = present.count(data->ChunkKey(DataIndex(ensemble, t0 / K, m, c, y, x))) > 0;
          }
      auto r0 = std::chrono::steady_clock::now();
      bool rewrite = !all_there;
      const std::string which = FormatIsoTime(p.times[t0]) + (t1 - t0 > 1 ? " and after" : "") +
                                (ensemble ? " (member " + std::to_string(p.options.members[m]) + ")" : "");
      if (all_there && in_window) {
        // Read the block back for the statistics. A block that no longer decodes (a truncated or changed
        // chunk) is written again from the sources, instead of failing this resume and every one after it.
        converted.resize((t1 - t0) * sample * dt.size);
        Status back = data->Read(block_box(t0, t1, m), converted);
        if (back.code() == StatusCode::kDataLoss) {
          log << "rewriting " << which << ": " << back.message() << "\n";
          rewrite = true;
        } else {
          RETURN_IF_ERROR(back);
          ToFloats(converted, dt, &buf);
        }
      }
      if (rewrite) {
        buf.resize((t1 - t0) * sample);
        RETURN_IF_ERROR(ReadSources(p, sources, m, t0, t1, buf));
        // A value that is not finite (NaN, infinite) trains to NaN weights: refused, naming channel and time,
        // unless --allow-missing asked for missing values (times no source holds, points a field masks).
        if (!p.options.allow_missing) {
          std::atomic<size_t> first{buf.size()};
          tbb::parallel_for(size_t{0}, buf.size(), [&](size_t i) {
            if (!std::isfinite(buf[i]))
              for (size_t seen = first.load(); i < seen && !first.compare_exchange_weak(seen, i);) {}
          });
          if (const size_t i = first.load(); i < buf.size()) {
            const int64_t field = static_cast<int64_t>(i) / (p.nlat() * p.nlon());
            const int64_t t = t0 + field / p.num_channels(), c = field % p.num_channels();
            const float* plane = buf.data() + field * p.nlat() * p.nlon();
            int64_t count = 0;
            for (int64_t k = 0; k < p.nlat() * p.nlon(); ++k) count += !std::isfinite(plane[k]);
            return InvalidArgumentError(p.channels[c].name + " at " + FormatIsoTime(p.times[t]) +
                                        (ensemble ? " (member " + std::to_string(p.options.members[m]) + ")" : "") +
                                        " holds " + std::to_string(count) +
                                        " values that are not finite (NaN or "
                                        "infinite) of " +
                                        std::to_string(p.nlat() * p.nlon()) +
                                        ": fix the source, or give --allow-missing to keep them as missing values");
          }
        }
        auto r1 = std::chrono::steady_clock::now();
        report.read_seconds += std::chrono::duration<double>(r1 - r0).count();
        std::string_view bytes(reinterpret_cast<const char*>(buf.data()), buf.size() * 4);
        if (dt.size == 2) {
          converted.resize(buf.size() * 2);
          std::atomic<size_t> overflow{buf.size()};  // the first finite value float16 cannot hold
          tbb::parallel_for(size_t{0}, buf.size(), [&](size_t i) {
            uint16_t h = dt.name == "float16" ? FloatToHalf(buf[i]) : FloatToBFloat16(buf[i]);
            if ((h & 0x7FFF) == 0x7C00 && dt.name == "float16" && std::isfinite(buf[i])) {
              for (size_t seen = overflow.load(); i < seen && !overflow.compare_exchange_weak(seen, i);) {}
            }
            std::memcpy(&converted[i * 2], &h, 2);
          });
          if (const size_t i = overflow.load(); i < buf.size()) {
            const int64_t t = t0 + static_cast<int64_t>(i) / sample,
                          c = (static_cast<int64_t>(i) % sample) / (p.nlat() * p.nlon());
            return InvalidArgumentError(p.channels[c].name + " at " + FormatIsoTime(p.times[t]) +
                                        (ensemble ? " (member " + std::to_string(p.options.members[m]) + ")" : "") +
                                        ": " + std::to_string(buf[i]) +
                                        " does not fit float16 (largest 65504); use --dtype float32 or bfloat16");
          }
          bytes = converted;
        }
        RETURN_IF_ERROR(data->Write(block_box(t0, t1, m), bytes));
        report.write_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - r1).count();
        report.bytes_written += static_cast<int64_t>(bytes.size());
        block_written = true;
        if (dt.size == 2) ToFloats(converted, dt, &buf);  // statistics of the values as stored
      }
      auto s0 = std::chrono::steady_clock::now();
      if (in_window) {
        for (int64_t t = t0; t < t1; ++t) {
          const float* previous = t > t0            ? buf.data() + (t - 1 - t0) * sample
                                  : have_prev_block ? prev_bufs[m].data() + (K - 1) * sample
                                                    : nullptr;
          stats.Add(t, m, buf.data() + (t - t0) * sample, previous);
        }
      }
      report.stats_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
      if (progress) {
        progress(((t0 - block_begin * K) * M + (t1 - t0) * (m + 1)) * sample * p.element_size(), total_bytes);
      }
    }
    (block_written ? report.times_written : report.times_skipped) += t1 - t0;
    std::swap(bufs, prev_bufs);
    have_prev_block = in_window && t1 - t0 == K;
  }
  if (part.index == 0) RETURN_IF_ERROR(WriteStaticFields(p, sources, out));
  if (!part.whole()) {
    // The part's manifest (its moments and what it wrote), then the claim goes; the last part finishes.
    json manifest = {{"store", "jigsaw-shard part"},
                     {"fingerprint", p.fingerprint()},
                     {"part", part.index + 1},
                     {"parts", part.count},
                     {"blocks", {block_begin, block_end}},
                     {"times", {FormatIsoTime(p.times[block_begin * K]), FormatIsoTime(p.times[std::min(T, block_end * K) - 1])}},
                     {"moments", MomentsToJson(stats.moments())},
                     {"objects", json::parse(EncodeChecksumRecord(recording.Recorded()))},
                     {"written_by", std::string("jigsaw ") + Version()}};
    RETURN_IF_ERROR(destination->Write(PartManifestKey(part), manifest.dump()));
    RETURN_IF_ERROR(claim->Release());
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (finish_when_last) {
      ASSIGN_OR_RETURN(PartsState parts, ReadPartsState(destination));
      if (parts.missing().empty()) RETURN_IF_ERROR(FinishShardParts(destination, log));
    }
    return report;
  }
  // Statistics arrays, then the last metadata write marks the store complete.
  json result = stats.Result();
  for (const char* name : kShardStatNames) {
    RETURN_IF_ERROR(WriteStatisticsArray(out, format, name, "channel", result[name].get<std::vector<double>>()));
  }
  json stat_info = {{"start", FormatIsoTime(p.times[p.stats_begin])},
                    {"end", FormatIsoTime(p.times[p.stats_end - 1])},
                    {"excluded_missing_times", p.missing_times.size()},
                    {"tendency", "x(t + step) - x(t) over consecutive selected times"}};
  RETURN_IF_ERROR(WriteGroup(out, "", format, RootAttributes(p, true, stat_info)));
  RETURN_IF_ERROR(WriteConsolidated(out, format));
  RETURN_IF_ERROR(recording.WriteRecord());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace jigsaw
