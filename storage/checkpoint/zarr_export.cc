// A checkpoint step as a Zarr v3 group, for readers that know Zarr but not jigsaw (zarr-python, TensorStore).
#include <tbb/parallel_for.h>

#include <set>

#include "storage/checkpoint/checkpoint.h"
#include "base/first_error.h"
#include "storage/kvstore/io_threads.h"
#include "storage/zarr/array.h"
#include "storage/zarr/group.h"
#include "storage/zarr/store_ops.h"

namespace jigsaw {

Status ExportZarr(KvStore* root, const std::string& step, KvStore* destination, const std::string& codec) {
  RecordingKvStore recording(destination);
  RecordingKvStore* dst = &recording;
  std::string step_dir = step;
  if (step_dir.empty()) {
    ASSIGN_OR_RETURN(step_dir, LatestStep(root));
  }
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, step_dir));
  RETURN_IF_ERROR(BeginStoreWrite(dst, "a jigsaw-ckpt Zarr export of " + root->url() + "/" + step_dir));
  nlohmann::json mesh = nlohmann::json::array();
  for (const auto& [axis, size] : m.mesh.axes) mesh.push_back({axis, size});
  RETURN_IF_ERROR(WriteGroup(dst, "", 3, {{"jigsaw_step", m.step}, {"jigsaw_mesh", mesh}, {"metadata", m.metadata}}));
  std::set<std::string> groups;
  for (const TensorRecord& t : m.tensors) {
    for (size_t slash = t.spec.name.find('/'); slash != std::string::npos; slash = t.spec.name.find('/', slash + 1)) {
      std::string parent = t.spec.name.substr(0, slash);
      if (groups.insert(parent).second) RETURN_IF_ERROR(WriteGroup(dst, parent, 3, nlohmann::json::object()));
    }
    if (t.tiles.empty())
      return DataLossError(root->url() + "/" + step_dir + ": tensor " + t.spec.name + " has no tiles");
    ArraySpec spec;
    spec.shape = t.spec.shape;
    // Tiles are regular chunks (the larger part first), so rank 0's tile, at the origin, is the chunk.
    spec.chunks = t.tiles.front().box.shape;
    for (const TileRecord& tile : t.tiles) {
      if (std::all_of(tile.box.origin.begin(), tile.box.origin.end(), [](int64_t o) { return o == 0; })) {
        spec.chunks = tile.box.shape;
      }
    }
    for (auto& c : spec.chunks) c = std::max<int64_t>(c, 1);
    spec.dtype = t.spec.dtype;
    spec.fill_value = t.spec.dtype.kind == 'b' ? nlohmann::json(false) : nlohmann::json(0);
    spec.codec = codec;
    spec.crc32c = true;  // readers check every chunk, as jigsaw checks every block
    spec.attributes = {{"jigsaw_partition", PartitionSpecToJson(t.spec.partition)}};
    auto meta = MakeArrayMetadata(spec);
    if (!meta.ok()) return meta.status().Annotate("tensor " + t.spec.name);
    ASSIGN_OR_RETURN(auto array, Array::Create(dst, t.spec.name, std::move(*meta)));
    FirstError err;
    RunWithIoThreads(std::max(root->io_threads(), dst->io_threads()), [&] {
      tbb::parallel_for(size_t{0}, t.tiles.size(), [&](size_t i) {
        if (err.failed()) return;
        const Box& box = t.tiles[i].box;
        auto bytes = ReadTensorBox(root, step_dir, m, t, box);
        if (!bytes.ok()) return err.Set(bytes.status());
        err.Set(array->Write(box, *bytes).Annotate("tensor " + t.spec.name));
      });
    });
    RETURN_IF_ERROR(err.Get());
  }
  RETURN_IF_ERROR(WriteConsolidated(dst, 3));
  return FinishStoreWrite(dst);
}

}  // namespace jigsaw
