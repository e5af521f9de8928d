// Checkpoints to and from other formats: safetensors (what PyTorch loads) and a Zarr group.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "storage/checkpoint/save.h"

namespace jigsaw {

// safetensors (https://github.com/huggingface/safetensors format: 8-byte little-endian header length, JSON
// header with dtype/shape/data_offsets per tensor, then the data).
Status ImportSafetensors(const std::string& path, KvStore* root, int64_t step, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, const SaveOptions& options);
// Which tensors an export writes (every one when `include` is empty) and further `__metadata__` entries
// (strings, as the format requires) beside "format" and "jigsaw_step".
struct SafetensorsExportOptions {
  std::function<bool(const std::string& name)> include;
  std::map<std::string, std::string> metadata;
};
Status ExportSafetensors(KvStore* root, const std::string& step_dir, const std::string& path,
                         const SafetensorsExportOptions& options = {});

// A Zarr v3 group in `dst` (which must be empty) with one array per tensor, named as the tensor ('/' in a
// name makes subgroups), chunked by the tensor's tiles (a chunk is exactly one tile of the saved mesh) and
// compressed with `codec` ("none", "zstd", "blosc-lz4", ...) and a crc32c per chunk; the group's attributes hold the
// step, the mesh and the checkpoint's metadata, each array's its partition spec. Tiles are streamed one per worker.
Status ExportZarr(KvStore* root, const std::string& step_dir, KvStore* dst, const std::string& codec = "none");
}  // namespace jigsaw
