// The index of one GRIB file (editions 1 and 2): where each message lies and what it holds, from one pass of
// ecCodes over the file's headers. A GRIB file has no table of contents, so this pass reads the whole file;
// the index is therefore cached (keyed by the file's path, size and modification time) and a second open -
// `jigsaw-shard plan` then `run`, or a resumed run - reads the cache instead.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

// Held around every use of ecCodes. Debian's ecCodes is built with OpenMP locks, which do not guard its
// lazily built context and definition caches against the TBB threads that read sources in parallel (seen:
// allocations lost when the first handles of a process were made on two threads at once). Decoding is
// thereby one message at a time; the reads of the files and everything after decoding stay parallel.
std::mutex& EccodesLock();

// The grid of a message, as its section 2/3 keys give it.
struct GribGrid {
  std::string type;  // gridType: "regular_ll" is the one jigsaw reads
  int64_t ni = 0, nj = 0;
  double lat_first = 0, lat_last = 0, lon_first = 0, lon_last = 0;  // degrees, in scanning order
  bool i_negative = false, j_positive = false, j_consecutive = false;

  bool operator==(const GribGrid&) const = default;
  std::string Describe() const;  // "regular_ll 61x120 (latitude 90 to -90, longitude 0 to 357)"
};

struct GribMessage {
  int64_t number = 0;  // position in the file, from 1
  int64_t offset = 0, length = 0;
  std::string short_name;  // ecCodes shortName: "t", "2t", "lsm"
  std::string level_type;  // typeOfLevel: "isobaricInhPa", "isobaricInPa", "surface", ...
  double level = 0;        // as the message gives it (hPa or Pa for the two pressure types)
  int64_t time = 0;        // validity time, seconds since 1970 (analyses and forecast steps alike)
  int64_t member = -1;     // ensemble member ("number"); -1 when the message has none

  std::string Describe() const;  // "message 7 (t on isobaricInhPa 500 at 2020-01-01T06:00:00)"
};

struct GribIndex {
  std::string path;
  int64_t size = 0, mtime_ns = 0;  // of the file indexed
  GribGrid grid;                   // every message's (a message on another grid is refused when scanning)
  std::vector<GribMessage> messages;
  std::string cache_entry;  // the cache file it came from ("" : scanned now); not part of the encoding
};

// Whether a message read at an index entry's place is the one the entry describes (parameter, level type,
// level, validity time, member): a file rewritten with the same size and modification time, its messages
// in another order, is caught here rather than read as the wrong field. The handle is ecCodes'.
Status CheckIndexedMessage(void* codes_handle, const GribMessage& m);

// Scans `bytes` (a whole GRIB file named `name` in messages). Refuses a message on a grid other than the
// first message's, naming both; anything that is not a GRIB message between messages is skipped as ecCodes
// does; no message at all is an error.
Result<GribIndex> ScanGrib(std::string_view name, std::string_view bytes);
// Scans a local file, streaming it.
Result<GribIndex> ScanGribFile(const std::string& path);

nlohmann::json EncodeGribIndex(const GribIndex& index);
Result<GribIndex> DecodeGribIndex(const nlohmann::json& j);

// Where indexes are cached: $JIGSAW_CACHE_DIR/grib-index, else $XDG_CACHE_HOME/jigsaw/grib-index, else
// ~/.cache/jigsaw/grib-index.
std::string GribIndexCacheDir();
// The index of a local file: from `cache_dir` when an entry for this path, size and modification time is
// there and every message it lists lies inside the file, else scanned and stored there (a cache that
// cannot be written is skipped, never an error).
// *from_cache (optional) says which.
Result<GribIndex> LoadGribIndex(const std::string& path, const std::string& cache_dir, bool* from_cache = nullptr);

// The ceiling of a GRIB read (jigsaw-bench grib): ecCodes decoding every message of a local file to float64
// values on this thread, as GribSource does under EccodesLock. Returns the seconds spent and adds the float32
// bytes the values make to *bytes.
Result<double> DecodeEveryMessage(const std::string& path, int64_t* bytes);

}  // namespace jigsaw
