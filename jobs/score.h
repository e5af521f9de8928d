// The body of jigsaw-score: a jigsaw-rollout forecast scored against a jigsaw-shard store as WeatherBench2
// scores (its deterministic metrics): per region, channel and lead time, the latitude-weighted RMSE (the
// square root of the mean over initial times of the weighted spatial mean squared error; weights are cell
// areas sin(upper edge) - sin(lower edge) over their mean, restricted to the region as WB2's SliceRegion
// restricts them) and bias (mean over initial times of the weighted spatial mean error), for the model and
// for persistence (the truth at the initial time); with a climatology (jigsaw-shard climatology, or WB2's
// layout: by day of year and hour of day), also the anomaly correlation coefficient (uncentred:
// sum w f' t' / sqrt(sum w f'^2 sum w t'^2) per valid time over the region, f' = forecast - clim,
// t' = truth - clim, then the mean over initial times) of the model and of persistence, and the
// climatology's own RMSE. Valid times the truth lacks, or holds as missing (NaN), are skipped and counted.
// The forecast is read strictly: it must be a complete jigsaw-rollout store on the truth's grid, every chunk
// present and matching its checksum record; NaN in it makes that lead's scores NaN, counted per channel.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw::train {

// A latitude-longitude box (or a union of bands), bounds inclusive, in degrees; longitudes in [0, 360),
// a range whose start exceeds its end wraps through 0 (347.5:42.5 is Europe's).
struct Region {
  std::string name;
  std::vector<std::pair<double, double>> lat = {{-90, 90}}, lon = {{0, 360}};
  nlohmann::json ToJson() const;
};
// WeatherBench2's (scripts/evaluate.py): global; tropics, 20S-20N; extra-tropics, |latitude| >= 20;
// northern-hemisphere, 20N-90N; southern-hemisphere, 90S-20S.
std::vector<Region> PredefinedRegions();
// "NAME=lat0:lat1" or "NAME=lat0:lat1,lon0:lon1", or the name of a predefined region.
Result<Region> ParseRegion(const std::string& text);

struct ScoreOptions {
  std::string forecast, truth;
  std::string label;                  // how tables and plots name this forecast (default: its file name)
  std::string climatology;            // optional
  std::vector<std::string> channels;  // names or short names (z500, t850, q700, t2m, u10, msl, ...); empty: all
  std::vector<Region> regions;        // empty: PredefinedRegions(); global is always scored, first
};

struct ChannelScores {
  std::string channel;
  std::vector<int64_t> lead_hours;
  std::vector<double> rmse, bias, persistence_rmse, persistence_bias;
  std::vector<int64_t> count;         // initial times scored at each lead
  std::vector<int64_t> forecast_nan;  // of those, the ones whose forecast holds NaN (the lead's scores are NaN)
  // With a climatology (else empty):
  std::vector<double> acc, persistence_acc, climatology_rmse;
  std::vector<int64_t> acc_count;  // initial times whose valid time the climatology covers
};

struct RegionScores {
  Region region;
  std::vector<ChannelScores> channels;
};

struct Scores {
  std::string label, forecast;
  int64_t checkpoint_step = -1;       // the checkpoint the forecast was made from (its identity)
  std::vector<RegionScores> regions;  // [0]: global
  int64_t skipped = 0;                // (initial time, lead) pairs without truth
  const std::vector<ChannelScores>& channels() const { return regions.front().channels; }
  nlohmann::json ToJson() const;
};

Result<Scores> ScoreForecast(const ScoreOptions& options);

// Several forecasts side by side (each beside its own persistence): JSON ({"forecasts": [...], and the first
// forecast's global scores as "channels"), CSV (one row per forecast, region, channel and lead) and the table.
nlohmann::json ScoresToJson(const std::vector<Scores>& all);
std::string ScoresToCsv(const std::vector<Scores>& all);
void PrintScores(const std::vector<Scores>& all, std::ostream& out);

// The name a forecast store holds for a channel given as a name or a short name: "z850" is geopotential_850,
// "t2m" 2m_temperature, "q700" specific_humidity_700; not found: refused, listing the forecast's channels.
Result<std::string> ChannelName(const std::string& asked, const std::vector<std::string>& channels,
                                const std::string& where);

}  // namespace jigsaw::train
