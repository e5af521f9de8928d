#include "jobs/score.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "base/human.h"
#include "jobs/climatology_source.h"
#include "jobs/store_facts.h"
#include "pipeline/sources/source.h"
#include "storage/kvstore/checksum_record.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "train/latitude_weights.h"

namespace jigsaw::train {
namespace {

template <typename T>
Result<std::vector<T>> ReadAll(KvStore* store, const std::string& name, int64_t* n) {
  ASSIGN_OR_RETURN(auto a, Array::Open(store, name));
  ASSIGN_OR_RETURN(std::vector<T> v, ReadWhole1D<T>(*a));
  if (n) *n = static_cast<int64_t>(v.size());
  return v;
}

// A region's grid points: its rows (with their weights) and columns, and the sum of the weights over them.
struct RegionMask {
  std::vector<int64_t> rows;
  std::vector<int64_t> cols;
  double weight_sum = 0;
};

bool InRanges(double v, const std::vector<std::pair<double, double>>& ranges, bool longitude) {
  constexpr double kEps = 1e-9;
  if (longitude) v = std::fmod(std::fmod(v, 360.0) + 360.0, 360.0);
  for (auto [a, b] : ranges) {
    if (!longitude || a <= b) {
      if (v >= a - kEps && v <= b + kEps) return true;
    } else if (v >= a - kEps || v <= b + kEps) {  // wraps through 0
      return true;
    }
  }
  return false;
}

Result<RegionMask> MaskOf(const Region& r, const std::vector<double>& lat, const std::vector<double>& lon,
                          const std::vector<float>& w) {
  RegionMask m;
  for (size_t y = 0; y < lat.size(); ++y)
    if (InRanges(lat[y], r.lat, false)) m.rows.push_back(static_cast<int64_t>(y));
  for (size_t x = 0; x < lon.size(); ++x)
    if (InRanges(lon[x], r.lon, true)) m.cols.push_back(static_cast<int64_t>(x));
  if (m.rows.empty() || m.cols.empty())
    return InvalidArgumentError("region " + r.name + " " + r.ToJson().dump() + " holds no point of the truth's grid");
  for (int64_t y : m.rows) m.weight_sum += w[y];
  m.weight_sum *= static_cast<double>(m.cols.size());
  return m;
}

Result<std::pair<double, double>> ParseRange(const std::string& text, const std::string& what) {
  const size_t colon = text.find(':');
  double a = 0, b = 0;
  char tail = 0;
  if (colon == std::string::npos || std::sscanf(text.substr(0, colon).c_str(), "%lf%c", &a, &tail) != 1 ||
      std::sscanf(text.substr(colon + 1).c_str(), "%lf%c", &b, &tail) != 1)
    return InvalidArgumentError(what + " \"" + text + "\" is not FROM:TO in degrees");
  return std::pair{a, b};
}

}  // namespace

nlohmann::json Region::ToJson() const { return {{"latitude", lat}, {"longitude", lon}}; }

std::vector<Region> PredefinedRegions() {
  return {Region{"global"}, Region{"tropics", {{-20, 20}}}, Region{"extra-tropics", {{-90, -20}, {20, 90}}},
          Region{"northern-hemisphere", {{20, 90}}}, Region{"southern-hemisphere", {{-90, -20}}}};
}

Result<Region> ParseRegion(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    for (const Region& r : PredefinedRegions())
      if (r.name == text) return r;
    std::string names;
    for (const Region& r : PredefinedRegions()) names += (names.empty() ? "" : ", ") + r.name;
    return InvalidArgumentError("region \"" + text + "\" is neither one of " + names +
                                " nor NAME=LAT0:LAT1[,LON0:LON1]");
  }
  Region r;
  r.name = text.substr(0, eq);
  if (r.name.empty()) return InvalidArgumentError("region \"" + text + "\" has no name before '='");
  const std::string box = text.substr(eq + 1);
  const size_t comma = box.find(',');
  ASSIGN_OR_RETURN(auto lat, ParseRange(box.substr(0, comma), "region " + r.name + "'s latitudes"));
  if (lat.first > lat.second) std::swap(lat.first, lat.second);
  if (lat.first < -90 || lat.second > 90)
    return InvalidArgumentError("region " + r.name + "'s latitudes " + box + " leave -90..90");
  r.lat = {lat};
  if (comma != std::string::npos) {
    ASSIGN_OR_RETURN(auto lon, ParseRange(box.substr(comma + 1), "region " + r.name + "'s longitudes"));
    auto wrap = [](double v) { return v == 360 ? 360.0 : std::fmod(std::fmod(v, 360.0) + 360.0, 360.0); };
    r.lon = {{wrap(lon.first), wrap(lon.second)}};
  }
  return r;
}

