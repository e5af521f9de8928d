// Array metadata for Zarr v2 (.zarray + .zattrs) and v3 (zarr.json), held in one form.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/codec/codec.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

struct ArrayMetadata {
  int zarr_format = 3;
  std::vector<int64_t> shape;
  std::vector<int64_t> chunks;  // the stored chunk: a shard when sharded
  DataType dtype;
  std::string fill;        // one native-order element
  bool fill_null = false;  // v2 "fill_value": null (reads as zeros)
  std::shared_ptr<const CodecChain> codecs;
  char separator = '/';                      // chunk key separator
  bool v2_key_encoding = false;              // v3 with the "v2" chunk key encoding (no "c" prefix)
  std::vector<std::string> dimension_names;  // empty when none are given
  json attributes = json::object();

  int rank() const { return static_cast<int>(shape.size()); }
  // Number of chunks along each dimension.
  std::vector<int64_t> grid() const;
  int64_t num_chunks() const;
  ChunkLayout chunk_layout() const { return {chunks, dtype.size, fill, dtype.swap_size()}; }
  // "c/0/1" (v3 default), "0.1" (v2), ... relative to the array's own path.
  std::string ChunkKey(std::span<const int64_t> index) const;
  // Inverse of ChunkKey: the chunk index of a key, or nullopt when the key is not a chunk key of this array.
  std::optional<std::vector<int64_t>> ParseChunkKey(std::string_view key) const;
};

// Builds metadata for a new array. `codec` may be null (no compression); `shard` non-empty makes chunks
// the shard shape with `inner_chunks` inside (v3 only).
struct ArraySpec {
  int zarr_format = 3;
  std::vector<int64_t> shape, chunks;
  DataType dtype;
  json fill_value = 0;
  std::string codec = "blosc-lz4";
  std::vector<int64_t> shard;  // shard shape (multiple of chunks), empty: not sharded
  bool crc32c = false;         // v3: append a crc32c codec to each (inner) chunk
  bool big_endian = false;     // the stored elements' byte order (in memory they are always native)
  std::vector<std::string> dimension_names;
  json attributes = json::object();
  char separator = 0;  // 0: the format's default ('/' for v3, '.' for v2)
};
Result<ArrayMetadata> MakeArrayMetadata(const ArraySpec& spec);

Result<ArrayMetadata> ParseArrayMetadataV3(const json& zarr_json);
Result<ArrayMetadata> ParseArrayMetadataV2(const json& zarray, const json& zattrs);
// zarr.json for v3.
json ArrayMetadataToV3(const ArrayMetadata& m);
// .zarray and .zattrs for v2; kUnimplemented when the codecs have no v2 form.
Status ArrayMetadataToV2(const ArrayMetadata& m, json* zarray, json* zattrs);

// Parses JSON text, naming `what` (a file or store URL and key) in the error: kInvalidArgument, for a
// document the user gives (a config, a partition file).
Result<json> ParseJson(std::string_view text, std::string_view what);
// The same for a document read from a store (Zarr metadata): malformed, it is corrupt data, kDataLoss.
Result<json> ParseStoredJson(std::string_view text, std::string_view what);

}  // namespace jigsaw
