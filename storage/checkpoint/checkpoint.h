// Sharded checkpoints (DESIGN.md, "Sharded checkpoints"):
//   ROOT/LATEST                       name of the newest committed step (replaced atomically)
//   ROOT/step-00001000/manifest.json  mesh, tensors (dtype, shape, partition, tiles), step, metadata
//   ROOT/step-00001000/rank-00003.bin the tiles rank 3 owns, each at a 4 KiB-aligned offset
// The manifest is written last: a step directory without one is garbage (removed by the next save).
// Each tile carries crc32c checksums of its 1 MiB blocks, so that partial reads are checked too.
//
// Mesh and partition specs follow JAX: named axes ("domain=2,tensor=2"), and per tensor one axis name or
// null per dimension. A dimension of n split in p parts has parts of ceil(n/p) (DESIGN.md's rule); a
// replicated tile is written once, by the lowest rank that holds it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parallel/communicator.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/dtype.h"

namespace jigsaw {

struct Mesh {
  std::vector<std::pair<std::string, int64_t>> axes;  // in order; rank = row-major over the axes

  static Result<Mesh> Parse(std::string_view text);  // "domain=2,tensor=2"; "" is one rank
  std::string ToString() const;
  int64_t size() const;
  int64_t AxisSize(std::string_view axis) const;     // 0 when absent
  int64_t Coordinate(int64_t rank, std::string_view axis) const;
};

using PartitionSpec = std::vector<std::optional<std::string>>;
Result<PartitionSpec> ParsePartitionSpec(const nlohmann::json& j);  // ["domain", null]
nlohmann::json PartitionSpecToJson(const PartitionSpec& p);

struct TensorSpec {
  std::string name;
  DataType dtype;
  std::vector<int64_t> shape;
  PartitionSpec partition;  // empty: replicated
};

// The box of `tensor` that `rank` holds on `mesh`.
Result<Box> TileOf(const TensorSpec& tensor, const Mesh& mesh, int64_t rank);

struct TileRecord {
  int64_t rank = 0;  // the file rank-<rank>.bin
  Box box;
  int64_t offset = 0, nbytes = 0;
  uint32_t crc32c = 0;
  std::vector<uint32_t> block_crc32c;  // per 1 MiB block
};

struct TensorRecord {
  TensorSpec spec;
  std::vector<TileRecord> tiles;
};

struct Manifest {
  static constexpr int kMajor = 1, kMinor = 0;
  int64_t step = 0;
  Mesh mesh;
  std::vector<TensorRecord> tensors;
  nlohmann::json metadata = nlohmann::json::object();

  nlohmann::json ToJson() const;
  static Result<Manifest> FromJson(const nlohmann::json& j);
  const TensorRecord* Find(std::string_view name) const;
};

std::string StepDirectory(int64_t step);  // "step-00001000"

// Supplies the bytes of `box` of tensor `tensor` (C order, dtype elements) as rank `rank` holds them.
using TileProvider = std::function<Result<std::string>(int64_t rank, const TensorSpec& tensor, const Box& box)>;

// Tensors in the caller's memory as a TileProvider, in one of two ways. `whole`: each buffer is a whole
// tensor and tiles are cut out of it (one process saving every rank). Otherwise each buffer is the tile
// that the saving rank holds (a collective save, one process per rank), checked against the tile's shape.
// `buffers[i]` belongs to `tensors[i]`; shapes are checked when the provider runs, and the buffers must stay
// valid until the save (or AsyncCheckpointSaver::Start) returns.
struct TensorBuffer {
  const char* data = nullptr;
  std::vector<int64_t> shape;
};
TileProvider TilesFromMemory(std::vector<TensorSpec> tensors, std::vector<TensorBuffer> buffers, bool whole);

struct SaveOptions {
  bool sync = true;                                  // fsync data and manifest before LATEST moves
  bool direct = true;                                // rank files bypass the page cache where the file
                                                     // system allows (WriteOptions::direct)
  nlohmann::json metadata = nlohmann::json::object();  // optimiser, RNG, loader cursor, model config
};

// Saves step `step` collectively. Without `comm` (or with a communicator of size 1) this process saves every
// rank of `mesh` (tools, tests); under MPI each of mesh.size() processes saves its own rank. Rank 0 first
// removes unfinished saves (steps without a manifest); each rank writes its owned tiles to its file; rank 0
// gathers the tile records, checks that every element of every tensor is covered exactly once, writes the
// manifest, then LATEST. Every rank returns the same verdict.
Status SaveCheckpoint(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
                      const TileProvider& provider, const SaveOptions& options, Communicator* comm = nullptr);

// Asynchronous saves: Start() agrees on the save with the other ranks (as SaveCheckpoint does), copies
// every tile this process owns (so the caller may change its tensors as soon as it returns) and writes the
// rank files in the background; Wait() commits (collectively, with `comm`: every rank calls it, as it
// calls Start) and returns the save's status. At most one save is in flight: Start waits for the previous
// one and returns its status. `root` and `comm` must outlive the save. Destruction waits too, but commits
// only without `comm` (a collective commit cannot happen in one rank's destructor: the step is then left
// unfinished, and the next save clears it).
class AsyncCheckpointSaver {
 public:
  AsyncCheckpointSaver() = default;
  ~AsyncCheckpointSaver();
  AsyncCheckpointSaver(const AsyncCheckpointSaver&) = delete;
  AsyncCheckpointSaver& operator=(const AsyncCheckpointSaver&) = delete;

