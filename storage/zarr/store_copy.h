// Writing whole stores: `jigsaw-store copy` (format, codec, sharding and byte-order conversion) and the
// unfinished marker every whole-store writer (a copy, a checkpoint's Zarr export) sets first and clears last.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "storage/kvstore/checksum_record.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

// Called as work advances: units done so far and the total (bytes or chunks).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

struct CopyOptions {
  int zarr_format = 0;         // 0: as the source
  std::string codec;           // "": as the source; else a BytesCodecFromName() name
  std::vector<int64_t> shard;  // shard shape (v3) for arrays of its rank; empty: keep the source's
  bool no_shard = false;       // write plain chunks even when the source is sharded
  // The stored byte order: kSource keeps each array's own (a big-endian source stays big-endian).
  enum class ByteOrder { kSource, kLittle, kBig } byte_order = ByteOrder::kSource;
  ProgressFn progress;  // bytes of array data copied
};
// Writers of whole stores (a copy, a checkpoint's Zarr export) mark the destination unfinished first and
// finished last: BeginStoreWrite requires `dst` empty, or an unfinished write (which it clears, so that a
// failed write can be retried), and writes kUnfinishedMarker naming `what`; FinishStoreWrite removes it.
// VerifyStore reports a store that holds the marker.
inline constexpr const char* kUnfinishedMarker = "jigsaw-write-unfinished";
// Writers write through a RecordingKvStore over the destination: FinishStoreWrite writes its checksum record
// (checksum_record.h) before it removes the marker, so that a finished store always has one.
Status BeginStoreWrite(KvStore* dst, const std::string& what);
Status FinishStoreWrite(RecordingKvStore* dst);

// Copies every group and array (attributes, data) from src to dst, converting format, codec, sharding and
// byte order, then writes consolidated metadata. Without --codec each array keeps its source's compression,
// except that a v3 destination gets only codecs of the Zarr v3 specification: zlib (numcodecs, no v3 form)
// becomes gzip at the same level, said in the array's output line; numcodecs.zlib only when named. The destination as
// BeginStoreWrite wants it, and neither store may lie inside the other (links resolved).
Status CopyStore(KvStore* src, KvStore* dst, const CopyOptions& options, std::ostream& log);

}  // namespace jigsaw
