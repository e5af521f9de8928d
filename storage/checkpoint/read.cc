#include "storage/checkpoint/read.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <mutex>

#include "storage/checkpoint/format.h"
#include "storage/codec/codec.h"
#include "storage/codec/crc32c.h"

namespace jigsaw {

using namespace checkpoint_internal;

namespace {

// Where a box meets one tile: the part, and the slab of the tile's outermost dimension that holds it
// ([lo, hi) bytes into the tile), widened to whole checksum blocks ([blo, bhi)).
struct TileSlab {
  Box part;
  int64_t a = 0, b = 1;  // the slab's rows of the outermost dimension, relative to the tile
  int64_t lo = 0, hi = 0, blo = 0, bhi = 0;
  // The whole box is one run of whole blocks of this tile (a rank's own tile; half of one along the outer
  // dimension), so its bytes can go to the caller as they are stored.
  bool whole_run = false;
};

TileSlab SlabOf(const TensorRecord& t, const TileRecord& tile, const Box& box) {
  const int64_t es = t.spec.dtype.size;
  const size_t rank = t.spec.shape.size();
  TileSlab s;
  s.part = Intersection(tile.box, box);
  if (Volume(s.part.shape) == 0) return s;
  int64_t outer_stride = es;
  for (size_t d = 1; d < rank; ++d) outer_stride *= tile.box.shape[d];
  s.a = rank ? s.part.origin[0] - tile.box.origin[0] : 0;
  s.b = rank ? s.a + s.part.shape[0] : 1;
  s.lo = s.a * outer_stride;
  s.hi = std::min(tile.nbytes, s.b * outer_stride);
  s.blo = s.lo / kBlock * kBlock;
  s.bhi = std::min(tile.nbytes, (s.hi + kBlock - 1) / kBlock * kBlock);
  s.whole_run = s.part.shape == box.shape && s.lo == s.blo && s.hi == s.bhi;
  for (size_t d = 1; d < rank; ++d) s.whole_run = s.whole_run && s.part.shape[d] == tile.box.shape[d];
  return s;
}

// `bytes` are the blocks [s.blo, s.bhi) of `tile`.
Status CheckBlocks(KvStore* root, const std::string& key, const TensorRecord& t, const TileRecord& tile,
                   const TileSlab& s, std::string_view bytes) {
  for (int64_t k = s.blo; k < s.bhi; k += kBlock) {
    if (Crc32c(bytes.substr(k - s.blo, std::min(kBlock, s.bhi - k))) != tile.block_crc32c[k / kBlock]) {
      return DataLossError(root->url() + ": " + key + ": crc32c mismatch in tensor " + t.spec.name + " tile " +
                           tile.box.ToString() + " (block " + std::to_string(k / kBlock) + ")");
    }
  }
  return OkStatus();
}

// A failed read of a rank file names the store, the file and the tensor (a truncated file says only "byte
// range ... outside a value of N bytes" otherwise).
template <typename T>
Result<T> Named(Result<T> r, KvStore* root, const std::string& key, const TensorRecord& t) {
  if (r.ok()) return r;
  return r.status().Annotate(root->url() + ": " + key + " (tensor " + t.spec.name + ")");
}

Status MissingRankFile(KvStore* root, const std::string& key, const TensorRecord& t) {
  return DataLossError(root->url() + ": " + key + " is missing (tensor " + t.spec.name + ")");
}

}  // namespace

Status CheckBoxWithin(const TensorSpec& t, const Box& box) {
  if (BoxWithin(box, t.shape)) return OkStatus();
  return OutOfRangeError("box " + box.ToString() + " is not within tensor " + t.name + " of shape " +
                         nlohmann::json(t.shape).dump());
}

Result<std::string> ReadTensorBox(KvStore* root, const std::string& step_dir, const Manifest&, const TensorRecord& t,
                                  const Box& box) {
  RETURN_IF_ERROR(CheckBoxWithin(t.spec, box));
  const int64_t es = t.spec.dtype.size;
  const size_t rank = t.spec.shape.size();
  const size_t n = static_cast<size_t>(Volume(box.shape) * es);
  // Not zero-filled: the tiles cover the tensor exactly once (checked when the step was saved), so every
  // byte of the box is written below. (libstdc++ 12 passes the capacity to the callback, hence `n`.)
  std::string out;
  out.resize_and_overwrite(n, [n](char*, size_t) { return n; });
  for (const TileRecord& tile : t.tiles) {
    const TileSlab s = SlabOf(t, tile, box);
    if (Volume(s.part.shape) == 0) continue;
    const std::string key = step_dir + "/" + RankFile(tile.rank);
    if (s.whole_run) {  // straight into the result, no copy
      ASSIGN_OR_RETURN(
          bool found,
          Named(root->ReadInto(key, ByteRange::Span(tile.offset + s.lo, tile.offset + s.hi), &out), root, key, t));
      if (!found) return MissingRankFile(root, key, t);
      RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, out));
      return out;
    }
    thread_local std::string slab;
    ASSIGN_OR_RETURN(
        bool found,
        Named(root->ReadInto(key, ByteRange::Span(tile.offset + s.blo, tile.offset + s.bhi), &slab), root, key, t));
    if (!found) return MissingRankFile(root, key, t);
    RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, slab));
    std::vector<int64_t> slab_shape = tile.box.shape;
    if (rank) slab_shape[0] = s.b - s.a;
    std::vector<int64_t> src_origin(rank), dst_origin(rank);
    for (size_t d = 0; d < rank; ++d) {
      src_origin[d] = s.part.origin[d] - tile.box.origin[d] - (d == 0 ? s.a : 0);
      dst_origin[d] = s.part.origin[d] - box.origin[d];
    }
    CopyBox(slab.data() + (s.lo - s.blo), slab_shape, src_origin, out.data(), box.shape, dst_origin, s.part.shape, es);
  }
  return out;
}