Result<std::string> ChannelName(const std::string& asked, const std::vector<std::string>& channels,
                                const std::string& where) {
  auto has = [&](const std::string& n) { return std::find(channels.begin(), channels.end(), n) != channels.end(); };
  if (has(asked)) return asked;
  if (std::string alias = CanonicalVariableName(asked); has(alias)) return alias;
  // <short name><level>: z850, t500, q700, u250.
  size_t digits = asked.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(asked[digits - 1]))) --digits;
  if (digits > 0 && digits < asked.size()) {
    const std::string name = CanonicalVariableName(asked.substr(0, digits)) + "_" + asked.substr(digits);
    if (has(name)) return name;
  }
  std::string list;
  for (const auto& c : channels) list += (list.empty() ? "" : ", ") + c;
  return InvalidArgumentError("channel " + asked + " is not in " + where + ", whose channels are: " + list);
}

Result<Scores> ScoreForecast(const ScoreOptions& o) {
  auto truth_or = ReadStoreFacts(o.truth);
  if (!truth_or.ok()) return truth_or.status().Annotate(o.truth);
  const StoreFacts& truth = *truth_or;
  RETURN_IF_ERROR(RequireSingleMember(truth, "jigsaw-score").Annotate(o.truth));
  Scores scores;
  scores.forecast = o.forecast;
  scores.label = o.label.empty() ? std::filesystem::path(o.forecast).filename().string() : o.label;
  if (scores.label.empty()) scores.label = o.forecast;
  // The forecast's every object is checked against the checksum record jigsaw-rollout wrote beside it.
  ASSIGN_OR_RETURN(auto fraw, OpenKvStore(o.forecast));
  {
    auto root = ReadNodeMetadata(fraw.get(), "");
    if (!root.ok()) return root.status().Annotate(o.forecast);
    const nlohmann::json mark = root->attributes.value("jigsaw", nlohmann::json());
    if (!mark.is_object() || mark.value("store", "") != "jigsaw-rollout")
      return InvalidArgumentError(o.forecast + ": not a jigsaw-rollout forecast (its group has no jigsaw mark)");
    if (!mark.value("complete", false)) {
      return FailedPreconditionError(o.forecast +
                                     ": the forecast is not complete (jigsaw-rollout did not finish; rerun it with the "
                                     "same arguments to finish it)");
    }
    scores.checkpoint_step = mark.value("identity", nlohmann::json::object()).value("checkpoint_step", int64_t{-1});
  }
  ASSIGN_OR_RETURN(auto record, ReadChecksumRecord(fraw.get()));
  if (!record) {
    return DataLossError(
        o.forecast + ": the forecast has no checksum record (jigsaw-rollout writes one last): it cannot be checked");
  }
  auto fstore = NewCheckedKvStore(std::move(fraw), std::move(*record));
  RETURN_IF_ERROR(ReadNodeMetadata(fstore.get(), "").status().Annotate(o.forecast));  // the mark read, checked
  auto forecast_or = Array::Open(fstore.get(), "forecast");
  if (!forecast_or.ok()) return forecast_or.status().Annotate(o.forecast + " (not a jigsaw-rollout store?)");
  auto& forecast = *forecast_or;
  forecast->RequireEveryChunk(true);  // a chunk gone is a forecast lost, not a time to skip
  const auto& fm = forecast->metadata();
  const std::vector<std::string> fchannels = fm.attributes.value("channels", std::vector<std::string>());
  int64_t n_init = 0, n_lead = 0;
  ASSIGN_OR_RETURN(auto inits, ReadAll<int64_t>(fstore.get(), "init_time", &n_init));
  ASSIGN_OR_RETURN(auto lead_hours, ReadAll<int64_t>(fstore.get(), "lead_time", &n_lead));
  const int64_t H = truth.height, W = truth.width;
  if (fm.shape.size() != 5 || fm.shape[0] != n_init || fm.shape[1] != n_lead || fm.shape[3] != H || fm.shape[4] != W ||
      static_cast<int64_t>(fchannels.size()) != fm.shape[2]) {
    return InvalidArgumentError(o.forecast + ": forecast is not [init_time, lead_time, channel, " + std::to_string(H) +
                                ", " + std::to_string(W) + "] with its channel names, as the truth's grid");
  }
  // The forecast's grid is the truth's, value for value (the climatology is compared with the truth's).
  for (const auto& [name, theirs] :
       {std::pair{"latitude", &truth.latitudes}, std::pair{"longitude", &truth.longitudes}}) {
    int64_t n = 0;
    ASSIGN_OR_RETURN(auto ours, ReadAll<double>(fstore.get(), name, &n));
    for (size_t k = 0; k < ours.size() && k < theirs->size(); ++k) {
      if (std::abs(ours[k] - (*theirs)[k]) > 1e-9) {
        return InvalidArgumentError(std::string(name) + "[" + std::to_string(k) + "] is " + Significant(ours[k], 10) +
                                    " in the forecast " + o.forecast + " but " + Significant((*theirs)[k], 10) +
                                    " in the truth " + o.truth + ": they are not on the same grid");
      }
    }
  }
  // Channels: as asked (names or short names), each in the forecast and in the truth.
  std::vector<int64_t> fidx, tidx;
  std::vector<std::string> names;
  for (const std::string& asked : o.channels.empty() ? fchannels : o.channels) {
    ASSIGN_OR_RETURN(std::string name, ChannelName(asked, fchannels, "the forecast " + o.forecast));
    auto t = std::find(truth.channels.begin(), truth.channels.end(), name);
    if (t == truth.channels.end()) return InvalidArgumentError("channel " + name + " is not in the truth " + o.truth);
    fidx.push_back(std::find(fchannels.begin(), fchannels.end(), name) - fchannels.begin());
    tidx.push_back(t - truth.channels.begin());
    names.push_back(name);
  }
  // Regions: global first, then those asked (WeatherBench2's by default), each with its grid points.
  const std::vector<float> w = LatitudeWeights(truth.latitudes);
  std::vector<RegionMask> masks;
  for (const Region& r : o.regions.empty() ? PredefinedRegions() : o.regions) {
    if (!scores.regions.empty() && r.name == "global") continue;
    if (scores.regions.empty() && r.name != "global") {
      scores.regions.push_back({Region{"global"}, {}});
      masks.push_back(MaskOf(Region{"global"}, truth.latitudes, truth.longitudes, w).value());
    }
    for (const auto& seen : scores.regions)
      if (seen.region.name == r.name) return InvalidArgumentError("region " + r.name + " is given twice");
    ASSIGN_OR_RETURN(RegionMask m, MaskOf(r, truth.latitudes, truth.longitudes, w));
    scores.regions.push_back({r, {}});
    masks.push_back(std::move(m));
  }
  for (RegionScores& rs : scores.regions)
    for (const std::string& name : names) {
      ChannelScores cs;
      cs.channel = name;
      cs.lead_hours = lead_hours;
      for (auto* v : {&cs.rmse, &cs.bias, &cs.persistence_rmse, &cs.persistence_bias}) v->assign(n_lead, 0.0);
      cs.count.assign(n_lead, 0);
      cs.forecast_nan.assign(n_lead, 0);
      if (!o.climatology.empty()) {
        for (auto* v : {&cs.acc, &cs.persistence_acc, &cs.climatology_rmse}) v->assign(n_lead, 0.0);
        cs.acc_count.assign(n_lead, 0);
      }
      rs.channels.push_back(std::move(cs));
    }
  // The climatology, when given (ours or WeatherBench2's layout), for the scored channels.
  std::unique_ptr<Climatology> clim;
  if (!o.climatology.empty()) {
    ASSIGN_OR_RETURN(clim, Climatology::Open(o.climatology, names, truth.latitudes, truth.longitudes));
  }
  ASSIGN_OR_RETURN(auto tstore, OpenCheckedKvStore(o.truth));
  ASSIGN_OR_RETURN(auto tdata, Array::Open(tstore.get(), "data"));
  tdata->RequireEveryChunk(true);  // a complete store (ReadStoreFacts): a missing chunk is corruption
  if (tdata->metadata().dtype.name != "float32" || fm.dtype.name != "float32") {
    return UnimplementedError("scores read float32 stores");
  }
  const int64_t C = fm.shape[2], TC = static_cast<int64_t>(truth.channels.size()), plane = H * W;
  std::vector<float> fsample(C * plane), tsample(TC * plane), tinit(TC * plane);
  std::vector<float> csample;
  // The uncentred anomaly correlation of a and b against climatology c over a region (weighted).
  auto acc = [&](const float* a, const float* b, const float* c, const RegionMask& m) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t y : m.rows)
      for (int64_t x : m.cols) {
        const double fa = double(a[y * W + x]) - c[y * W + x], fb = double(b[y * W + x]) - c[y * W + x];
        ab += w[y] * fa * fb;
        aa += w[y] * fa * fa;
        bb += w[y] * fb * fb;
      }
    return ab / std::sqrt(aa * bb);
  };
  auto time_index = [&](int64_t t) -> int64_t {
    auto it = std::lower_bound(truth.times.begin(), truth.times.end(), t);
    return it != truth.times.end() && *it == t ? it - truth.times.begin() : -1;
  };
  auto read_truth = [&](int64_t index, std::vector<float>* out) {
    return tdata->Read(Box{{index, 0, 0, 0}, {1, TC, H, W}},
                       std::span<char>(reinterpret_cast<char*>(out->data()), out->size() * 4));
  };
  // Weighted spatial means over a region of (a - b)^2 and (a - b); NaN when either holds a missing value.
  auto errors = [&](const float* a, const float* b, const RegionMask& m, double* mse, double* mean) {
    double s2 = 0, s1 = 0;
    for (int64_t y : m.rows) {
      double r2 = 0, r1 = 0;
      for (int64_t x : m.cols) {
        const double e = double(a[y * W + x]) - b[y * W + x];
        r2 += e * e;
        r1 += e;
      }
      s2 += w[y] * r2;
      s1 += w[y] * r1;
    }
    *mse = s2 / m.weight_sum;
    *mean = s1 / m.weight_sum;
  };
  const size_t K = names.size();
  for (int64_t i = 0; i < n_init; ++i) {
    const int64_t init_t = time_index(inits[i]);
    if (init_t >= 0) RETURN_IF_ERROR(read_truth(init_t, &tinit));
    for (int64_t l = 0; l < n_lead; ++l) {
      const int64_t valid = time_index(inits[i] + lead_hours[l] * 3600);
      if (valid < 0 || init_t < 0) {
        ++scores.skipped;
        continue;
      }
      RETURN_IF_ERROR(read_truth(valid, &tsample));
      RETURN_IF_ERROR(forecast->Read(Box{{i, l, 0, 0, 0}, {1, 1, C, H, W}},
                                     std::span<char>(reinterpret_cast<char*>(fsample.data()), fsample.size() * 4)));
      // Persistence compares the truth with itself over the whole grid: NaN there is the truth's missing
      // value (skipped and counted). NaN left in the model's errors is the forecast's own, and its scores
      // become NaN, counted.
      bool truth_missing = false;
      for (size_t k = 0; k < K && !truth_missing; ++k) {
        double pmse, pmean;
        errors(tinit.data() + tidx[k] * plane, tsample.data() + tidx[k] * plane, masks[0], &pmse, &pmean);
        truth_missing |= std::isnan(pmse);
      }
      if (truth_missing) {
        ++scores.skipped;
        continue;
      }
      if (clim) RETURN_IF_ERROR(clim->Read(inits[i] + lead_hours[l] * 3600, &csample).Annotate(o.climatology));
      for (size_t r = 0; r < scores.regions.size(); ++r) {
        const RegionMask& m = masks[r];
        for (size_t k = 0; k < K; ++k) {
          ChannelScores& cs = scores.regions[r].channels[k];
          const float* f = fsample.data() + fidx[k] * plane;
          const float* tr = tsample.data() + tidx[k] * plane;
          const float* t0 = tinit.data() + tidx[k] * plane;
          double mse, mean, pmse, pmean;
          errors(f, tr, m, &mse, &mean);
          errors(t0, tr, m, &pmse, &pmean);
          if (std::isnan(mse)) ++cs.forecast_nan[l];
          cs.rmse[l] += mse;
          cs.bias[l] += mean;
          cs.persistence_rmse[l] += pmse;
          cs.persistence_bias[l] += pmean;
          ++cs.count[l];
          if (!clim) continue;
          const float* c = csample.data() + k * plane;
          const double a = acc(f, tr, c, m), pa = acc(t0, tr, c, m);
          double cmse, cmean;
          errors(c, tr, m, &cmse, &cmean);
          // Not covered by the climatology: left out (a NaN forecast makes the model's ACC NaN, as its RMSE).
          if (std::isnan(pa) || std::isnan(cmse)) continue;
          cs.acc[l] += a;
          cs.persistence_acc[l] += pa;
          cs.climatology_rmse[l] += cmse;
          ++cs.acc_count[l];
        }
      }
    }
  }
  for (RegionScores& rs : scores.regions)
    for (ChannelScores& cs : rs.channels)
      for (int64_t l = 0; l < n_lead; ++l) {
        const double n = cs.count[l] ? static_cast<double>(cs.count[l]) : NAN;
        cs.rmse[l] = std::sqrt(cs.rmse[l] / n);
        cs.persistence_rmse[l] = std::sqrt(cs.persistence_rmse[l] / n);
        cs.bias[l] /= n;
        cs.persistence_bias[l] /= n;
        if (!cs.acc.empty()) {
          const double m = cs.acc_count[l] ? static_cast<double>(cs.acc_count[l]) : NAN;
          cs.acc[l] /= m;
          cs.persistence_acc[l] /= m;
          cs.climatology_rmse[l] = std::sqrt(cs.climatology_rmse[l] / m);
        }
      }
  return scores;
}

