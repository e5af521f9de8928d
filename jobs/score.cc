#include "jobs/score.h"
#include "storage/kvstore/checksum_record.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "jobs/climatology_source.h"
#include "jobs/store_facts.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "train/latitude_weights.h"

namespace jigsaw::train {
namespace {

// WB2-style short names of the headline channels.
const std::map<std::string, std::string> kShortNames = {
    {"z500", "geopotential_500"},       {"t850", "temperature_850"},        {"t2m", "2m_temperature"},
    {"u10", "10m_u_component_of_wind"}, {"msl", "mean_sea_level_pressure"}, {"q700", "specific_humidity_700"}};

template <typename T>
Result<std::vector<T>> ReadAll(KvStore* store, const std::string& name, int64_t* n) {
  ASSIGN_OR_RETURN(auto a, Array::Open(store, name));
  ASSIGN_OR_RETURN(std::vector<T> v, ReadWhole1D<T>(*a));
  if (n) *n = static_cast<int64_t>(v.size());
  return v;
}

std::string FormatNumber(double v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.10g", v);
  return text;
}

}  // namespace

Result<Scores> ScoreForecast(const ScoreOptions& o) {
  auto truth_or = ReadStoreFacts(o.truth);
  if (!truth_or.ok()) return truth_or.status().Annotate(o.truth);
  const StoreFacts& truth = *truth_or;
  RETURN_IF_ERROR(RequireSingleMember(truth, "jigsaw-score").Annotate(o.truth));
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
        return InvalidArgumentError(std::string(name) + "[" + std::to_string(k) + "] is " + FormatNumber(ours[k]) +
                                    " in the forecast " + o.forecast + " but " + FormatNumber((*theirs)[k]) +
                                    " in the truth " + o.truth + ": they are not on the same grid");
      }
    }
  }
  // Channels: as asked (names or short names), each in the forecast and in the truth.
  std::vector<std::string> names = o.channels.empty() ? fchannels : o.channels;
  std::vector<int64_t> fidx, tidx;
  Scores scores;
  for (std::string name : names) {
    if (kShortNames.count(name)) name = kShortNames.at(name);
    auto f = std::find(fchannels.begin(), fchannels.end(), name);
    auto t = std::find(truth.channels.begin(), truth.channels.end(), name);
    if (f == fchannels.end()) return InvalidArgumentError("channel " + name + " is not in the forecast " + o.forecast);
    if (t == truth.channels.end()) return InvalidArgumentError("channel " + name + " is not in the truth " + o.truth);
    fidx.push_back(f - fchannels.begin());
    tidx.push_back(t - truth.channels.begin());
    ChannelScores cs;
    cs.channel = name;
    cs.lead_hours = lead_hours;
    for (auto* v : {&cs.rmse, &cs.bias, &cs.persistence_rmse, &cs.persistence_bias}) v->assign(n_lead, 0.0);
    cs.count.assign(n_lead, 0);
    cs.forecast_nan.assign(n_lead, 0);
    scores.channels.push_back(std::move(cs));
  }
  // The climatology, when given (ours or WeatherBench2's layout), for the scored channels.
  std::unique_ptr<Climatology> clim;
  if (!o.climatology.empty()) {
    std::vector<std::string> names;
    for (const auto& cs : scores.channels) names.push_back(cs.channel);
    ASSIGN_OR_RETURN(clim, Climatology::Open(o.climatology, names, truth.latitudes, truth.longitudes));
    for (auto& cs : scores.channels) {
      for (auto* v : {&cs.acc, &cs.persistence_acc, &cs.climatology_rmse}) v->assign(n_lead, 0.0);
      cs.acc_count.assign(n_lead, 0);
    }
  }
  const std::vector<float> w = LatitudeWeights(truth.latitudes);
  ASSIGN_OR_RETURN(auto tstore, OpenCheckedKvStore(o.truth));
  ASSIGN_OR_RETURN(auto tdata, Array::Open(tstore.get(), "data"));
  tdata->RequireEveryChunk(true);  // a complete store (ReadStoreFacts): a missing chunk is corruption
  if (tdata->metadata().dtype.name != "float32" || fm.dtype.name != "float32") {
    return UnimplementedError("scores read float32 stores");
  }
  const int64_t C = fm.shape[2], TC = static_cast<int64_t>(truth.channels.size()), plane = H * W;
  std::vector<float> fsample(C * plane), tsample(TC * plane), tinit(TC * plane);
  std::vector<float> csample;
  // The uncentred anomaly correlation of a and b against climatology c (weighted), NaN if any is missing.
  auto acc = [&](const float* a, const float* b, const float* c) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
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
  // Weighted spatial means of (a - b)^2 and (a - b); NaN when either holds a missing value.
  auto errors = [&](const float* a, const float* b, double* mse, double* mean) {
    double s2 = 0, s1 = 0;
    for (int64_t y = 0; y < H; ++y) {
      double r2 = 0, r1 = 0;
      for (int64_t x = 0; x < W; ++x) {
        const double e = double(a[y * W + x]) - b[y * W + x];
        r2 += e * e;
        r1 += e;
      }
      s2 += w[y] * r2;
      s1 += w[y] * r1;
    }
    *mse = s2 / plane;
    *mean = s1 / plane;
  };
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
      // Persistence compares the truth with itself: NaN there is the truth's missing value (skipped and
      // counted). NaN left in the model's errors is the forecast's own, and its scores become NaN, counted.
      bool truth_missing = false;
      std::vector<double> mse(fidx.size()), mean(fidx.size()), pmse(fidx.size()), pmean(fidx.size());
      for (size_t k = 0; k < fidx.size(); ++k) {
        errors(fsample.data() + fidx[k] * plane, tsample.data() + tidx[k] * plane, &mse[k], &mean[k]);
        errors(tinit.data() + tidx[k] * plane, tsample.data() + tidx[k] * plane, &pmse[k], &pmean[k]);
        truth_missing |= std::isnan(pmse[k]);
      }
      if (truth_missing) {
        ++scores.skipped;
        continue;
      }
      for (size_t k = 0; k < fidx.size(); ++k) {
        ChannelScores& cs = scores.channels[k];
        if (std::isnan(mse[k])) ++cs.forecast_nan[l];
        cs.rmse[l] += mse[k];
        cs.bias[l] += mean[k];
        cs.persistence_rmse[l] += pmse[k];
        cs.persistence_bias[l] += pmean[k];
        ++cs.count[l];
      }
      if (clim) {
        RETURN_IF_ERROR(clim->Read(inits[i] + lead_hours[l] * 3600, &csample).Annotate(o.climatology));
        for (size_t k = 0; k < fidx.size(); ++k) {
          const float* c = csample.data() + k * plane;
          const float* tr = tsample.data() + tidx[k] * plane;
          const double a = acc(fsample.data() + fidx[k] * plane, tr, c),
                       pa = acc(tinit.data() + tidx[k] * plane, tr, c);
          double cmse, cmean;
          errors(c, tr, &cmse, &cmean);
          if (std::isnan(pa) || std::isnan(cmse))
            continue;  // the climatology does not cover it (a NaN forecast
                       // makes the model's ACC NaN, as its RMSE)
          ChannelScores& cs = scores.channels[k];
          cs.acc[l] += a;
          cs.persistence_acc[l] += pa;
          cs.climatology_rmse[l] += cmse;
          ++cs.acc_count[l];
        }
      }
    }
  }
  for (ChannelScores& cs : scores.channels)
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

