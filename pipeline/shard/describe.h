// What a source holds, before any plan: `jigsaw-shard describe`. Variables (WeatherBench2 and short names,
// levels, units), times (first, last, step, gaps), the grid (size, resolution, the order it is stored in),
// members and time-independent fields, of a Zarr store, NetCDF or GRIB files, local or remote.
#pragma once

#include <ostream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

// One --source spec: a store, a file, or a glob whose files are described together (the union of their
// variables and times). An ensemble source is opened as its first member and lists its members.
Result<nlohmann::json> DescribeSource(std::string_view spec);
// The description for a reader; what --json prints is the JSON itself.
void PrintSourceDescription(const nlohmann::json& d, std::ostream& out);

}  // namespace jigsaw