namespace {

nlohmann::json Numbers(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(std::isnan(x) ? nlohmann::json() : nlohmann::json(x));
  return a;
}

nlohmann::json ChannelJson(const ChannelScores& c) {
  nlohmann::json e = {{"lead_hours", c.lead_hours},
                      {"rmse", Numbers(c.rmse)},
                      {"bias", Numbers(c.bias)},
                      {"persistence_rmse", Numbers(c.persistence_rmse)},
                      {"persistence_bias", Numbers(c.persistence_bias)},
                      {"count", c.count},
                      {"forecast_nan_count", c.forecast_nan}};
  if (!c.acc.empty()) {
    e["acc"] = Numbers(c.acc);
    e["persistence_acc"] = Numbers(c.persistence_acc);
    e["climatology_rmse"] = Numbers(c.climatology_rmse);
    e["acc_count"] = c.acc_count;
  }
  return e;
}

}  // namespace

nlohmann::json Scores::ToJson() const {
  nlohmann::json j = {{"label", label},
                      {"forecast", forecast},
                      {"checkpoint_step", checkpoint_step},
                      {"skipped_without_truth", skipped},
                      {"regions", nlohmann::json::object()}};
  for (const RegionScores& rs : regions) {
    nlohmann::json& r = j["regions"][rs.region.name];
    r = {{"box", rs.region.ToJson()}, {"channels", nlohmann::json::object()}};
    for (const ChannelScores& c : rs.channels) r["channels"][c.channel] = ChannelJson(c);
  }
  return j;
}

