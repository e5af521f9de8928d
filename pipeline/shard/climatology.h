// A climatology of a jigsaw-shard store as WeatherBench2 makes its own (utils.compute_hourly_stat, what its
// compute_climatology.py runs by default): the mean by day of year and hour of day over a span of years.
// For each hour of day, the samples of that hour are stacked by year and day of year (a year's days that
// are missing or NaN take that year's 31 December (day 365) values, so a common year's day 366 counts with
// its 31 December); each (day, hour) is then the mean over the years and a centred window of days,
// circular over the year, weighted by a triangle (offset k of a 61-day window weighs 1 - |k|/30: zero at
// +-30 days), skipping NaN. Written as
//   climatology[dayofyear (1..366), hour, channel, latitude, longitude], float32, chunk = one tile,
// with the store's channel names and coordinates. A (day, hour) that no sample reaches is NaN (missing).
// Where jigsaw differs: without a leap year's 31 December in the span, WeatherBench2's climatology has no
// day 366; jigsaw's gives it day 365's values. A span without any 31 December, where WeatherBench2's fill
// fails, fills nothing.
// jigsaw-score reads it for anomaly correlations and the climatology baseline.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "base/status.h"

namespace jigsaw {

struct ClimatologyOptions {
  std::string start, end;    // the samples averaged (inclusive); empty: the whole store
  int64_t window_days = 61;  // odd
  bool uniform_window = false;  // every day of the window alike, instead of WeatherBench2's triangle
  int zarr_format = 3;
  int64_t memory_bytes = int64_t{8} << 30;  // accumulators per pass; channels are split into passes to fit
};

struct ClimatologyReport {
  int64_t samples = 0, hours = 0, passes = 0;
  double seconds = 0;
};

Result<ClimatologyReport> WriteClimatology(const std::string& store_url, const std::string& out_url,
                                           const ClimatologyOptions& options, std::ostream& log);

}  // namespace jigsaw
