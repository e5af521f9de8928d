// Zarr codecs. A chunk is encoded by a chain: array->array codecs (transpose), one array->bytes codec
// (bytes, or sharding_indexed), then bytes->bytes codecs (blosc, zstd, gzip, zlib, crc32c).
//
// Decoding is bounded: every decoder is told how many bytes the result may have and reports kDataLoss,
// without allocating, when a header claims more. Codec objects are immutable and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

using json = nlohmann::json;

// What a codec needs to know about the array chunk it encodes.
struct ChunkLayout {
  std::vector<int64_t> shape;
  int item_size = 1;
  std::string fill;   // one element, native byte order (item_size bytes)
  int swap_size = 0;  // the unit a byte-order change reverses (0: item_size; 4 for UTF-32 text)
  int swap_unit() const { return swap_size ? swap_size : item_size; }
  int64_t num_elements() const;
  int64_t num_bytes() const { return num_elements() * item_size; }
};

class BytesCodec {
 public:
  virtual ~BytesCodec() = default;
  virtual Result<std::string> Encode(std::string_view decoded) const = 0;
  // As Encode, into *out, reusing its capacity (writers keep one buffer per thread and so take no
  // allocation and page faults per chunk). The default calls Encode.
  virtual Status EncodeInto(std::string_view decoded, std::string* out) const;
  // Decodes into at most `max_size` bytes.
  virtual Result<std::string> Decode(std::string_view encoded, size_t max_size) const = 0;
  // Decodes into `out`, which must be filled exactly (the fast path for the last stage).
  virtual Status DecodeInto(std::string_view encoded, std::span<char> out) const;
  // Bytes the codec adds to any input when that is fixed (crc32c: 4), else -1.
  virtual int64_t fixed_overhead() const { return -1; }
  virtual json ToV3() const = 0;
  // numcodecs form for a Zarr v2 compressor, or kUnimplemented.
  virtual Result<json> ToV2() const;
  virtual std::string name() const = 0;
};

// Factories (one file each). `item_size` is the array's element size, used as blosc's default typesize.
Result<std::unique_ptr<BytesCodec>> NewBloscCodec(std::string cname, int clevel, int shuffle, int typesize,
                                                  int64_t blocksize);  // shuffle: 0 none, 1 byte, 2 bit
Result<std::unique_ptr<BytesCodec>> NewZstdCodec(int level, bool checksum);
Result<std::unique_ptr<BytesCodec>> NewGzipCodec(int level);  // gzip framing (RFC 1952)
Result<std::unique_ptr<BytesCodec>> NewZlibCodec(int level);  // zlib framing (RFC 1950)
std::unique_ptr<BytesCodec> NewCrc32cCodec();

Result<std::unique_ptr<BytesCodec>> BytesCodecFromV3(const json& codec, int item_size);
Result<std::unique_ptr<BytesCodec>> BytesCodecFromV2(const json& compressor, int item_size);

// A named codec choice as given on command lines: blosc-lz4, blosc-lz4hc, blosc-zstd, blosc-zlib,
// blosc-blosclz, zstd, gzip, zlib, none (returns nullptr).
Result<std::unique_ptr<BytesCodec>> BytesCodecFromName(std::string_view name, int item_size);

class CodecChain;

// sharding_indexed: a shard holds inner chunks, each encoded by `inner`, and an index of (offset, nbytes)
// pairs (uint64 little endian, 2^64-1 for an empty inner chunk) encoded by the index codecs.
struct ShardingSpec {
  std::vector<int64_t> inner_shape;
  std::shared_ptr<const CodecChain> inner;
  bool index_crc32c = true;
  bool index_at_end = true;
  bool index_big_endian = false;

  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Entry {
    uint64_t offset = kEmpty;
    uint64_t nbytes = kEmpty;
    bool empty() const { return offset == kEmpty && nbytes == kEmpty; }
  };
  int64_t IndexBytes(int64_t num_inner) const { return num_inner * 16 + (index_crc32c ? 4 : 0); }
  Result<std::vector<Entry>> DecodeIndex(std::string_view bytes, int64_t num_inner, int64_t shard_size) const;
  std::string EncodeIndex(const std::vector<Entry>& entries) const;
};

