#include "storage/zarr/array.h"

#include <tbb/parallel_for.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>

#include "base/first_error.h"
#include "storage/kvstore/io_threads.h"

namespace jigsaw {

namespace {

// Calls fn(index) for each index of the grid box [lo, hi) in C order.
template <typename Fn>
void ForEachIndex(const std::vector<int64_t>& lo, const std::vector<int64_t>& hi, Fn fn) {
  const size_t n = lo.size();
  for (size_t i = 0; i < n; ++i)
    if (lo[i] >= hi[i]) return;
  std::vector<int64_t> idx = lo;
  while (true) {
    fn(idx);
    size_t d = n;
    while (d-- > 0) {
      if (++idx[d] < hi[d]) break;
      idx[d] = lo[d];
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

// The stored chunks a box touches, in C order.
std::vector<std::vector<int64_t>> ChunksOf(const Box& box, std::span<const int64_t> chunk) {
  std::vector<int64_t> lo(box.shape.size()), hi(box.shape.size());
  for (size_t i = 0; i < lo.size(); ++i) {
    lo[i] = box.origin[i] / chunk[i];
    hi[i] = box.shape[i] == 0 ? lo[i] : (box.origin[i] + box.shape[i] - 1) / chunk[i] + 1;
  }
  std::vector<std::vector<int64_t>> out;
  if (lo.empty()) {
    out.push_back({});
    return out;
  }
  ForEachIndex(lo, hi, [&](const std::vector<int64_t>& i) { out.push_back(i); });
  return out;
}

std::vector<int64_t> Minus(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}

Box ChunkBox(std::span<const int64_t> index, std::span<const int64_t> chunk) {
  Box b;
  for (size_t i = 0; i < index.size(); ++i) {
    b.origin.push_back(index[i] * chunk[i]);
    b.shape.push_back(chunk[i]);
  }
  return b;
}

Status CheckBox(const Box& box, const ArrayMetadata& m, size_t bytes, std::string_view what) {
  if (box.origin.size() != m.shape.size() || box.shape.size() != m.shape.size()) {
    return InvalidArgumentError(std::string(what) + " box " + box.ToString() + " has the wrong rank");
  }
  if (!BoxWithin(box, m.shape)) {
    return OutOfRangeError(std::string(what) + " box " + box.ToString() + " outside the array's shape");
  }
  if (bytes != static_cast<size_t>(box.num_elements() * m.dtype.size)) {
    return InternalError(std::string(what) + " buffer size does not match the box");
  }
  return OkStatus();
}

// Runs fn(chunk index, chunk box, part of `box` in it) for every chunk `box` touches, in parallel (with I/O
// threads where the store is remote); the first error wins and stops the chunks not yet started.
Status ForEachChunk(const KvStore& store, const Box& box, const std::vector<int64_t>& chunk_shape,
                    const std::function<Status(const std::vector<int64_t>&, const Box&, const Box&)>& fn) {
  if (box.num_elements() == 0) return OkStatus();
  auto chunks = ChunksOf(box, chunk_shape);
  FirstError err;
  RunWithIoThreads(store, [&] {
    tbb::parallel_for(size_t{0}, chunks.size(), [&](size_t k) {
      if (err.failed()) return;
      Box cb = ChunkBox(chunks[k], chunk_shape);
      err.Set(fn(chunks[k], cb, Intersection(box, cb)));
    });
  });
  return err.Get();
}

}  // namespace

std::string Array::url() const { return JoinKey(store_->url(), path_); }

std::string Array::ChunkKey(std::span<const int64_t> index) const { return JoinKey(path_, meta_.ChunkKey(index)); }

Result<bool> Array::ReadChunk(std::span<const int64_t> index, std::span<char> out) const {
  std::string key = ChunkKey(index);
  // A large chunk in a local file decodes straight from the page cache (a mapping): no copy of its encoded
  // bytes. Small chunks are cheaper to copy than to map.
  if (out.size() >= kMinMappedChunkBytes) {
    ASSIGN_OR_RETURN(auto mapped, store_->Map(key, {}));
    if (mapped) {
      RETURN_IF_ERROR(meta_.codecs->Decode(std::string_view(mapped->data(), mapped->size()), out)
                          .Annotate(store_->url() + ": chunk " + key));
      return true;
    }
  }
  // One encoded-chunk buffer per thread, reused: no allocation or page faults per chunk.
  thread_local std::string encoded;
  ASSIGN_OR_RETURN(bool found, store_->ReadInto(key, {}, &encoded));
  if (!found) {
    RETURN_IF_ERROR(MissingChunk(key));
    FillWith(out, meta_.fill);
    return false;
  }
  RETURN_IF_ERROR(meta_.codecs->Decode(encoded, out).Annotate(store_->url() + ": chunk " + key));
  return true;
}

Status Array::MissingChunk(const std::string& key) const {
  if (!require_every_chunk_) return OkStatus();
  return DataLossError(store_->url() + ": chunk " + key +
                       " is missing (data that must be there: not read as the fill value)");
}

Status Array::WriteChunk(std::span<const int64_t> index, std::string_view data) const {
  std::string key = ChunkKey(index);
  if (!keep_fill_chunks_ && AllEqualTo(data, meta_.fill)) return store_->Delete(key);
  thread_local std::string encoded;  // reused: no allocation or page faults per chunk
  RETURN_IF_ERROR(meta_.codecs->Encode(data, &encoded));
  return store_->Write(key, encoded);
}

Status Array::ReadPartialShard(std::span<const int64_t> index, const Box& chunk_box, const Box& box,
                               std::span<char> out) const {
  const ShardingSpec& sh = *meta_.codecs->sharding();
  const std::string key = ChunkKey(index);
  const std::vector<int64_t>& inner = sh.inner_shape;
  std::vector<int64_t> grid(inner.size());
  int64_t count = 1;
  for (size_t i = 0; i < inner.size(); ++i) count *= grid[i] = meta_.chunks[i] / inner[i];
  const int64_t index_bytes = sh.IndexBytes(count);
  ASSIGN_OR_RETURN(ReadResult ir, store_->Read(key, sh.index_at_end ? ByteRange::Suffix(index_bytes)
                                                                    : ByteRange::Span(0, index_bytes)));
  const Box want = Intersection(box, chunk_box);
  if (ir.missing) {
    RETURN_IF_ERROR(MissingChunk(key));
    std::string fill(want.num_elements() * meta_.dtype.size, '\0');
    FillWith(fill, meta_.fill);
    CopyBox(fill.data(), want.shape, std::vector<int64_t>(want.shape.size(), 0), out.data(), box.shape,
            Minus(want.origin, box.origin), want.shape, meta_.dtype.size);
    return OkStatus();
  }
  // The shard's size is unknown without a second request; entries are checked against the index's own
  // end (start location) or are bounded by the read below, which fails cleanly past the object's end.
  ASSIGN_OR_RETURN(auto entries, sh.DecodeIndex(ir.value, count, std::numeric_limits<int64_t>::max() / 2));
  Box local{Minus(want.origin, chunk_box.origin), want.shape};
  auto inner_chunks = ChunksOf(local, inner);
  FirstError err;
  RunWithIoThreads(*store_, [&] {
    tbb::parallel_for(size_t{0}, inner_chunks.size(), [&](size_t k) {
      if (err.failed()) return;
      const auto& ci = inner_chunks[k];
      int64_t linear = 0;
      for (size_t d = 0; d < ci.size(); ++d) linear = linear * grid[d] + ci[d];
      Box ib = ChunkBox(ci, inner);  // relative to the shard
      Box part = Intersection(local, ib);
      std::string buf(sh.inner->layout().num_bytes(), '\0');
      const auto& e = entries[linear];
      if (e.empty()) {
        if (require_every_chunk_) return err.Set(MissingChunk(key + " (inner chunk " + std::to_string(linear) + ")"));
        FillWith(buf, meta_.fill);
      } else {
        auto r = store_->Read(
            key, ByteRange::Span(static_cast<int64_t>(e.offset), static_cast<int64_t>(e.offset + e.nbytes)));
        if (!r.ok()) return err.Set(r.status().Annotate("inner chunk " + std::to_string(linear)));
        if (r->missing) return err.Set(DataLossError("shard vanished while reading"));
        Status s = sh.inner->Decode(r->value, buf);
        if (!s.ok()) return err.Set(s.Annotate("inner chunk " + std::to_string(linear)));
      }
      std::vector<int64_t> dst(part.origin.size());
      for (size_t d = 0; d < dst.size(); ++d) dst[d] = part.origin[d] + chunk_box.origin[d] - box.origin[d];
      CopyBox(buf.data(), inner, Minus(part.origin, ib.origin), out.data(), box.shape, dst, part.shape,
              meta_.dtype.size);
    });
  });
  return err.Get().Annotate(store_->url() + ": shard " + key);
}

Status Array::Read(const Box& box, std::span<char> out) const {
  RETURN_IF_ERROR(CheckBox(box, meta_, out.size(), "read"));
  const int64_t chunk_bytes = meta_.chunk_layout().num_bytes();
  return ForEachChunk(*store_, box, meta_.chunks,
                      [&](const std::vector<int64_t>& index, const Box& cb, const Box& part) {
                        const bool whole = part.shape == cb.shape;
                        if (meta_.codecs->sharding() && !whole) return ReadPartialShard(index, cb, box, out);
                        if (whole && box.shape == cb.shape)
                          return ReadChunk(index, out).status();  // exactly this chunk: in place
                        thread_local std::string buf;
                        buf.resize(chunk_bytes);
                        RETURN_IF_ERROR(ReadChunk(index, buf).status());
                        CopyBox(buf.data(), meta_.chunks, Minus(part.origin, cb.origin), out.data(), box.shape,
                                Minus(part.origin, box.origin), part.shape, meta_.dtype.size);
                        return OkStatus();
                      });
}

Status Array::Write(const Box& box, std::string_view data) {
  RETURN_IF_ERROR(CheckBox(box, meta_, data.size(), "write"));
  const int64_t chunk_bytes = meta_.chunk_layout().num_bytes();
  return ForEachChunk(
      *store_, box, meta_.chunks, [&](const std::vector<int64_t>& index, const Box& cb, const Box& part) {
        const Box inside = Intersection(cb, full_box());  // edge chunks extend past the array
        if (box.shape == cb.shape) {  // the box is exactly this chunk: encode the caller's bytes in place
          return WriteChunk(index, data).Annotate(store_->url() + ": chunk " + ChunkKey(index));
        }
        thread_local std::string buf;  // reused: no allocation or page faults per chunk
        buf.resize(chunk_bytes);
        if (part.shape == cb.shape) {
          // Every element is overwritten below.
        } else if (part.shape == inside.shape) {  // the part past the array's edge holds the fill value
          FillOutside(buf.data(), meta_.chunks, Minus(part.origin, cb.origin), part.shape, meta_.fill);
        } else {  // read-modify-write of a partly covered chunk
          RETURN_IF_ERROR(ReadChunk(index, buf).status());
        }
        CopyBox(data.data(), box.shape, Minus(part.origin, box.origin), buf.data(), meta_.chunks,
                Minus(part.origin, cb.origin), part.shape, meta_.dtype.size);
        return WriteChunk(index, buf).Annotate(store_->url() + ": chunk " + ChunkKey(index));
      });
}

Status Array::WriteMetadata() const {
  if (meta_.zarr_format == 3) {
    return store_->Write(JoinKey(path_, "zarr.json"), ArrayMetadataToV3(meta_).dump(2));
  }
  json zarray, zattrs;
  RETURN_IF_ERROR(ArrayMetadataToV2(meta_, &zarray, &zattrs));
  RETURN_IF_ERROR(store_->Write(JoinKey(path_, ".zarray"), zarray.dump(2)));
  if (zattrs.empty()) return store_->Delete(JoinKey(path_, ".zattrs"));
  return store_->Write(JoinKey(path_, ".zattrs"), zattrs.dump(2));
}

Result<std::unique_ptr<Array>> Array::Create(KvStore* store, std::string path, ArrayMetadata metadata) {
  auto a = std::unique_ptr<Array>(new Array(store, std::move(path), std::move(metadata)));
  RETURN_IF_ERROR(a->WriteMetadata().Annotate(a->url()));
  return a;
}

Result<std::unique_ptr<Array>> Array::Open(KvStore* store, std::string path) {
  ASSIGN_OR_RETURN(NodeMetadata node, ReadNodeMetadata(store, path));
  if (!node.is_array) return InvalidArgumentError(JoinKey(store->url(), path) + " is a group, not an array");
  return std::unique_ptr<Array>(new Array(store, std::move(path), std::move(*node.array)));
}

Result<NodeMetadata> ReadNodeMetadata(KvStore* store, const std::string& path) {
  auto read_json = [&](const std::string& name) -> Result<std::optional<json>> {
    std::string key = JoinKey(path, name);
    ASSIGN_OR_RETURN(ReadResult r, store->Read(key));
    if (r.missing) return std::optional<json>();
    ASSIGN_OR_RETURN(json j, ParseStoredJson(r.value, JoinKey(store->url(), key)));
    return std::optional<json>(std::move(j));
  };
  NodeMetadata node;
  ASSIGN_OR_RETURN(auto v3, read_json("zarr.json"));
  if (v3) {
    const std::string where = JoinKey(store->url(), JoinKey(path, "zarr.json"));
    if (!v3->is_object() || v3->value("zarr_format", json()) != 3) {
      return InvalidArgumentError(where + ": not Zarr v3 metadata (zarr_format must be 3)");
    }
    std::string type = v3->value("node_type", "");
    if (type == "group") {
      node.attributes = v3->value("attributes", json::object());
      if (v3->contains("consolidated_metadata")) node.consolidated = (*v3)["consolidated_metadata"];
      return node;
    }
    if (type != "array") return InvalidArgumentError(where + ": node_type must be \"array\" or \"group\"");
    node.is_array = true;
    auto m = ParseArrayMetadataV3(*v3);
    if (!m.ok()) return m.status().Annotate(where);
    node.attributes = m->attributes;
    node.array = std::move(*m);
    return node;
  }
  node.zarr_format = 2;
  ASSIGN_OR_RETURN(auto zattrs, read_json(".zattrs"));
  if (zattrs) node.attributes = *zattrs;
  ASSIGN_OR_RETURN(auto zarray, read_json(".zarray"));
  if (zarray) {
    node.is_array = true;
    auto m = ParseArrayMetadataV2(*zarray, node.attributes);
    if (!m.ok()) return m.status().Annotate(JoinKey(store->url(), JoinKey(path, ".zarray")));
    node.array = std::move(*m);
    return node;
  }
  ASSIGN_OR_RETURN(auto zgroup, read_json(".zgroup"));
  if (!zgroup) return NotFoundError("no Zarr array or group at " + JoinKey(store->url(), path));
  if (path.empty()) {
    ASSIGN_OR_RETURN(auto zmeta, read_json(".zmetadata"));
    if (zmeta) node.consolidated = *zmeta;
  }
  return node;
}

}  // namespace jigsaw
