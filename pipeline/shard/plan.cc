#include "pipeline/shard/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/human.h"
#include "storage/codec/crc32c.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

Result<int64_t> ParseStep(std::string_view text) {
  if (text.empty()) return InvalidArgumentError("empty time step");
  char unit = text.back();
  std::string num(text.substr(0, text.size() - 1));
  int64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(num, &used);
    if (used != num.size()) mult = 0;
  } catch (...) {
    mult = 0;
  }
  if (mult == 0 || n <= 0)
    return InvalidArgumentError("time step \"" + std::string(text) + "\" is not like 6h, 30m, 1d or 3600s");
  // A step beyond a thousand years is a typo; one that overflows would wrap round to a negative step.
  constexpr int64_t kMaxSeconds = int64_t{1000} * 366 * 86400;
  if (n > kMaxSeconds / mult)
    return InvalidArgumentError("time step \"" + std::string(text) + "\" is over a thousand years");
  return n * mult;
}

std::string FormatStep(int64_t seconds) {
  if (seconds > 0 && seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

int64_t SourceTimeStep(std::span<const int64_t> times) {
  int64_t step = 0;
  for (size_t i = 1; i < times.size(); ++i) {
    const int64_t d = times[i] - times[i - 1];
    if (d > 0 && (step == 0 || d < step)) step = d;
  }
  return step;
}

std::vector<int64_t> ShardPlan::tile_shape() const {
  return {SplitLength(num_channels(), tiles.ch), SplitLength(nlat(), tiles.lat), SplitLength(nlon(), tiles.lon)};
}

int ShardPlan::element_size() const { return options.dtype == "float32" ? 4 : 2; }

nlohmann::json ShardPlan::ToJson() const {
  nlohmann::json channel_names = nlohmann::json::array();
  for (const auto& c : channels) channel_names.push_back(c.name);
  nlohmann::json j = {{"channels", channel_names},
                      {"start", FormatIsoTime(times.front())},
                      {"end", FormatIsoTime(times.back())},
                      {"step_seconds", step_seconds},
                      {"num_times", times.size()},
                      {"tiles", tiles.ToString()},
                      {"grid", {nlat(), nlon()}},
                      {"lat_range", {grid.latitude.front(), grid.latitude.back()}},
                      {"lon_range", {grid.longitude.front(), grid.longitude.back()}},
                      {"lat_crop", options.lat_crop},
                      {"format", options.zarr_format == 3 ? "zarr3" : "zarr2"},
                      {"dtype", options.dtype},
                      {"codec", options.codec},
                      {"time_per_shard", options.time_per_shard},
                      {"statistics", {FormatIsoTime(times[stats_begin]), FormatIsoTime(times[stats_end - 1])}},
                      {"missing_times", [&] {
                         nlohmann::json m = nlohmann::json::array();
                         for (int64_t t : missing_times) m.push_back(FormatIsoTime(t));
                         return m;
                       }()}};
  if (!options.members.empty()) j["members"] = options.members;
  if (options.member) j["member"] = *options.member;  // only when given: other plans keep their fingerprints
  if (options.allow_missing) j["allow_missing"] = true;  // NaN in the data was asked for (verify)
  // Only when there are any: plans without static fields keep the fingerprint they had before them.
  if (!statics.empty()) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& s : statics) names.push_back(s.name);
    j["static_channels"] = names;
  }
  return j;
}

std::string ShardPlan::fingerprint() const {
  std::string text = ToJson().dump();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08x%08x", Crc32c(text), Crc32c(text, 0x9E3779B9u));
  return buf;
}