class CodecChain {
 public:
  // From a v3 "codecs" list for chunks of the given layout.
  static Result<std::shared_ptr<const CodecChain>> FromV3(const json& codecs, const ChunkLayout& layout);
  // From v2 metadata: compressor (or null), filters (null or []), dtype byte order, "C" or "F" order.
  static Result<std::shared_ptr<const CodecChain>> FromV2(const json& compressor, const json& filters, bool big_endian,
                                                          char order, const ChunkLayout& layout);
  // Built directly: optional transpose, endianness, bytes->bytes codecs, optional sharding.
  static std::shared_ptr<const CodecChain> Make(ChunkLayout layout, std::vector<int> transpose, bool big_endian,
                                                std::vector<std::unique_ptr<BytesCodec>> codecs,
                                                std::unique_ptr<ShardingSpec> sharding = nullptr);

  // `decoded` is the chunk in native byte order, C order, exactly layout().num_bytes() bytes.
  Result<std::string> Encode(std::string_view decoded) const;
  // As Encode, into *out, reusing its capacity where the codecs can (see BytesCodec::EncodeInto).
  Status Encode(std::string_view decoded, std::string* out) const;
  // Fills `out` (layout().num_bytes() bytes) from an encoded chunk.
  Status Decode(std::string_view encoded, std::span<char> out) const;

  json ToV3() const;
  // {compressor, filters, order, big_endian} for a .zarray, or kUnimplemented (sharding, crc32c, ...).
  Status ToV2(json* compressor, json* filters, char* order, bool* big_endian) const;

  const ChunkLayout& layout() const { return layout_; }
  const ShardingSpec* sharding() const { return sharding_.get(); }
  bool big_endian() const { return big_endian_; }  // the byte order of the encoded elements
  const std::vector<std::unique_ptr<BytesCodec>>& bytes_codecs() const { return codecs_; }
  // A short human description: "transpose -> bytes(le) -> blosc(lz4,5,shuffle)".
  std::string Describe() const;

 private:
  Result<std::string> EncodeArray(std::string_view decoded) const;  // through the array->bytes stage
  Status DecodeArray(std::string_view bytes, std::span<char> out) const;
  Result<std::string> EncodeShard(std::string_view decoded) const;
  Status DecodeShard(std::string_view shard, std::span<char> out) const;

  ChunkLayout layout_;
  std::vector<int> transpose_;  // empty: none
  bool big_endian_ = false;
  std::vector<std::unique_ptr<BytesCodec>> codecs_;
  std::unique_ptr<ShardingSpec> sharding_;
};

// Helpers shared by the array layer.
void ByteSwapInPlace(std::span<char> data, int item_size);
// Copies the C-order array `in` of `shape` into `out`, permuted so that out dim i = in dim order[i].
void TransposeCopy(const char* in, char* out, std::span<const int64_t> shape, std::span<const int> order,
                   int item_size);
// Fills `data` with repeated copies of the element `fill`.
void FillWith(std::span<char> data, std::string_view fill);
// Fills every element of the C-order array `data` (of `shape`, elements of fill.size() bytes) that lies
// outside the box `extent` at `origin` with `fill`; the box itself is left as it is.
void FillOutside(char* data, std::span<const int64_t> shape, std::span<const int64_t> origin,
                 std::span<const int64_t> extent, std::string_view fill);
// Copies the box `extent` at `src_origin` of the C-order array `src` (shape src_shape) to `dst_origin` of
// the C-order array `dst` (shape dst_shape).
void CopyBox(const char* src, std::span<const int64_t> src_shape, std::span<const int64_t> src_origin, char* dst,
             std::span<const int64_t> dst_shape, std::span<const int64_t> dst_origin, std::span<const int64_t> extent,
             int item_size);
// True when every element of `data` equals `fill` bytewise.
bool AllEqualTo(std::string_view data, std::string_view fill);

}  // namespace jigsaw