nlohmann::json ScoresToJson(const std::vector<Scores>& all) {
  nlohmann::json j = {{"forecasts", nlohmann::json::array()}};
  for (const Scores& s : all) j["forecasts"].push_back(s.ToJson());
  if (!all.empty()) {  // the first forecast's global scores, where a script reading one forecast looks
    j["channels"] = j["forecasts"][0]["regions"]["global"]["channels"];
    j["skipped_without_truth"] = all.front().skipped;
    j["regions"] = nlohmann::json::array();  // the order scored (JSON objects keep none)
    for (const RegionScores& rs : all.front().regions) j["regions"].push_back(rs.region.name);
    j["channel_names"] = nlohmann::json::array();
    for (const ChannelScores& c : all.front().channels()) j["channel_names"].push_back(c.channel);
  }
  return j;
}

std::string ScoresToCsv(const std::vector<Scores>& all) {
  std::ostringstream s;
  s.precision(9);
  const bool with_acc = !all.empty() && !all.front().channels().empty() && !all.front().channels().front().acc.empty();
  s << "forecast,region,channel,lead_hours,count,forecast_nan_count,rmse,persistence_rmse,bias,persistence_bias"
    << (with_acc ? ",acc,persistence_acc,climatology_rmse,acc_count" : "") << "\n";
  for (const Scores& sc : all)
    for (const RegionScores& rs : sc.regions)
      for (const ChannelScores& c : rs.channels)
        for (size_t l = 0; l < c.lead_hours.size(); ++l) {
          s << sc.label << "," << rs.region.name << "," << c.channel << "," << c.lead_hours[l] << "," << c.count[l]
            << "," << c.forecast_nan[l] << "," << c.rmse[l] << "," << c.persistence_rmse[l] << "," << c.bias[l] << ","
            << c.persistence_bias[l];
          if (with_acc) {
            s << "," << c.acc[l] << "," << c.persistence_acc[l] << "," << c.climatology_rmse[l] << ","
              << c.acc_count[l];
          }
          s << "\n";
        }
  return s.str();
}