  // Returns once the tiles are copied; problems of this save (its arguments, a failed copy, the writes)
  // come from Wait().
  Status Start(KvStore* root, int64_t step, const Mesh& mesh, const std::vector<TensorSpec>& tensors,
               const TileProvider& provider, const SaveOptions& options, Communicator* comm = nullptr);
  Status Wait();
  bool in_flight() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Opens "ROOT/step-00001000" as (ROOT, "step-00001000"), or "ROOT" as (ROOT, its LATEST step).
Result<std::pair<std::unique_ptr<KvStore>, std::string>> OpenCheckpointStep(std::string path);

// The manifest of a step directory ("step-00001000") or, when `step_dir` is empty, of LATEST.
Result<Manifest> ReadManifest(KvStore* root, std::string step_dir = "");
Result<std::string> LatestStep(KvStore* root);

// kOutOfRange naming the tensor unless `box` lies within it (same rank, inside its shape). The reads below
// check it; callers check it first where they must size something by the box.
Status CheckBoxWithin(const TensorSpec& t, const Box& box);

// Reads `box` of a tensor: only the byte runs of the tiles it intersects, whole 1 MiB blocks at a time,
// each block checked against its crc32c.
Result<std::string> ReadTensorBox(KvStore* root, const std::string& step_dir, const Manifest& m,
                                  const TensorRecord& t, const Box& box);

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

// Rewrites a step on another mesh (partition specs as given per tensor name; tensors not named keep
// theirs), streaming tile intersections: memory holds one target tile at a time per worker.
Status ReshardCheckpoint(KvStore* src_root, const std::string& step_dir, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, KvStore* dst_root,
                         const SaveOptions& options);

// Partition files: {"pattern or name": ["domain", null], ...}; first matching pattern wins ('*' and '?'
// globs); unmatched tensors are replicated.
Result<std::function<PartitionSpec(const TensorSpec&)>> LoadPartitionRules(const nlohmann::json& rules);

// safetensors (https://github.com/huggingface/safetensors format: 8-byte little-endian header length, JSON
// header with dtype/shape/data_offsets per tensor, then the data).
Status ImportSafetensors(const std::string& path, KvStore* root, int64_t step, const Mesh& mesh,
                         const std::function<PartitionSpec(const TensorSpec&)>& partition, const SaveOptions& options);
Status ExportSafetensors(KvStore* root, const std::string& step_dir, const std::string& path);


// A Zarr v3 group in `dst` (which must be empty) with one array per tensor, named as the tensor ('/' in a
// name makes subgroups), chunked by the tensor's tiles (a chunk is exactly one tile of the saved mesh) and
// compressed with `codec` ("none", "zstd", "blosc-lz4", ...) and a crc32c per chunk; the group's attributes hold the step, the
// mesh and the checkpoint's metadata, each array's its partition spec. Tiles are streamed one per worker.
Status ExportZarr(KvStore* root, const std::string& step_dir, KvStore* dst, const std::string& codec = "none");

}  // namespace jigsaw
