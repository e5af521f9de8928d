#include "storage/zarr/throughput.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

#include "storage/codec/codec.h"
#include "storage/zarr/array.h"
#include "base/first_error.h"
#include "storage/kvstore/io_threads.h"

namespace jigsaw {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

double ReadThroughput::median_seconds() const { return Median(seconds); }

Result<ReadThroughput> MeasureChunkReads(KvStore* store, const std::string& path, const ReadBenchOptions& o) {
  ASSIGN_OR_RETURN(auto array, Array::Open(store, path));
  const ArrayMetadata& m = array->metadata();
  // The stored chunks, from one listing (missing chunks are not read by anyone).
  std::string prefix = path.empty() ? "" : path + "/";
  ASSIGN_OR_RETURN(auto keys, store->List(prefix));
  std::vector<std::string> chunk_keys;
  std::vector<std::vector<int64_t>> chunk_indices;
  ReadThroughput out;
  for (const auto& e : keys) {
    std::string rel = e.key.substr(prefix.size());
    if (auto index = m.ParseChunkKey(rel); index && (!o.keep || o.keep(*index))) {
      chunk_keys.push_back(e.key);
      chunk_indices.push_back(std::move(*index));
      out.stored_bytes += e.size;
    }
  }
  if (chunk_keys.empty()) return FailedPreconditionError(array->url() + " has no stored chunks to read");
  const int64_t chunk_bytes = m.chunk_layout().num_bytes();
  out.chunks = static_cast<int64_t>(chunk_keys.size());
  out.decoded_bytes = out.chunks * chunk_bytes;
  std::vector<std::string> encoded;
  if (o.from_memory) {
    encoded.resize(chunk_keys.size());
    for (size_t i = 0; i < chunk_keys.size(); ++i) {
      ASSIGN_OR_RETURN(ReadResult r, store->Read(chunk_keys[i]));
      encoded[i] = std::move(r.value);
    }
  }
  // Uninitialised, as numpy.empty: first touch happens while decoding.
  std::unique_ptr<char[]> buffer;
  const int repeats = o.fresh_output ? o.repeats : o.repeats + 1;  // reused: one extra, cold, run first
  for (int rep = 0; rep < repeats; ++rep) {
    if (o.fresh_output || !buffer) buffer.reset(new char[out.decoded_bytes]);
    FirstError err;
    double t0 = Now();
    RunWithIoThreads(*store, [&] {
      tbb::parallel_for(
          size_t{0}, chunk_keys.size(),
          [&](size_t i) {
            std::span<char> slot(buffer.get() + i * chunk_bytes, chunk_bytes);
            Status s;
            if (o.from_memory) {
              s = m.codecs->Decode(encoded[i], slot).Annotate(store->url() + ": chunk " + chunk_keys[i]);
            } else {  // as every reader of an Array does (and so mapped where the store can map)
              auto r = array->ReadChunk(chunk_indices[i], slot);
              s = !r.ok() ? r.status()
                  : *r    ? OkStatus()
                          : DataLossError(store->url() + ": chunk " + chunk_keys[i] + " vanished");
            }
            err.Set(s);
          },
          tbb::simple_partitioner());
    });
    if (o.fresh_output || rep > 0) out.seconds.push_back(Now() - t0);
    RETURN_IF_ERROR(err.Get());
  }
  return out;
}

Result<std::vector<CodecThroughput>> MeasureCodecs(std::string_view data, const DataType& dtype,
                                                   const std::vector<std::string>& codecs, int repeats) {
  std::vector<CodecThroughput> out;
  std::string back(data.size(), '\0');
  for (const auto& name : codecs) {
    // crc32c (checked on every v3 chunk jigsaw-shard writes) beside the compressors, to see what it adds.
    std::unique_ptr<BytesCodec> codec;
    if (name == "crc32c") {
      codec = NewCrc32cCodec();
    } else {
      ASSIGN_OR_RETURN(codec, BytesCodecFromName(name, dtype.size));
    }
    if (!codec) continue;
    std::vector<double> enc_t, dec_t;
    std::string encoded;
    for (int r = 0; r < repeats; ++r) {
      double t0 = Now();
      ASSIGN_OR_RETURN(encoded, codec->Encode(data));
      enc_t.push_back(Now() - t0);
      t0 = Now();
      RETURN_IF_ERROR(codec->DecodeInto(encoded, back));
      dec_t.push_back(Now() - t0);
    }
    if (back != data) return InternalError(name + ": decode does not invert encode");
    out.push_back({name, data.size() / Median(enc_t) / 1e6, data.size() / Median(dec_t) / 1e6,
                   static_cast<double>(data.size()) / encoded.size()});
  }
  return out;
}

}  // namespace jigsaw
