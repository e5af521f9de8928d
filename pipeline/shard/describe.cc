#include "pipeline/shard/describe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "pipeline/shard/plan.h"
#include "pipeline/sources/source.h"
#include "storage/zarr/cf.h"

namespace jigsaw {

namespace {

std::string KindOf(std::string_view url) {
  return IsNetcdfPath(url) ? "NetCDF" : IsGribPath(url) ? "GRIB" : "Zarr";
}

// The spacing of evenly spaced coordinates (the mean step; null when they are not evenly spaced).
nlohmann::json Spacing(const std::vector<double>& v) {
  const double step = (v.back() - v.front()) / static_cast<double>(v.size() - 1);
  for (size_t i = 1; i < v.size(); ++i)
    if (std::abs((v[i] - v[i - 1]) - step) > 1e-6 * std::max(1.0, std::abs(step))) return nullptr;
  return std::abs(step);
}

}  // namespace

Result<nlohmann::json> DescribeSource(std::string_view spec) {
  ASSIGN_OR_RETURN(auto sources, OpenSources(spec, SourceOptions{.member = std::nullopt, .first_member = true}));
  nlohmann::json d;
  d["source"] = std::string(spec);
  nlohmann::json files = nlohmann::json::array();
  for (const auto& s : sources) files.push_back(s->url());
  d["files"] = files;
  d["format"] = KindOf(sources.front()->url());

  // Variables: the union over the files, in first-seen order, levels merged.
  std::vector<std::string> order;
  std::map<std::string, std::pair<std::set<double>, std::string>> levels_units;
  std::set<int64_t> time_set;
  std::set<int64_t> members;
  std::vector<std::string> statics;
  for (const auto& s : sources) {
    for (const auto& v : s->variables()) {
      auto [it, fresh] = levels_units.try_emplace(v.name);
      if (fresh) order.push_back(v.name);
      it->second.first.insert(v.levels.begin(), v.levels.end());
      if (it->second.second.empty()) it->second.second = v.units;
    }
    time_set.insert(s->times().begin(), s->times().end());
    for (int64_t m : s->members()) members.insert(m);
    for (const auto& n : s->static_variables())
      if (std::find(statics.begin(), statics.end(), n) == statics.end()) statics.push_back(n);
  }
  nlohmann::json vars = nlohmann::json::array();
  for (const auto& name : order) {
    const auto& [levels, units] = levels_units[name];
    std::vector<double> desc(levels.rbegin(), levels.rend());  // 1000 hPa first, as a plan orders them
    vars.push_back({{"name", name},
                    {"short_names", ShortVariableNames(name)},
                    {"levels", desc},
                    {"units", units}});
  }
  d["variables"] = vars;

  const std::vector<int64_t> times(time_set.begin(), time_set.end());
  const int64_t step = SourceTimeStep(times);
  nlohmann::json t = {{"count", times.size()}};
  if (!times.empty()) {
    t["first"] = FormatIsoTime(times.front());
    t["last"] = FormatIsoTime(times.back());
  }
  t["step_seconds"] = step;
  t["step"] = step > 0 ? FormatStep(step) : "";
  nlohmann::json gaps = nlohmann::json::array();
  for (size_t i = 1; i < times.size() && step > 0; ++i) {
    const int64_t gap = times[i] - times[i - 1];
    if (gap == step) continue;
    gaps.push_back({{"after", FormatIsoTime(times[i - 1])},
                    {"before", FormatIsoTime(times[i])},
                    {"missing_steps", gap % step == 0 ? nlohmann::json(gap / step - 1) : nlohmann::json(nullptr)}});
  }
  t["gaps"] = gaps;
  d["times"] = t;

  const SourceGrid& g = sources.front()->grid();
  d["grid"] = {{"latitude", g.latitude.size()},
               {"longitude", g.longitude.size()},
               {"latitude_range", {g.latitude.front(), g.latitude.back()}},
               {"longitude_range", {g.longitude.front(), g.longitude.back()}},
               {"resolution", {Spacing(g.latitude), Spacing(g.longitude)}},
               {"as_stored", g.as_stored}};
  d["members"] = std::vector<int64_t>(members.begin(), members.end());
  d["static"] = statics;
  return d;
}

void PrintSourceDescription(const nlohmann::json& d, std::ostream& out) {
  const size_t nfiles = d["files"].size();
  out << d["source"].get<std::string>() << ": " << d["format"].get<std::string>();
  if (nfiles > 1) out << ", " << nfiles << " files";
  out << "\n  variables (" << d["variables"].size() << "):\n";
  for (const auto& v : d["variables"]) {
    out << "    " << v["name"].get<std::string>();
    std::string shorts;
    for (const auto& s : v["short_names"]) shorts += (shorts.empty() ? "" : ", ") + s.get<std::string>();
    if (!shorts.empty()) out << " (" << shorts << ")";
    const auto& levels = v["levels"];
    if (!levels.empty()) {
      out << ", " << levels.size() << (levels.size() == 1 ? " level: " : " levels: ");
      for (size_t i = 0; i < levels.size(); ++i) out << (i ? ", " : "") << FormatNumber(levels[i].get<double>());
      out << " hPa";
    }
    if (!v["units"].get<std::string>().empty()) out << "  [" << v["units"].get<std::string>() << "]";
    out << "\n";
  }
  const auto& t = d["times"];
  out << "  times: " << t["count"].get<int64_t>();
  if (t["count"].get<int64_t>() == 1) out << " at " << t["first"].get<std::string>();
  if (t["count"].get<int64_t>() > 1)
    out << " from " << t["first"].get<std::string>() << " to " << t["last"].get<std::string>();
  if (!t["step"].get<std::string>().empty()) out << ", every " << t["step"].get<std::string>();
  const auto& gaps = t["gaps"];
  if (gaps.empty()) {
    out << (t["count"].get<int64_t>() > 1 ? ", no gaps\n" : "\n");
  } else {
    out << ", " << gaps.size() << (gaps.size() == 1 ? " gap" : " gaps") << ":\n";
    for (size_t i = 0; i < gaps.size() && i < 10; ++i) {
      out << "    after " << gaps[i]["after"].get<std::string>() << " the next is "
          << gaps[i]["before"].get<std::string>();
      if (!gaps[i]["missing_steps"].is_null()) out << " (" << gaps[i]["missing_steps"].get<int64_t>() << " missing)";
      out << "\n";
    }
    if (gaps.size() > 10) out << "    ... and " << gaps.size() - 10 << " more (--json lists them all)\n";
  }
  const auto& g = d["grid"];
  out << "  grid: " << g["latitude"].get<int64_t>() << " x " << g["longitude"].get<int64_t>() << ", latitude "
      << FormatNumber(g["latitude_range"][0].get<double>()) << " to "
      << FormatNumber(g["latitude_range"][1].get<double>()) << ", longitude "
      << FormatNumber(g["longitude_range"][0].get<double>()) << " to "
      << FormatNumber(g["longitude_range"][1].get<double>());
  const auto& res = g["resolution"];
  if (!res[0].is_null() && !res[1].is_null()) {
    out << " (" << FormatNumber(res[0].get<double>()) << " x " << FormatNumber(res[1].get<double>())
        << " degrees)";
  }
  out << "; stored " << g["as_stored"].get<std::string>() << "\n";
  const auto& m = d["members"];
  if (m.empty()) {
    out << "  members: none\n";
  } else {
    out << "  members: " << m.size() << " (";
    for (size_t i = 0; i < m.size() && i < 12; ++i) out << (i ? ", " : "") << m[i].get<int64_t>();
    out << (m.size() > 12 ? ", ..." : "") << "): shard one with --member N, or each as samples with --members all\n";
  }
  out << "  static fields: ";
  if (d["static"].empty()) out << "none";
  for (size_t i = 0; i < d["static"].size(); ++i) out << (i ? ", " : "") << d["static"][i].get<std::string>();
  out << "\n";
}

}  // namespace jigsaw