Result<ShardPlan> MakeShardPlan(const ShardOptions& o, const std::vector<std::unique_ptr<Source>>& sources) {
  ShardPlan p;
  p.options = o;
  if (sources.empty()) return InvalidArgumentError("no --source given");
  if (o.vars.empty()) return InvalidArgumentError("no --vars given");
  ASSIGN_OR_RETURN(p.tiles, TileGrid::Parse(o.tiles));
  if (o.zarr_format != 2 && o.zarr_format != 3) return InvalidArgumentError("--format must be zarr2 or zarr3");
  if (o.dtype != "float32" && o.dtype != "bfloat16" && o.dtype != "float16") {
    return InvalidArgumentError("--dtype must be float32, bfloat16 or float16");
  }
  if (o.dtype == "bfloat16" && o.zarr_format == 2) return InvalidArgumentError("bfloat16 needs --format zarr3");
  if (o.time_per_shard < 1) return InvalidArgumentError("--time-per-shard must be at least 1");
  if (o.time_per_shard > 1 && o.zarr_format == 2) return InvalidArgumentError("--time-per-shard needs --format zarr3");
  RETURN_IF_ERROR(BytesCodecFromName(o.codec, 4));  // an unknown codec is refused at plan time
  for (const auto& s : sources) p.sources.push_back(s->url());

  // Times: by default the sources' whole span at their own step.
  std::vector<int64_t> held;
  for (const auto& s : sources) held.insert(held.end(), s->times().begin(), s->times().end());
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  if (held.empty()) return InvalidArgumentError("the sources hold no times");
  const int64_t source_step = SourceTimeStep(held);
  if (o.step.empty()) {
    p.step_seconds = source_step > 0 ? source_step : 6 * 3600;
  } else {
    ASSIGN_OR_RETURN(p.step_seconds, ParseStep(o.step));
  }
  int64_t t0 = held.front(), t1 = held.back();
  if (!o.start.empty()) {
    ASSIGN_OR_RETURN(t0, ParseTimeBound(o.start, false));
  }
  if (!o.end.empty()) {
    ASSIGN_OR_RETURN(t1, ParseTimeBound(o.end, true));
  }
  if (t1 < t0) {
    return InvalidArgumentError("--end " + (o.end.empty() ? FormatIsoTime(t1) : o.end) + " is before --start " +
                                (o.start.empty() ? FormatIsoTime(t0) : o.start));
  }
  for (int64_t t = t0; t <= t1; t += p.step_seconds) p.times.push_back(t);
  // Why a requested time is in no source, when the step explains it.
  auto step_hint = [&]() -> std::string {
    if (source_step <= 0 || p.step_seconds % source_step == 0) return "";
    return "; --step " + o.step + " does not fit the sources' " + FormatStep(source_step) +
           " step (leave --step out to use it, or give a multiple of it)";
  };

  // Grid: every source must agree.
  const Source* first = sources.front().get();
  for (const auto& s : sources) {
    const SourceGrid& g = s->grid();
    auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (std::abs(a[i] - b[i]) > 1e-6) return false;
      return true;
    };
    if (!same(g.latitude, first->grid().latitude) || !same(g.longitude, first->grid().longitude)) {
      return InvalidArgumentError("mismatched grids between sources " + first->url() + " (" +
                                  std::to_string(first->grid().latitude.size()) + "x" +
                                  std::to_string(first->grid().longitude.size()) + ") and " + s->url() + " (" +
                                  std::to_string(g.latitude.size()) + "x" + std::to_string(g.longitude.size()) + ")");
    }
  }
  p.grid = first->grid();
  if (o.lat_crop < 0 || o.lat_crop >= static_cast<int64_t>(p.grid.latitude.size())) {
    return InvalidArgumentError("--lat-crop must be in [0, number of latitudes)");
  }
  p.grid.latitude.resize(p.grid.latitude.size() - o.lat_crop);

  // Channels and where each variable comes from.
  std::vector<bool> missing(p.times.size(), false);
  for (const auto& requested : o.vars) {
    std::string var = CanonicalVariableName(requested);
    ShardPlan::VariableRead read;
    read.variable = var;
    read.first_channel = p.num_channels();
    read.source.assign(p.times.size(), -1);
    read.index.assign(p.times.size(), -1);
    const VariableInfo* info = nullptr;
    for (size_t si = 0; si < sources.size(); ++si) {
      const VariableInfo* vi = sources[si]->FindVariable(var);
      if (!vi) continue;
      if (info && info->levels != vi->levels) {
        return InvalidArgumentError("variable " + var + " has different levels in " + sources[si]->url() +
                                    " than in an earlier source");
      }
      info = vi;
      const auto& st = sources[si]->times();
      for (size_t ti = 0; ti < p.times.size(); ++ti) {
        auto it = std::lower_bound(st.begin(), st.end(), p.times[ti]);
        if (it == st.end() || *it != p.times[ti]) continue;
        if (read.source[ti] >= 0) {
          return InvalidArgumentError("overlapping times: " + var + " at " + FormatIsoTime(p.times[ti]) +
                                      " is in both " + sources[read.source[ti]]->url() + " and " + sources[si]->url());
        }
        read.source[ti] = static_cast<int>(si);
        read.index[ti] = it - st.begin();
      }
    }
    if (!info) {
      for (const auto& src : sources) {
        if (Status why = src->Unusable(var); !why.ok()) return why.Annotate(src->url());
      }
      std::string have;
      for (const auto& v : first->variables()) have += (have.empty() ? "" : ", ") + v.name;
      return InvalidArgumentError("unknown variable \"" + requested + "\" (the first source has: " + have + ")");
    }
    if (info->levels.empty()) {
      p.channels.push_back({var, var, std::nullopt});
    } else {
      std::vector<double> want = o.levels;
      if (want.empty()) {
        want = info->levels;
        std::sort(want.rbegin(), want.rend());  // 1000 hPa first
      }
      for (double l : want) {
        auto it = std::find(info->levels.begin(), info->levels.end(), l);
        if (it == info->levels.end()) {
          return InvalidArgumentError("unknown level " + FormatNumber(l) + " for variable " + var);
        }
        read.level_indices.push_back(it - info->levels.begin());
        p.channels.push_back({var + "_" + FormatNumber(l), var, l});
      }
    }
    for (size_t ti = 0; ti < p.times.size(); ++ti) {
      if (read.source[ti] >= 0) {
        // The time is in the source, but a GRIB file need not hold every level of it.
        std::string lacks = sources[read.source[ti]]->Lacks(var, read.index[ti], read.level_indices);
        if (lacks.empty()) continue;
        if (!o.allow_missing) return InvalidArgumentError(lacks + " (use --allow-missing to write NaN there)");
        read.source[ti] = -1;
        read.index[ti] = -1;
      }
      if (!o.allow_missing) {
        if (std::string hint = step_hint(); !hint.empty())
          return InvalidArgumentError("no source holds " + var + " at " + FormatIsoTime(p.times[ti]) + hint);
        return InvalidArgumentError("no source holds " + var + " at " + FormatIsoTime(p.times[ti]) +
                                    " (use --allow-missing to write NaN there)");
      }
      missing[ti] = true;
    }
    p.reads.push_back(std::move(read));
  }
  for (size_t ti = 0; ti < p.times.size(); ++ti)
    if (missing[ti]) p.missing_times.push_back(p.times[ti]);

  // Static fields: from the first source that has each.
  for (const auto& requested : o.static_vars) {
    const std::string name = SingleLevelVariableName(CanonicalVariableName(requested));  // z: the orography
    for (const auto& s : p.statics)
      if (s.name == name) return InvalidArgumentError("--static names " + name + " twice");
    int found = -1;
    for (size_t si = 0; si < sources.size() && found < 0; ++si)
      if (sources[si]->HasStatic(name)) found = static_cast<int>(si);
    if (found < 0) {
      std::string have;
      for (const auto& v : first->static_variables()) have += (have.empty() ? "" : ", ") + v;
      return InvalidArgumentError("no source has the static field \"" + requested +
                                  "\" (the first source's "
                                  "time-independent fields: " +
                                  (have.empty() ? "none" : have) +
                                  "; a single-level variable of any source also serves)");
    }
    const auto& statics = sources[found]->static_variables();
    const VariableInfo* v = sources[found]->FindVariable(name);
    if (std::find(statics.begin(), statics.end(), name) == statics.end() && v && !v->levels.empty()) {
      return InvalidArgumentError("--static " + requested + ": " + name + " is on pressure levels in " +
                                  sources[found]->url() + "; a static field is a single-level variable");
    }
    p.statics.push_back({name, found});
  }
  if (!p.statics.empty()) RETURN_IF_ERROR(CheckSplit(p.num_static(), p.tiles.ch, "the static fields"));

  RETURN_IF_ERROR(CheckSplit(p.num_channels(), p.tiles.ch, "the channels"));
  RETURN_IF_ERROR(CheckSplit(p.nlat(), p.tiles.lat, "latitude"));
  RETURN_IF_ERROR(CheckSplit(p.nlon(), p.tiles.lon, "longitude"));

  // Statistics window.
  int64_t s0 = p.times.front(), s1 = p.times.back();
  if (!o.stats_start.empty()) {
    ASSIGN_OR_RETURN(s0, ParseTimeBound(o.stats_start, false));
  }
  if (!o.stats_end.empty()) {
    ASSIGN_OR_RETURN(s1, ParseTimeBound(o.stats_end, true));
  }
  p.stats_begin = std::lower_bound(p.times.begin(), p.times.end(), s0) - p.times.begin();
  p.stats_end = std::upper_bound(p.times.begin(), p.times.end(), s1) - p.times.begin();
  if (p.stats_begin >= p.stats_end) return InvalidArgumentError("the statistics window holds no selected time");
  return p;
}