nlohmann::json Scores::ToJson() const {
  nlohmann::json j = {{"skipped_without_truth", skipped},
                      {"channels", nlohmann::json::object()},
                      {"headline", nlohmann::json::array()}};
  for (const ChannelScores* c : Headline()) j["headline"].push_back(c->channel);
  auto nums = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(std::isnan(x) ? nlohmann::json() : nlohmann::json(x));
    return a;
  };
  for (const auto& c : channels) {
    j["channels"][c.channel] = {{"lead_hours", c.lead_hours},
                                {"rmse", nums(c.rmse)},
                                {"bias", nums(c.bias)},
                                {"persistence_rmse", nums(c.persistence_rmse)},
                                {"persistence_bias", nums(c.persistence_bias)},
                                {"count", c.count},
                                {"forecast_nan_count", c.forecast_nan}};
    if (!c.acc.empty()) {
      auto& e = j["channels"][c.channel];
      e["acc"] = nums(c.acc);
      e["persistence_acc"] = nums(c.persistence_acc);
      e["climatology_rmse"] = nums(c.climatology_rmse);
      e["acc_count"] = c.acc_count;
    }
  }
  return j;
}

std::string Scores::ToCsv() const {
  std::ostringstream s;
  s.precision(9);
  const bool with_acc = !channels.empty() && !channels.front().acc.empty();
  s << "channel,lead_hours,count,rmse,persistence_rmse,bias,persistence_bias"
    << (with_acc ? ",acc,persistence_acc,climatology_rmse,acc_count" : "") << "\n";
  for (const auto& c : channels)
    for (size_t l = 0; l < c.lead_hours.size(); ++l) {
      s << c.channel << "," << c.lead_hours[l] << "," << c.count[l] << "," << c.rmse[l] << "," << c.persistence_rmse[l]
        << "," << c.bias[l] << "," << c.persistence_bias[l];
      if (with_acc)
        s << "," << c.acc[l] << "," << c.persistence_acc[l] << "," << c.climatology_rmse[l] << "," << c.acc_count[l];
      s << "\n";
    }
  return s.str();
}

