// What a training or forecasting job needs to know about a jigsaw-shard store: its tile grid, channel
// names, grid size, latitudes, and that it is complete with normalisation statistics.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "pipeline/grid/tile_grid.h"
#include "train/weather_mixer.h"

namespace jigsaw::train {

struct StoreFacts {
  TileGrid tiles;
  std::string fingerprint;  // of the store's plan (what it holds and how it is cut)
  std::vector<std::string> channels;
  int64_t height = 0, width = 0;
  std::vector<double> latitudes, longitudes;
  std::vector<int64_t> times;  // seconds since 1970
  int64_t step_seconds = 0;
  std::vector<double> mean, std;             // per channel
  std::vector<std::string> static_channels;  // the `static` array's fields (jigsaw-shard --static), if any
  std::vector<double> static_mean, static_std;  // their statistics
  std::vector<int64_t> members;              // ensemble members (jigsaw-shard --members): data [time, member, ...]
};

// Refuses an incomplete store or one without mean / std, naming why.
Result<StoreFacts> ReadStoreFacts(const std::string& url);
// kUnimplemented, naming `tool`, for a store of ensemble members (the jobs that read data by time).
Status RequireSingleMember(const StoreFacts& facts, const std::string& tool);

// Gives a model with static channels its static tile from the store, normalised as the loader normalises
// (nothing to do without them).
Status SetStaticInput(const std::string& url, const StoreFacts& facts, WeatherMixer* model);

}  // namespace jigsaw::train
