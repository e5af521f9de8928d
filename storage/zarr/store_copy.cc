#include "storage/zarr/store_copy.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>

#include "base/first_error.h"
#include "storage/kvstore/io_threads.h"
#include "storage/zarr/array.h"
#include "storage/zarr/group.h"

namespace jigsaw {
namespace {

// The destination's metadata for source array `src`; *note says what the copy changed that was not asked
// for by name (a codec re-encoded for v3).
Result<ArrayMetadata> DestinationMetadata(const ArrayMetadata& src, const CopyOptions& o, int format,
                                          std::string* note) {
  const ShardingSpec* sh = src.codecs->sharding();
  const CodecChain& data_chain = sh ? *sh->inner : *src.codecs;
  using ByteOrder = CopyOptions::ByteOrder;
  ArraySpec spec;
  spec.zarr_format = format;
  spec.shape = src.shape;
  spec.dtype = src.dtype;
  spec.chunks = sh ? sh->inner_shape : src.chunks;
  spec.fill_value = src.fill_null && format == 2 ? json() : FillValueToJson(src.fill, src.dtype);
  spec.dimension_names = src.dimension_names;
  spec.attributes = src.attributes;
  spec.separator = src.zarr_format == format ? src.separator : 0;
  spec.big_endian = o.byte_order == ByteOrder::kSource ? data_chain.big_endian() : o.byte_order == ByteOrder::kBig;
  // --shard applies to the arrays of its rank (the data variables); others (coordinates) stay unsharded.
  if (format == 3 && !o.no_shard) {
    if (!o.shard.empty())
      spec.shard = o.shard.size() == spec.shape.size() ? o.shard : std::vector<int64_t>{};
    else if (sh)
      spec.shard = src.chunks;
  }
  if (!o.codec.empty()) {
    spec.codec = o.codec;
    if (format == 3 && o.codec == "zlib") {
      *note =
          " (numcodecs.zlib, as asked, is no Zarr v3 codec: v3 readers without numcodecs, TensorStore among "
          "them, cannot read it; gzip they can)";
    }
    return MakeArrayMetadata(spec);
  }
  // Keep the source's compression: rebuild its bytes->bytes codecs.
  spec.codec = "none";
  ASSIGN_OR_RETURN(ArrayMetadata m, MakeArrayMetadata(spec));
  std::vector<std::unique_ptr<BytesCodec>> codecs;
  for (const auto& c : data_chain.bytes_codecs()) {
    if (format == 2 && c->name() == "crc32c") continue;  // no v2 form; the data is unchanged without it
    json v3 = c->ToV3();
    if (format == 3 && v3.value("name", "") == "numcodecs.zlib") {  // not in the v3 spec: gzip is its nearest
      v3["name"] = "gzip";
      *note = " (zlib has no Zarr v3 codec: re-encoded as gzip, level " +
              v3["configuration"].value("level", json(5)).dump() + ")";
    }
    ASSIGN_OR_RETURN(auto copy, BytesCodecFromV3(v3, src.dtype.size));
    codecs.push_back(std::move(copy));
  }
  if (format == 2 && codecs.size() > 1) {
    return UnimplementedError("the source's codecs (" + data_chain.Describe() +
                              ") have no Zarr v2 form; choose --codec");
  }
  if (!spec.shard.empty()) {
    auto s = std::make_unique<ShardingSpec>();
    s->inner_shape = spec.chunks;
    s->inner = CodecChain::Make({spec.chunks, src.dtype.size, m.fill, src.dtype.swap_size()}, {}, spec.big_endian,
                                std::move(codecs));
    m.codecs = CodecChain::Make(m.chunk_layout(), {}, false, {}, std::move(s));
  } else {
    m.codecs = CodecChain::Make(m.chunk_layout(), {}, spec.big_endian, std::move(codecs));
  }
  return m;
}

}  // namespace

namespace {

// The directory of a local store (a path, or file:///path), with links resolved; nullopt for other stores.
std::optional<std::filesystem::path> LocalDirectory(const KvStore* store) {
  std::string url = store->url();
  if (url.starts_with("file://"))
    url = url.substr(7);
  else if (url.find("://") != std::string::npos)
    return std::nullopt;
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(url, ec), ec);
  if (ec) return std::nullopt;
  return p;
}

bool Within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  auto [o, i] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return o == outer.end();
}