std::vector<const ChannelScores*> Scores::Headline() const {
  std::vector<const ChannelScores*> shown;
  for (const char* key : {"z500", "t850", "t2m", "u10", "msl"})
    for (const auto& c : channels)
      if (c.channel == kShortNames.at(key)) shown.push_back(&c);
  for (size_t k = 0; shown.empty() && k < channels.size() && k < 5; ++k) shown.push_back(&channels[k]);
  return shown;
}

void Scores::PrintTable(std::ostream& out) const {
  for (const ChannelScores* c : Headline()) {
    const bool with_acc = !c->acc.empty();
    out << c->channel << ": latitude-weighted RMSE (model / persistence" << (with_acc ? " / climatology" : "")
        << "), bias (model)" << (with_acc ? ", ACC (model / persistence)" : "") << "\n";
    char line[240];
    for (size_t l = 0; l < c->lead_hours.size(); ++l) {
      int n = std::snprintf(line, sizeof(line), "  lead %4lldh  %12.5g / %12.5g",
                            static_cast<long long>(c->lead_hours[l]), c->rmse[l], c->persistence_rmse[l]);
      if (with_acc) n += std::snprintf(line + n, sizeof(line) - n, " / %12.5g", c->climatology_rmse[l]);
      n += std::snprintf(line + n, sizeof(line) - n, "   bias %11.4g", c->bias[l]);
      if (with_acc)
        n += std::snprintf(line + n, sizeof(line) - n, "   ACC %6.3f / %6.3f", c->acc[l], c->persistence_acc[l]);
      std::snprintf(line + n, sizeof(line) - n, "   (%lld initial times)\n", static_cast<long long>(c->count[l]));
      out << line;
    }
  }
  if (skipped) out << skipped << " (initial time, lead) pairs skipped: truth missing\n";
  for (const auto& c : channels) {
    int64_t nan = 0;
    for (int64_t n : c.forecast_nan) nan += n;
    if (nan)
      out << c.channel << ": the forecast holds NaN at " << nan
          << " (initial time, lead) pairs: its scores there are NaN\n";
  }
}

}  // namespace jigsaw::train
