// A Zarr array (v2 or v3) in a KvStore: read and write any box; chunk I/O and codecs run in parallel (TBB).
//
// Missing chunks read as the fill value. A chunk written that holds only the fill value is deleted rather
// than stored (zarr-python's write_empty_chunks=False). Reads of a sharded array fetch the shard index and
// only the inner chunks that the box touches, unless the box covers the whole shard.
// An Array is safe to read from many threads; concurrent writes must touch disjoint chunks.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/box.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/metadata.h"

namespace jigsaw {

class Array {
 public:
  // Opens the array whose metadata is at `path` ("" for the root) of `store`; detects v2 or v3.
  // `store` must outlive the Array.
  static Result<std::unique_ptr<Array>> Open(KvStore* store, std::string path);
  // Writes the metadata of a new array (replacing any at `path`) and returns it.
  static Result<std::unique_ptr<Array>> Create(KvStore* store, std::string path, ArrayMetadata metadata);

  const ArrayMetadata& metadata() const { return meta_; }
  const std::string& path() const { return path_; }
  std::string url() const;  // store URL + path, for messages
  Box full_box() const { return {std::vector<int64_t>(meta_.rank(), 0), meta_.shape}; }

  // `out` receives the box in C order, native byte order (box.num_elements() * dtype.size bytes).
  Status Read(const Box& box, std::span<char> out) const;
  Status Write(const Box& box, std::string_view data);

  // The store key of a chunk (shard) index: path + chunk key.
  std::string ChunkKey(std::span<const int64_t> index) const;
  // Reads and decodes one stored chunk whole into `out` (chunk_layout().num_bytes()); false when missing.
  // Chunks of kMinMappedChunkBytes or more decode from a mapping where the store can map (KvStore::Map).
  static constexpr size_t kMinMappedChunkBytes = size_t{4} << 20;
  Result<bool> ReadChunk(std::span<const int64_t> index, std::span<char> out) const;
  // Encodes and stores (or deletes, when all fill) one whole chunk.
  Status WriteChunk(std::span<const int64_t> index, std::string_view data) const;

  Status WriteMetadata() const;

  // A missing chunk (or inner chunk of a shard) reads as the fill value, as Zarr says, unless the caller
  // knows the store to be complete: then it is kDataLoss naming the key (set before reading).
  void RequireEveryChunk(bool require) { require_every_chunk_ = require; }
  // Stores a chunk that holds only the fill value too (zarr-python's write_empty_chunks=True), for arrays
  // whose every chunk must be there to be read back (RequireEveryChunk): a forecast that is all NaN.
  void KeepFillChunks(bool keep) { keep_fill_chunks_ = keep; }

 private:
  Array(KvStore* store, std::string path, ArrayMetadata meta)
      : store_(store), path_(std::move(path)), meta_(std::move(meta)) {}
  Status ReadPartialShard(std::span<const int64_t> index, const Box& chunk_box, const Box& box,
                          std::span<char> out) const;

  Status MissingChunk(const std::string& key) const;

  KvStore* store_;
  std::string path_;
  ArrayMetadata meta_;
  bool require_every_chunk_ = false;
  bool keep_fill_chunks_ = false;
};

// The values of a 1-D array (a coordinate, a statistic) read whole, as T: kInvalidArgument naming the array
// unless it is 1-D with elements of T's size.
template <typename T>
Result<std::vector<T>> ReadWhole1D(const Array& a) {
  const ArrayMetadata& m = a.metadata();
  if (m.rank() != 1 || m.dtype.size != static_cast<int>(sizeof(T))) {
    return InvalidArgumentError(a.url() + " is not a 1-D array of " + std::to_string(sizeof(T)) + "-byte values");
  }
  std::vector<T> v(m.shape[0]);
  RETURN_IF_ERROR(a.Read(a.full_box(), std::span<char>(reinterpret_cast<char*>(v.data()), v.size() * sizeof(T))));
  return v;
}

// Reads the metadata of the node at `path`: sets *is_array and fills *array (arrays) or *attributes.
// Result is the zarr format (2 or 3), or kNotFound when no Zarr node is there.
struct NodeMetadata {
  int zarr_format = 3;
  bool is_array = false;
  json attributes = json::object();
  std::optional<ArrayMetadata> array;
  json consolidated;  // the consolidated metadata found at this node (null when none)
};
Result<NodeMetadata> ReadNodeMetadata(KvStore* store, const std::string& path);

}  // namespace jigsaw
