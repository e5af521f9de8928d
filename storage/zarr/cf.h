// CF / xarray conventions used by reanalysis stores: time coordinates "<unit> since <date>" in the
// standard / gregorian / proleptic_gregorian calendars, and packed values (scale_factor, add_offset,
// _FillValue, missing_value).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/zarr/metadata.h"

namespace jigsaw {

// Seconds since 1970-01-01T00:00:00 of a date "YYYY-MM-DD[( |T)hh[:mm[:ss[.fff]]]][Z|+00:00]".
Result<int64_t> ParseIsoTime(std::string_view text);
// A bound of a span of times as a user writes it (--start, --end, ...): a date with an hour is that instant;
// a bare date "YYYY-MM-DD", month "YYYY-MM" or year "YYYY" names the whole day, month or year, so that a
// start is its first second and an end its last (as pandas' slice("1990", "2019"), which WeatherBench2
// uses, includes all of 2019).
Result<int64_t> ParseTimeBound(std::string_view text, bool end);
// "YYYY-MM-DDThh:mm:ss".
std::string FormatIsoTime(int64_t seconds_since_epoch);
// Day of the year (1 = 1 January, 366 = 31 December of a leap year) and second of the day, UTC.
int DayOfYear(int64_t seconds_since_epoch);
int64_t SecondOfDay(int64_t seconds_since_epoch);
int64_t YearOf(int64_t seconds_since_epoch);  // the calendar year, UTC

class KvStore;
// Writes a 1-D coordinate array `name` (one chunk, zstd, dimension `name`) of n elements of `dtype`
// (int64 or float64) with its CF attributes (in v3 each chunk with its crc32c) (units, standard_name, ...): what xarray
// reads as a coordinate.
Status WriteCoordinateArray(KvStore* store, int zarr_format, const std::string& name, const std::string& dtype,
                            std::string_view bytes, int64_t n, json attributes);
// Writes a 1-D text coordinate array `name` (as above; NumPy "<Un" in v2, fixed_length_utf32 in v3, n the
// longest value): how xarray selects along a dimension by name, e.g. channel="temperature_850".
Status WriteTextCoordinateArray(KvStore* store, int zarr_format, const std::string& name,
                                const std::vector<std::string>& values, json attributes);

struct CfTimeUnits {
  int64_t seconds_per_unit = 1;
  int64_t epoch = 0;  // the reference date, in seconds since 1970-01-01
};
// Parses "hours since 1900-01-01 00:00:00.0"; refuses calendars jigsaw cannot convert exactly.
Result<CfTimeUnits> ParseCfTimeUnits(std::string_view units, std::string_view calendar);
// Values (in units) to seconds since 1970-01-01, rounded to the nearest second.
std::vector<int64_t> DecodeCfTimes(std::span<const double> values, const CfTimeUnits& units);

struct CfPacking {
  double scale_factor = 1.0;
  double add_offset = 0.0;
  std::vector<double> missing;  // raw values that mean "missing": _FillValue, missing_value
  bool is_packed() const { return scale_factor != 1.0 || add_offset != 0.0 || !missing.empty(); }
};
// From an array's attributes (and, as xarray does for Zarr v2, its fill_value when no _FillValue is given).
CfPacking CfPackingOf(const ArrayMetadata& array);
// raw * scale_factor + add_offset, NaN where raw is missing. `raw` holds elements of `dtype`.
void UnpackCf(const char* raw, const DataType& dtype, int64_t count, const CfPacking& packing, double* out);

}  // namespace jigsaw