void PrintScores(const std::vector<Scores>& all, std::ostream& out) {
  if (all.empty()) return;
  const Scores& first = all.front();
  const bool with_acc = !first.channels().empty() && !first.channels().front().acc.empty();
  std::string models;
  for (const Scores& s : all) models += (models.empty() ? "" : " / ") + s.label;
  char line[400];
  for (size_t r = 0; r < first.regions.size(); ++r)
    for (size_t k = 0; k < first.regions[r].channels.size(); ++k) {
      const ChannelScores& c0 = first.regions[r].channels[k];
      out << c0.channel << ", " << first.regions[r].region.name << ": latitude-weighted RMSE (" << models
          << " / persistence" << (with_acc ? " / climatology" : "") << ")"
          << (with_acc ? ", ACC (" + models + " / persistence)" : "") << "\n";
      for (size_t l = 0; l < c0.lead_hours.size(); ++l) {
        int n = std::snprintf(line, sizeof(line), "  lead %4lldh ", static_cast<long long>(c0.lead_hours[l]));
        for (const Scores& s : all) {
          const ChannelScores& c = s.regions[r].channels[k];
          n += std::snprintf(line + n, sizeof(line) - n, " %11.5g", l < c.rmse.size() ? c.rmse[l] : NAN);
        }
        n += std::snprintf(line + n, sizeof(line) - n, " / %11.5g", c0.persistence_rmse[l]);
        if (with_acc) n += std::snprintf(line + n, sizeof(line) - n, " / %11.5g   ACC", c0.climatology_rmse[l]);
        if (with_acc) {
          for (const Scores& s : all) {
            const ChannelScores& c = s.regions[r].channels[k];
            n += std::snprintf(line + n, sizeof(line) - n, " %6.3f", l < c.acc.size() ? c.acc[l] : NAN);
          }
          n += std::snprintf(line + n, sizeof(line) - n, " / %6.3f", c0.persistence_acc[l]);
        }
        std::snprintf(line + n, sizeof(line) - n, "   (%lld initial times)\n", static_cast<long long>(c0.count[l]));
        out << line;
      }
    }
  for (const Scores& s : all) {
    if (s.skipped) out << s.label << ": " << s.skipped << " (initial time, lead) pairs skipped: truth missing\n";
    for (const ChannelScores& c : s.channels()) {
      int64_t nan = 0;
      for (int64_t n : c.forecast_nan) nan += n;
      if (nan) {
        out << s.label << ", " << c.channel << ": the forecast holds NaN at " << nan
            << " (initial time, lead) pairs: its scores there are NaN\n";
      }
    }
  }
}

}  // namespace jigsaw::train
