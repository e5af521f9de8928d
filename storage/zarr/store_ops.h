// Whole-store operations behind `jigsaw-store`: list, get a box as .npy, verify (copy: store_copy.h).
// Each writes human (or --json) output to an ostream and returns a Status; the CLI only parses flags.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/store_copy.h"  // ProgressFn; the unfinished marker VerifyStore reports

namespace jigsaw {

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

struct VerifyReport {
  int64_t arrays = 0;
  int64_t chunks_checked = 0;
  bool checksum_record = false;       // the store has one (checksum_record.h); every object was checked against it
  int64_t objects_checked = 0;        // objects compared with the record
  std::vector<std::string> problems;  // each names the store and key
};
// Decodes every stored chunk (checking checksums and sizes), checks every object against the store's
// checksum record when it has one, and checks metadata and consolidated metadata for consistency. A Status error means
// the check itself could not run.
Result<VerifyReport> VerifyStore(KvStore* store, const ProgressFn& progress);

}  // namespace jigsaw
