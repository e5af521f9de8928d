// A small synthetic ERA5-like source in the WeatherBench2 layout (Zarr v2 as xarray writes it, consolidated):
// 5 pressure variables x 13 levels and 4 surface variables, smooth and physically plausible fields
// (geopotential rising with height, temperature falling poleward, jets, humidity near the surface, ...),
// so that the quickstart and the tests run with no download.
#pragma once

#include <string>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

struct SyntheticSpec {
  int64_t nlat = 33, nlon = 64, ntime = 8;
  std::string start = "2020-01-01T00";
  int64_t step_seconds = 6 * 3600;
  bool lat_ascending = false;      // WB2 0.25 deg stores are descending
  bool lon_signed = false;         // longitude in [-180, 180) instead of [0, 360)
  bool levels_descending = false;  // 1000 hPa first instead of 50 hPa first
  int zarr_format = 2;
  uint32_t seed = 0;
};

Status WriteSyntheticEra5(KvStore* out, const SyntheticSpec& spec);

}  // namespace jigsaw
