// ShardPlan: everything jigsaw-shard will do, decided before anything is written: the channel list, the
// times and where each comes from, the tile grid and the output layout. Its fingerprint identifies the
// plan in the output store, so a second run resumes the same plan or refuses a different one.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/sources/source.h"

namespace jigsaw {

struct ShardOptions {
  std::vector<std::string> vars;  // in output order; CDS short names accepted
  std::vector<double> levels;     // empty: every source level, 1000 hPa first
  std::string start, end;         // inclusive, "2020-01-01T00"; empty: the sources' first / last time
  std::string step;               // "6h", "30m", "1d", "3600s"; empty: the sources' own step
  std::string tiles = "1x1x1";    // LATxLONxCH
  int zarr_format = 3;
  std::string dtype = "float32";  // float32, bfloat16, float16
  std::string codec = "blosc-lz4";
  int64_t time_per_shard = 1;            // v3: K time steps of one tile per shard object
  std::string stats_start, stats_end;    // statistics window (default: all selected times)
  int64_t lat_crop = 0;                  // drop this many southernmost latitude rows (721 -> 720)
  bool allow_missing = false;            // times no source holds become NaN (recorded, excluded from stats)
  std::vector<std::string> static_vars;  // time-independent fields for the `static` array, in its order
  // Ensemble members, each a sample of its own at every time (`--members all`): data becomes
  // [time, member, channel, lat, lon]. The sources are then opened once per member (see RunShard).
  std::vector<int64_t> members;
  // `--member N`: the one member read from ensemble sources (part of the plan and its fingerprint).
  std::optional<int64_t> member;
};

struct ShardChannel {
  std::string name;  // "geopotential_500", "2m_temperature"
  std::string variable;
  std::optional<double> level;
};

struct ShardPlan {
  ShardOptions options;
  std::vector<ShardChannel> channels;
  std::vector<int64_t> times;  // seconds since 1970
  int64_t step_seconds = 0;
  TileGrid tiles;
  SourceGrid grid;  // after the latitude crop
  std::vector<std::string> sources;
  // One read per (variable, time): which source and time index holds it (-1: missing).
  struct VariableRead {
    std::string variable;
    std::vector<int64_t> level_indices;  // into the source variable's levels, in channel order
    int64_t first_channel = 0;           // channels [first_channel, first_channel + max(1, levels))
    std::vector<int> source;             // per time
    std::vector<int64_t> index;          // per time
  };
  std::vector<VariableRead> reads;
  std::vector<int64_t> missing_times;
  // Time-independent fields (the `static` array): canonical name and the source that gives it.
  struct StaticField {
    std::string name;
    int source = 0;
  };
  std::vector<StaticField> statics;
  int64_t stats_begin = 0, stats_end = 0;  // indices into times, [begin, end)

  int64_t num_channels() const { return static_cast<int64_t>(channels.size()); }
  int64_t num_static() const { return static_cast<int64_t>(statics.size()); }
  int64_t num_members() const { return options.members.empty() ? 1 : static_cast<int64_t>(options.members.size()); }
  int64_t nlat() const { return static_cast<int64_t>(grid.latitude.size()); }
  int64_t nlon() const { return static_cast<int64_t>(grid.longitude.size()); }
  std::vector<int64_t> tile_shape() const;  // [channels, lat, lon] of one tile (the regular chunk)
  int element_size() const;
  // The plan's identity: options that shape the output, times, grid and channels.
  nlohmann::json ToJson() const;
  std::string fingerprint() const;
};

Result<int64_t> ParseStep(std::string_view text);  // seconds
std::string FormatStep(int64_t seconds);            // 21600 -> "6h", 172800 -> "2d", 1800 -> "30m"
// The sources' own time step: the smallest gap between the ascending `times` (0 for fewer than two).
int64_t SourceTimeStep(std::span<const int64_t> times);

Result<ShardPlan> MakeShardPlan(const ShardOptions& options, const std::vector<std::unique_ptr<Source>>& sources);

// The human (or --json) description printed by `jigsaw-shard plan`.
void PrintPlan(const ShardPlan& plan, bool as_json, std::ostream& out);

}  // namespace jigsaw
