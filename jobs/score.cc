#include "jobs/score.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "jobs/store_facts.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "train/latitude_weights.h"

namespace jigsaw::train {
namespace {

// WB2-style short names of the headline channels.
const std::map<std::string, std::string> kShortNames = {
    {"z500", "geopotential_500"}, {"t850", "temperature_850"}, {"t2m", "2m_temperature"},
    {"u10", "10m_u_component_of_wind"}, {"msl", "mean_sea_level_pressure"}, {"q700", "specific_humidity_700"}};

template <typename T>
Result<std::vector<T>> ReadAll(KvStore* store, const std::string& name, int64_t* n) {
  ASSIGN_OR_RETURN(auto a, Array::Open(store, name));
  if (a->metadata().shape.size() != 1 || a->metadata().dtype.size != sizeof(T)) {
    return InvalidArgumentError("array " + name + " is not a 1-D coordinate of " + std::to_string(sizeof(T)) + "-byte values");
  }
  std::vector<T> v(a->metadata().shape[0]);
  RETURN_IF_ERROR(a->Read(a->full_box(), std::span<char>(reinterpret_cast<char*>(v.data()), v.size() * sizeof(T))));
  if (n) *n = static_cast<int64_t>(v.size());
  return v;
}

}  // namespace

Result<Scores> ScoreForecast(const ScoreOptions& o) {
  auto truth_or = ReadStoreFacts(o.truth);
  if (!truth_or.ok()) return truth_or.status().Annotate(o.truth);
  const StoreFacts& truth = *truth_or;
  ASSIGN_OR_RETURN(auto fstore, OpenKvStore(o.forecast));
  auto forecast_or = Array::Open(fstore.get(), "forecast");
  if (!forecast_or.ok()) return forecast_or.status().Annotate(o.forecast + " (not a jigsaw-rollout store?)");
  auto& forecast = *forecast_or;
  const auto& fm = forecast->metadata();
  const std::vector<std::string> fchannels = fm.attributes.value("channels", std::vector<std::string>());
  int64_t n_init = 0, n_lead = 0;
  ASSIGN_OR_RETURN(auto inits, ReadAll<int64_t>(fstore.get(), "init_time", &n_init));
  ASSIGN_OR_RETURN(auto lead_hours, ReadAll<int64_t>(fstore.get(), "lead_time", &n_lead));
  const int64_t H = truth.height, W = truth.width;
  if (fm.shape.size() != 5 || fm.shape[0] != n_init || fm.shape[1] != n_lead || fm.shape[3] != H || fm.shape[4] != W ||
      static_cast<int64_t>(fchannels.size()) != fm.shape[2]) {
    return InvalidArgumentError(o.forecast + ": forecast is not [init_time, lead_time, channel, " + std::to_string(H) + ", " +
                                std::to_string(W) + "] with its channel names, as the truth's grid");
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
    scores.channels.push_back(std::move(cs));
  }
  const std::vector<float> w = LatitudeWeights(truth.latitudes);
  ASSIGN_OR_RETURN(auto tstore, OpenKvStore(o.truth));
  ASSIGN_OR_RETURN(auto tdata, Array::Open(tstore.get(), "data"));
  tdata->RequireEveryChunk(true);  // a complete store (ReadStoreFacts): a missing chunk is corruption
  if (tdata->metadata().dtype.name != "float32" || fm.dtype.name != "float32") {
    return UnimplementedError("scores read float32 stores");
  }
  const int64_t C = fm.shape[2], TC = static_cast<int64_t>(truth.channels.size()), plane = H * W;
  std::vector<float> fsample(C * plane), tsample(TC * plane), tinit(TC * plane);
  auto time_index = [&](int64_t t) -> int64_t {
    auto it = std::lower_bound(truth.times.begin(), truth.times.end(), t);
    return it != truth.times.end() && *it == t ? it - truth.times.begin() : -1;
  };
  auto read_truth = [&](int64_t index, std::vector<float>* out) {
    return tdata->Read(Box{{index, 0, 0, 0}, {1, TC, H, W}}, std::span<char>(reinterpret_cast<char*>(out->data()), out->size() * 4));
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
      bool any_missing = false;
      std::vector<double> mse(fidx.size()), mean(fidx.size()), pmse(fidx.size()), pmean(fidx.size());
      for (size_t k = 0; k < fidx.size(); ++k) {
        errors(fsample.data() + fidx[k] * plane, tsample.data() + tidx[k] * plane, &mse[k], &mean[k]);
        errors(tinit.data() + tidx[k] * plane, tsample.data() + tidx[k] * plane, &pmse[k], &pmean[k]);
        any_missing |= std::isnan(mse[k]) || std::isnan(pmse[k]);
      }
      if (any_missing) {
        ++scores.skipped;
        continue;
      }
      for (size_t k = 0; k < fidx.size(); ++k) {
        ChannelScores& cs = scores.channels[k];
        cs.rmse[l] += mse[k];
        cs.bias[l] += mean[k];
        cs.persistence_rmse[l] += pmse[k];
        cs.persistence_bias[l] += pmean[k];
        ++cs.count[l];
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
    }
  return scores;
}

nlohmann::json Scores::ToJson() const {
  nlohmann::json j = {{"skipped_without_truth", skipped}, {"channels", nlohmann::json::object()}};
  auto nums = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(std::isnan(x) ? nlohmann::json() : nlohmann::json(x));
    return a;
  };
  for (const auto& c : channels) {
    j["channels"][c.channel] = {{"lead_hours", c.lead_hours}, {"rmse", nums(c.rmse)}, {"bias", nums(c.bias)},
                                {"persistence_rmse", nums(c.persistence_rmse)},
                                {"persistence_bias", nums(c.persistence_bias)}, {"count", c.count}};
  }
  return j;
}

std::string Scores::ToCsv() const {
  std::ostringstream s;
  s.precision(9);
  s << "channel,lead_hours,count,rmse,persistence_rmse,bias,persistence_bias\n";
  for (const auto& c : channels)
    for (size_t l = 0; l < c.lead_hours.size(); ++l)
      s << c.channel << "," << c.lead_hours[l] << "," << c.count[l] << "," << c.rmse[l] << "," << c.persistence_rmse[l]
        << "," << c.bias[l] << "," << c.persistence_bias[l] << "\n";
  return s.str();
}

void Scores::PrintTable(std::ostream& out) const {
  std::vector<const ChannelScores*> shown;
  for (const char* key : {"z500", "t850", "t2m", "u10", "msl"})
    for (const auto& c : channels)
      if (c.channel == kShortNames.at(key)) shown.push_back(&c);
  for (size_t k = 0; shown.empty() && k < channels.size() && k < 5; ++k) shown.push_back(&channels[k]);
  for (const ChannelScores* c : shown) {
    out << c->channel << ": latitude-weighted RMSE (model / persistence), bias (model)\n";
    char line[160];
    for (size_t l = 0; l < c->lead_hours.size(); ++l) {
      std::snprintf(line, sizeof(line), "  lead %4lldh  %12.5g / %12.5g   bias %12.4g   (%lld initial times)\n",
                    static_cast<long long>(c->lead_hours[l]), c->rmse[l], c->persistence_rmse[l], c->bias[l],
                    static_cast<long long>(c->count[l]));
      out << line;
    }
  }
  if (skipped) out << skipped << " (initial time, lead) pairs skipped: truth missing\n";
}

}  // namespace jigsaw::train