void PrintPlan(const ShardPlan& p, bool as_json, std::ostream& out) {
  auto tile = p.tile_shape();
  const int64_t tile_bytes = tile[0] * tile[1] * tile[2] * p.element_size();
  const int64_t sample_bytes = p.num_channels() * p.nlat() * p.nlon() * p.element_size();
  const int64_t k = p.options.time_per_shard;
  const int64_t objects = p.tiles.num_tiles() * p.num_members() * ((static_cast<int64_t>(p.times.size()) + k - 1) / k);
  nlohmann::json j = p.ToJson();
  j["sources"] = p.sources;
  j["tile_shape"] = tile;
  j["bytes_per_tile"] = tile_bytes;
  j["bytes_per_rank_per_sample"] = tile_bytes;
  j["bytes_per_sample"] = sample_bytes;
  j["data_objects"] = objects;
  j["total_bytes_uncompressed"] = sample_bytes * p.num_members() * static_cast<int64_t>(p.times.size());
  j["fingerprint"] = p.fingerprint();
  if (as_json) {
    out << j.dump(2) << "\n";
    return;
  }
  out << "channels (" << p.num_channels() << "):";
  for (size_t i = 0; i < p.channels.size(); ++i) out << (i % 8 ? " " : "\n  ") << p.channels[i].name;
  out << "\ntimes: " << p.times.size() << " from " << FormatIsoTime(p.times.front()) << " to "
      << FormatIsoTime(p.times.back()) << " every " << FormatStep(p.step_seconds);
  if (!p.missing_times.empty()) out << " (" << p.missing_times.size() << " missing, written as NaN)";
  if (!p.options.members.empty()) {
    out << "\nmembers: " << p.num_members() << " (";
    for (size_t m = 0; m < p.options.members.size(); ++m) out << (m ? ", " : "") << p.options.members[m];
    out << "), each a sample at every time";
  }
  out << "\ngrid: " << p.nlat() << " x " << p.nlon() << " (latitude " << p.grid.latitude.front() << " to "
      << p.grid.latitude.back() << ", longitude " << p.grid.longitude.front() << " to " << p.grid.longitude.back()
      << ")";
  out << "\ntiles: " << p.tiles.ToString() << " = " << p.tiles.num_tiles() << (p.tiles.num_tiles() == 1 ? " rank" : " ranks")
      << "; tile [" << tile[0] << " ch, " << tile[1] << " lat, " << tile[2] << " lon] = " << HumanBytes(tile_bytes)
      << " per rank per sample ("
      << p.options.dtype << ")";
  out << "\noutput: " << (p.options.zarr_format == 3 ? "zarr3" : "zarr2") << ", " << p.options.codec << ", " << objects
      << " data objects" << (k > 1 ? " (" + std::to_string(k) + " time steps per shard)" : "") << ", "
      << HumanBytes(j["total_bytes_uncompressed"].get<int64_t>()) << " uncompressed";
  if (!p.statics.empty()) {
    out << "\nstatic fields (" << p.num_static() << "):";
    for (const auto& s : p.statics) out << " " << s.name;
    out << " [" << SplitLength(p.num_static(), p.tiles.ch) << " per tile]";
  }
  out << "\nstatistics over " << (p.stats_end - p.stats_begin) << " times from "
      << FormatIsoTime(p.times[p.stats_begin]) << " to " << FormatIsoTime(p.times[p.stats_end - 1]) << "\nfingerprint " << p.fingerprint() << "\n";
}

}  // namespace jigsaw
