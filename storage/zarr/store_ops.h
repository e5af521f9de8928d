// Whole-store operations behind `jigsaw-store`: list, get a box as .npy, copy/convert, verify.
// Each writes human (or --json) output to an ostream and returns a Status; the CLI only parses flags.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"

namespace jigsaw {

// Called as work advances: units done so far and the total (bytes or chunks).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// The tree of groups and arrays: shape, dtype, chunks, codecs, dimension names, stored bytes.
Status ListStore(KvStore* store, bool as_json, std::ostream& out);

// Parses a NumPy-style selection "0,:,10:20,-1" against `shape`: start:stop per dimension (steps are not
// supported), an integer picks one index and drops the dimension from *kept_shape.
Result<Box> ParseSlice(std::string_view text, const std::vector<int64_t>& shape, std::vector<int64_t>* kept_shape);

struct GetOptions {
  std::string slice;       // empty: the whole array
  bool decode_cf = false;  // unpack scale_factor/add_offset/_FillValue to float64; times to int64 seconds
};
// Reads a box of the array at `array_path` and returns .npy bytes.
Result<std::string> GetArrayNpy(KvStore* store, const std::string& array_path, const GetOptions& options);

struct CopyOptions {
  int zarr_format = 0;         // 0: as the source
  std::string codec;           // "": as the source; else a BytesCodecFromName() name
  std::vector<int64_t> shard;  // shard shape (v3) for arrays of its rank; empty: keep the source's
  bool no_shard = false;       // write plain chunks even when the source is sharded
  ProgressFn progress;         // bytes of array data copied
};
// Writers of whole stores (a copy, a checkpoint's Zarr export) mark the destination unfinished first and
// finished last: BeginStoreWrite requires `dst` empty, or an unfinished write (which it clears, so that a
// failed write can be retried), and writes kUnfinishedMarker naming `what`; FinishStoreWrite removes it.
// VerifyStore reports a store that holds the marker.
inline constexpr const char* kUnfinishedMarker = "jigsaw-write-unfinished";
Status BeginStoreWrite(KvStore* dst, const std::string& what);
Status FinishStoreWrite(KvStore* dst);

// Copies every group and array (attributes, data) from src to dst, converting format, codec and
// sharding, then writes consolidated metadata. The destination as BeginStoreWrite wants it, and neither
// store may lie inside the other (links resolved).
Status CopyStore(KvStore* src, KvStore* dst, const CopyOptions& options, std::ostream& log);

struct VerifyReport {
  int64_t arrays = 0;
  int64_t chunks_checked = 0;
  std::vector<std::string> problems;  // each names the store and key
};
// Decodes every stored chunk (checking checksums and sizes), and checks metadata and consolidated
// metadata for consistency. A Status error means the check itself could not run.
Result<VerifyReport> VerifyStore(KvStore* store, const ProgressFn& progress);

}  // namespace jigsaw