Result<LoadedBox> LoadTensorBox(KvStore* root, const std::string& step_dir, const Manifest& m, const TensorRecord& t,
                                const Box& box) {
  RETURN_IF_ERROR(CheckBoxWithin(t.spec, box));
  for (const TileRecord& tile : t.tiles) {
    const TileSlab s = SlabOf(t, tile, box);
    if (Volume(s.part.shape) == 0) continue;
    if (!s.whole_run || s.hi - s.lo < kMinMappedBytes) break;
    const std::string key = step_dir + "/" + RankFile(tile.rank);
    ASSIGN_OR_RETURN(auto mapped,
                     Named(root->Map(key, ByteRange::Span(tile.offset + s.lo, tile.offset + s.hi)), root, key, t));
    if (!mapped) break;  // a store that cannot map, or a missing file (the read below names it)
    RETURN_IF_ERROR(CheckBlocks(root, key, t, tile, s, std::string_view(mapped->data(), mapped->size())));
    return LoadedBox(std::move(mapped));
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadTensorBox(root, step_dir, m, t, box));
  return LoadedBox(std::move(bytes));
}

Result<std::vector<std::string>> VerifyCheckpoint(KvStore* root, const std::string& step_dir) {
  ASSIGN_OR_RETURN(Manifest m, ReadManifest(root, step_dir));
  std::vector<std::string> problems;
  std::mutex mu;
  std::vector<std::pair<const TensorRecord*, const TileRecord*>> all;
  for (const auto& t : m.tensors)
    for (const auto& tile : t.tiles) all.emplace_back(&t, &tile);
  tbb::parallel_for(size_t{0}, all.size(), [&](size_t i) {
    const auto& [t, tile] = all[i];
    const std::string key = step_dir + "/" + RankFile(tile->rank);
    auto r = root->Read(key, ByteRange::Span(tile->offset, tile->offset + tile->nbytes));
    std::string p;
    if (!r.ok())
      p = root->url() + ": " + key + ": " + r.status().message();
    else if (r->missing)
      p = root->url() + ": " + key + " is missing";
    else if (Crc32c(r->value) != tile->crc32c) {
      p = root->url() + ": " + key + ": crc32c mismatch in tensor " + t->spec.name + " tile " + tile->box.ToString();
    }
    if (!p.empty()) {
      std::lock_guard lock(mu);
      problems.push_back(p + " (tensor " + t->spec.name + ")");
    }
  });
  std::sort(problems.begin(), problems.end());
  return problems;
}

}  // namespace jigsaw
