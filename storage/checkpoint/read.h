// Reading checkpoint tensors: any box of any tensor, from only the tiles it meets, each block checked
// against its crc32c; and verification of a whole step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/checkpoint/manifest.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

// kOutOfRange naming the tensor unless `box` lies within it (same rank, inside its shape). The reads below
// check it; callers check it first where they must size something by the box.
Status CheckBoxWithin(const TensorSpec& t, const Box& box);

// Reads `box` of a tensor: only the byte runs of the tiles it intersects, whole 1 MiB blocks at a time,
// each block checked against its crc32c.
Result<std::string> ReadTensorBox(KvStore* root, const std::string& step_dir, const Manifest& m, const TensorRecord& t,
                                  const Box& box);

// A box loaded for use in place: bytes of its own, or a private mapping of the rank file (see MappedBytes:
// shared with the page cache until written, writes stay in this process).
class LoadedBox {
 public:
  explicit LoadedBox(std::string bytes) : bytes_(std::move(bytes)) {}
  explicit LoadedBox(std::unique_ptr<MappedBytes> mapped) : mapped_(std::move(mapped)) {}
  char* data() { return mapped_ ? mapped_->data() : bytes_.data(); }
  size_t size() const { return mapped_ ? mapped_->size() : bytes_.size(); }
  bool mapped() const { return mapped_ != nullptr; }

 private:
  std::string bytes_;
  std::unique_ptr<MappedBytes> mapped_;
};

// Boxes this large or larger that are one whole run of a tile in a local file are mapped, not read.
inline constexpr int64_t kMinMappedBytes = 1 << 20;

// As ReadTensorBox, for a caller that keeps the box: a rank's own tile (or a run of whole blocks of one)
// in a local file is mapped instead of copied, and its pages are checked against the crc32c as they come
// in; everything else is read. Loading a checkpoint on the mesh it was saved on costs no copy at all.
Result<LoadedBox> LoadTensorBox(KvStore* root, const std::string& step_dir, const Manifest& m, const TensorRecord& t,
                                const Box& box);

// Every tile fully read and checked; problems name the tensor, tile and file.
Result<std::vector<std::string>> VerifyCheckpoint(KvStore* root, const std::string& step_dir);

}  // namespace jigsaw
