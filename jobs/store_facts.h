// What a training or forecasting job needs to know about a jigsaw-shard store: its tile grid, channel
// names, grid size, latitudes, and that it is complete with normalisation statistics.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "pipeline/grid/tile_grid.h"

namespace jigsaw::train {

struct StoreFacts {
  TileGrid tiles;
  std::vector<std::string> channels;
  int64_t height = 0, width = 0;
  std::vector<double> latitudes, longitudes;
  std::vector<int64_t> times;  // seconds since 1970
  int64_t step_seconds = 0;
  std::vector<double> mean, std;  // per channel
};

// Refuses an incomplete store or one without mean / std, naming why.
Result<StoreFacts> ReadStoreFacts(const std::string& url);

}  // namespace jigsaw::train
