// The body of jigsaw-score: a jigsaw-rollout forecast scored against a jigsaw-shard store as WeatherBench2
// scores (its deterministic metrics): per channel and lead time, the latitude-weighted RMSE (the square
// root of the mean over initial times of the weighted spatial mean squared error; weights are cell areas
// sin(upper edge) - sin(lower edge) over their mean) and bias (mean over initial times of the weighted
// spatial mean error), for the model and for persistence (the truth at the initial time); with a
// climatology (jigsaw-shard climatology: by day of year and hour of day), also the anomaly correlation
// coefficient (uncentred: sum w f' t' / sqrt(sum w f'^2 sum w t'^2) per valid time, f' = forecast - clim,
// t' = truth - clim, then the mean over initial times) of the model and of persistence, and the
// climatology's own RMSE. Valid times the truth lacks, or holds as missing (NaN), are skipped and counted.
// The forecast is read strictly: it must be a complete jigsaw-rollout store on the truth's grid, every chunk
// present and matching its checksum record; NaN in it makes that lead's scores NaN, counted per channel.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw::train {

struct ScoreOptions {
  std::string forecast, truth;
  std::string climatology;            // optional
  std::vector<std::string> channels;  // names or WB2-style short names (z500, t850, t2m, u10, msl); empty: all
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

struct Scores {
  std::vector<ChannelScores> channels;
  int64_t skipped = 0;  // (initial time, lead) pairs without truth
  nlohmann::json ToJson() const;
  std::string ToCsv() const;
  // The headline channels: z500, t850, t2m, u10, msl where present (else the first five); their table.
  std::vector<const ChannelScores*> Headline() const;
  void PrintTable(std::ostream& out) const;
};

Result<Scores> ScoreForecast(const ScoreOptions& options);

}  // namespace jigsaw::train
