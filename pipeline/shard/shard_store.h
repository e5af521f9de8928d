// The dataset store written by jigsaw-shard (docs/formats.md, "Dataset store"):
//   data      [time, channel, latitude, longitude], chunk = one tile of one time step (a v3 shard may hold
//             K time steps of one tile), fill NaN; with ensemble members (--members) [time, member, channel,
//             latitude, longitude] and a `member` coordinate, a chunk one member's tile
//   time      int64 seconds since 1970-01-01; latitude (descending), longitude (ascending in [0, 360))
//   mean, std, min, max, tendency_mean, tendency_std: float64 [channel]
//   root attributes: channels, tile_grid, sources, plan (and its fingerprint), complete
// A store is complete only when its last metadata write says so; `run` resumes a store of the same plan.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>
#include <ostream>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/shard/plan.h"
#include "pipeline/shard/shard_parts.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

using ShardProgressFn = std::function<void(int64_t bytes_done, int64_t bytes_total)>;

struct ShardRunReport {
  int64_t times_written = 0;  // time steps read from the sources and written in this run
  int64_t times_skipped = 0;  // already present (resumed)
  int64_t bytes_written = 0;  // uncompressed
  double seconds = 0;
  double read_seconds = 0, write_seconds = 0, stats_seconds = 0;  // sources; convert+encode+store; statistics
};

// Writes (or resumes) the store at `out` for `plan`. Refuses an output that holds another plan, naming the
// difference, or anything that is not a jigsaw-shard store. With a `part` of several (pipeline/shard/
// shard_parts.h) it writes that part's times and its manifest, and, when `finish_when_last` and every other
// part is done, finishes the store.
Result<ShardRunReport> RunShard(const ShardPlan& plan, const std::vector<std::unique_ptr<Source>>& sources,
                                KvStore* out, const ShardProgressFn& progress, std::ostream& log,
                                const ShardPart& part = {}, bool finish_when_last = true);

// A jigsaw-shard store's layout as its root attributes record it, typed: what the loader, the bench and the
// trainer read instead of walking the JSON.
// The layout version in the root attributes: 1, the first; 2 adds the `channel` text coordinate and the
// checksum record written last (version-1 stores load as before). A store of a later version is refused.
inline constexpr int kShardStoreVersion = 2;
// Whether a complete store of this version must hold a checksum record (storage/kvstore/checksum_record.h).
inline bool ShardStoreHasChecksumRecord(int version) { return version >= 2; }
// Coordinates (an index, a shape) in `data` of (time, member, channel, lat, lon): the member dimension is
// there only in a store of ensemble members (`members`), and dropped otherwise.
inline std::vector<int64_t> DataIndex(bool members, int64_t t, int64_t m, int64_t c, int64_t y, int64_t x) {
  return members ? std::vector<int64_t>{t, m, c, y, x} : std::vector<int64_t>{t, c, y, x};
}

// Writes a float64 vector array `name` [n] along dimension `dim`, one uncompressed chunk: the layout of every
// statistics array (per channel, per static field).
Status WriteStatisticsArray(KvStore* out, int zarr_format, const std::string& name, const std::string& dim,
                            const std::vector<double>& values);
// The per-channel statistics arrays, in this order.
inline constexpr const char* kShardStatNames[] = {"mean", "std", "min", "max", "tendency_mean", "tendency_std"};

// Widens stored elements (float32, float16, bfloat16) to float32.
void ToFloats(const std::string& bytes, const DataType& t, std::vector<float>* out);

struct ShardStoreInfo {
  nlohmann::json attributes;  // the root's "jigsaw" attributes, whole
  bool complete = false;
  TileGrid tiles;                     // LATxLONxCH
  std::vector<std::string> channels;  // in store order
  int64_t height = 0, width = 0;      // the grid
  int64_t step_seconds = 0;
  std::set<std::string> missing_times;       // ISO times written as NaN (--allow-missing)
  std::vector<std::string> static_channels;  // the `static` array's fields (pipeline/shard/static_fields.h)
  std::vector<int64_t> members;              // --members: data is [time, member, channel, lat, lon]; empty: 4-D data
};
Result<ShardStoreInfo> ReadShardStoreInfo(KvStore* store);
Status PrintShardStoreInfo(KvStore* store, bool as_json, std::ostream& out);

// Completeness, chunk checksums and decodability, and metadata against the recorded plan. Problems are
// listed (each naming the key); an error Status means the check could not run.
Result<std::vector<std::string>> VerifyShardStore(KvStore* store);

}  // namespace jigsaw
