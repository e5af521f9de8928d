// A climatology of a jigsaw-shard store as WeatherBench2 makes its own: the mean by day of year and hour
// of day over a span of years, each (day, hour) averaging every sample of that hour whose day of year lies
// within a centred window (61 days by default, circular over the year), written as
//   climatology[dayofyear (1..366), hour, channel, latitude, longitude], float32, chunk = one tile,
// with the store's channel names and coordinates. A (day, hour) that no sample reaches is NaN (missing).
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
