// The climatology jigsaw-score takes anomalies against, in either of two layouts:
// - ours (jigsaw-shard climatology): climatology[dayofyear, hour, channel, latitude, longitude] with the
//   channel names in its attributes;
// - WeatherBench2's: one variable per quantity ("geopotential", "2m_temperature", ...) with dimensions
//   hour, dayofyear, optionally level, latitude and longitude in any order, latitude either way up; a
//   channel "geopotential_500" is variable geopotential at level 500.
// Both give, for a valid time, the planes [channel, latitude, longitude] on the truth's grid.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace jigsaw::train {

class Climatology {
 public:
  virtual ~Climatology() = default;
  // Opens `url` for `channels` on the grid `latitudes` x `longitudes` (the truth's), refusing a channel,
  // level, hour or grid it lacks by name.
  static Result<std::unique_ptr<Climatology>> Open(const std::string& url, const std::vector<std::string>& channels,
                                                   const std::vector<double>& latitudes,
                                                   const std::vector<double>& longitudes);
  // planes [channels, H, W] at the day of year and hour of `valid_time` (seconds since 1970); NaN where the
  // climatology has no value.
  virtual Status Read(int64_t valid_time, std::vector<float>* planes) = 0;
};

}  // namespace jigsaw::train