// Neither store inside the other (a copy into its own subdirectory would copy itself).
Status CheckCopyDestination(KvStore* src, KvStore* dst) {
  const auto s = LocalDirectory(src), d = LocalDirectory(dst);
  if (s && d && (Within(*d, *s) || Within(*s, *d))) {
    return InvalidArgumentError(
        "cannot copy " + src->url() + " to " + dst->url() + ": " +
        (Within(*d, *s) ? "the destination lies inside the source" : "the source lies inside the destination") + " (" +
        s->string() + ", " + d->string() + ")");
  }
  return OkStatus();
}

}  // namespace

Status BeginStoreWrite(KvStore* dst, const std::string& what) {
  ASSIGN_OR_RETURN(ReadResult marker, dst->Read(kUnfinishedMarker));
  if (!marker.missing) {  // an unfinished write: start over
    ASSIGN_OR_RETURN(auto keys, dst->List(""));
    for (const auto& e : keys) RETURN_IF_ERROR(dst->Delete(e.key));
  } else {
    RETURN_IF_ERROR(RequireEmpty(dst));
  }
  return dst->Write(kUnfinishedMarker, "unfinished: " + what + "\n").Annotate(dst->url());
}

Status FinishStoreWrite(RecordingKvStore* dst) {
  RETURN_IF_ERROR(dst->WriteRecord({kUnfinishedMarker}).Annotate(dst->url()));
  return dst->Delete(kUnfinishedMarker).Annotate(dst->url());
}

Status CopyStore(KvStore* src, KvStore* destination, const CopyOptions& o, std::ostream& log) {
  RETURN_IF_ERROR(CheckCopyDestination(src, destination));
  RecordingKvStore recording(destination);
  RecordingKvStore* dst = &recording;
  ASSIGN_OR_RETURN(auto nodes, ListNodes(src));
  // Marked unfinished first and finished last: a copy that fails half-way never verifies, and can be retried.
  RETURN_IF_ERROR(BeginStoreWrite(dst, "a jigsaw-store copy of " + src->url()));
  int format = o.zarr_format;
  if (format == 0) format = nodes.front().meta.zarr_format;
  int64_t total = 0;
  for (const auto& n : nodes) {
    if (!n.meta.is_array) continue;
    int64_t b = n.meta.array->dtype.size;
    for (int64_t s : n.meta.array->shape) b *= s;
    total += b;
  }
  std::atomic<int64_t> done{0};
  if (nodes.front().path != "") RETURN_IF_ERROR(WriteGroup(dst, "", format, json::object()));
  for (const auto& n : nodes) {
    if (!n.meta.is_array) {
      RETURN_IF_ERROR(WriteGroup(dst, n.path, format, n.meta.attributes).Annotate(dst->url()));
      continue;
    }
    ASSIGN_OR_RETURN(auto in, Array::Open(src, n.path));
    std::string note;
    auto meta = DestinationMetadata(in->metadata(), o, format, &note);
    if (!meta.ok()) return meta.status().Annotate(in->url());
    ASSIGN_OR_RETURN(auto out, Array::Create(dst, n.path, std::move(*meta)));
    const ArrayMetadata& dm = out->metadata();
    // One destination chunk (shard) per task: read its box from the source, write it whole.
    const auto grid = dm.grid();
    const int64_t count = dm.num_chunks();
    FirstError err;
    RunWithIoThreads(std::max(src->io_threads(), dst->io_threads()), [&] {
      tbb::parallel_for(int64_t{0}, count, [&](int64_t k) {
        if (err.failed()) return;
        Box box;
        int64_t rest = k;
        box.origin.resize(grid.size());
        box.shape.resize(grid.size());
        for (size_t d = grid.size(); d-- > 0;) {
          int64_t i = rest % grid[d];
          rest /= grid[d];
          box.origin[d] = i * dm.chunks[d];
          box.shape[d] = std::min(dm.chunks[d], dm.shape[d] - box.origin[d]);
        }
        std::string buf(box.num_elements() * dm.dtype.size, '\0');
        Status s = in->Read(box, buf);
        if (s.ok()) s = out->Write(box, buf);
        if (!s.ok()) return err.Set(s);
        int64_t now = done.fetch_add(static_cast<int64_t>(buf.size())) + static_cast<int64_t>(buf.size());
        if (o.progress) o.progress(now, total);
      });
    });
    RETURN_IF_ERROR(err.Get());
    log << "copied " << (n.path.empty() ? "/" : n.path) << " [" << JoinShape(dm.shape) << "] " << dm.dtype.name
        << " -> " << dm.codecs->Describe() << note << "\n";
  }
  RETURN_IF_ERROR(WriteConsolidated(dst, format).Annotate(dst->url()));
  return FinishStoreWrite(dst);
}

}  // namespace jigsaw
