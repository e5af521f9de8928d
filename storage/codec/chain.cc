// CodecChain: parsing codec lists (v3 "codecs", v2 compressor/filters/order), and running them.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "storage/codec/codec.h"
#include "storage/codec/crc32c.h"
#include "storage/codec/json_fields.h"

namespace jigsaw {

Result<std::unique_ptr<BytesCodec>> BloscFromV3(const json& config, int item_size);
Result<std::unique_ptr<BytesCodec>> BloscFromV2(const json& config, int item_size);

int64_t ChunkLayout::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Status BytesCodec::EncodeInto(std::string_view decoded, std::string* out) const {
  ASSIGN_OR_RETURN(*out, Encode(decoded));
  return OkStatus();
}

Status BytesCodec::DecodeInto(std::string_view encoded, std::span<char> out) const {
  ASSIGN_OR_RETURN(std::string s, Decode(encoded, out.size()));
  if (s.size() != out.size()) {
    return DataLossError(name() + ": " + std::to_string(s.size()) + " decoded bytes, expected " +
                         std::to_string(out.size()));
  }
  std::memcpy(out.data(), s.data(), s.size());
  return OkStatus();
}

Result<json> BytesCodec::ToV2() const {
  return UnimplementedError("codec " + name() + " has no Zarr v2 (numcodecs) form");
}

// ---- sharding index ----

Result<std::vector<ShardingSpec::Entry>> ShardingSpec::DecodeIndex(std::string_view bytes, int64_t num_inner,
                                                                   int64_t shard_size) const {
  if (static_cast<int64_t>(bytes.size()) != IndexBytes(num_inner)) {
    return DataLossError("shard index has " + std::to_string(bytes.size()) + " bytes, expected " +
                         std::to_string(IndexBytes(num_inner)));
  }
  if (index_crc32c) {
    uint32_t stored;
    std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);  // little endian, as on every target we build
    if (Crc32c(bytes.substr(0, bytes.size() - 4)) != stored) return DataLossError("shard index crc32c mismatch");
  }
  std::vector<Entry> out(num_inner);
  for (int64_t i = 0; i < num_inner; ++i) {
    uint64_t v[2];
    std::memcpy(v, bytes.data() + i * 16, 16);
    if (index_big_endian) {
      v[0] = __builtin_bswap64(v[0]);
      v[1] = __builtin_bswap64(v[1]);
    }
    out[i] = {v[0], v[1]};
    if (out[i].empty()) continue;
    if (v[0] > static_cast<uint64_t>(shard_size) || v[1] > static_cast<uint64_t>(shard_size) - v[0]) {
      return DataLossError("shard index entry " + std::to_string(i) + " (offset " + std::to_string(v[0]) + ", " +
                           std::to_string(v[1]) + " bytes) points outside the " + std::to_string(shard_size) +
                           "-byte shard");
    }
  }
  return out;
}

std::string ShardingSpec::EncodeIndex(const std::vector<Entry>& entries) const {
  std::string out(entries.size() * 16, '\0');
  for (size_t i = 0; i < entries.size(); ++i) {
    uint64_t v[2] = {entries[i].offset, entries[i].nbytes};
    if (index_big_endian) {
      v[0] = __builtin_bswap64(v[0]);
      v[1] = __builtin_bswap64(v[1]);
    }
    std::memcpy(out.data() + i * 16, v, 16);
  }
  if (index_crc32c) return NewCrc32cCodec()->Encode(out).value();
  return out;
}

// ---- box copies ----

namespace {

std::vector<int64_t> ChunkGrid(std::span<const int64_t> shape, std::span<const int64_t> inner) {
  std::vector<int64_t> g(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) g[i] = shape[i] / inner[i];
  return g;
}

std::vector<int64_t> UnravelIndex(int64_t i, std::span<const int64_t> grid) {
  std::vector<int64_t> idx(grid.size());
  for (size_t d = grid.size(); d-- > 0;) {
    idx[d] = i % grid[d];
    i /= grid[d];
  }
  return idx;
}

Status NeedObject(const json& j, std::string_view what) {
  if (!j.is_object()) return InvalidArgumentError(std::string(what) + " must be a JSON object");
  return OkStatus();
}

}  // namespace

Result<std::string> CodecChain::EncodeShard(std::string_view decoded) const {
  const ShardingSpec& sh = *sharding_;
  const ChunkLayout& inner = sh.inner->layout();
  std::vector<int64_t> shape = layout_.shape;
  if (!transpose_.empty())
    for (size_t i = 0; i < shape.size(); ++i) shape[i] = layout_.shape[transpose_[i]];
  auto grid = ChunkGrid(shape, sh.inner_shape);
  int64_t count = std::accumulate(grid.begin(), grid.end(), int64_t{1}, std::multiplies<>());
  std::vector<ShardingSpec::Entry> entries(count);
  std::string data, tmp(inner.num_bytes(), '\0');
  const std::vector<int64_t> zeros(shape.size(), 0);
  const int64_t index_bytes = sh.IndexBytes(count);
  const int64_t base = sh.index_at_end ? 0 : index_bytes;
  for (int64_t i = 0; i < count; ++i) {
    auto idx = UnravelIndex(i, grid);
    for (size_t d = 0; d < idx.size(); ++d) idx[d] *= sh.inner_shape[d];
    CopyBox(decoded.data(), shape, idx, tmp.data(), sh.inner_shape, zeros, sh.inner_shape, layout_.item_size);
    if (AllEqualTo(tmp, layout_.fill)) continue;
    ASSIGN_OR_RETURN(std::string enc, sh.inner->Encode(tmp));
    entries[i] = {static_cast<uint64_t>(base + data.size()), enc.size()};
    data += enc;
  }
  std::string index = sh.EncodeIndex(entries);
  return sh.index_at_end ? data + index : index + data;
}

Status CodecChain::DecodeShard(std::string_view shard, std::span<char> out) const {
  const ShardingSpec& sh = *sharding_;
  std::vector<int64_t> shape = layout_.shape;
  if (!transpose_.empty())
    for (size_t i = 0; i < shape.size(); ++i) shape[i] = layout_.shape[transpose_[i]];
  auto grid = ChunkGrid(shape, sh.inner_shape);
  int64_t count = std::accumulate(grid.begin(), grid.end(), int64_t{1}, std::multiplies<>());
  const int64_t index_bytes = sh.IndexBytes(count);
  if (static_cast<int64_t>(shard.size()) < index_bytes) {
    return DataLossError("shard of " + std::to_string(shard.size()) + " bytes is shorter than its " +
                         std::to_string(index_bytes) + "-byte index");
  }
  std::string_view index = sh.index_at_end ? shard.substr(shard.size() - index_bytes) : shard.substr(0, index_bytes);
  ASSIGN_OR_RETURN(auto entries, sh.DecodeIndex(index, count, shard.size()));
  std::string tmp(sh.inner->layout().num_bytes(), '\0');
  const std::vector<int64_t> zeros(shape.size(), 0);
  for (int64_t i = 0; i < count; ++i) {
    if (entries[i].empty()) {
      FillWith(tmp, layout_.fill);
    } else {
      RETURN_IF_ERROR(sh.inner->Decode(shard.substr(entries[i].offset, entries[i].nbytes), tmp)
                          .Annotate("inner chunk " + std::to_string(i)));
    }
    auto idx = UnravelIndex(i, grid);
    for (size_t d = 0; d < idx.size(); ++d) idx[d] *= sh.inner_shape[d];
    CopyBox(tmp.data(), sh.inner_shape, zeros, out.data(), shape, idx, sh.inner_shape, layout_.item_size);
  }
  return OkStatus();
}

// ---- the chain ----

std::shared_ptr<const CodecChain> CodecChain::Make(ChunkLayout layout, std::vector<int> transpose, bool big_endian,
                                                   std::vector<std::unique_ptr<BytesCodec>> codecs,
                                                   std::unique_ptr<ShardingSpec> sharding) {
  auto c = std::shared_ptr<CodecChain>(new CodecChain());
  c->layout_ = std::move(layout);
  bool identity = true;
  for (size_t i = 0; i < transpose.size(); ++i) identity &= transpose[i] == static_cast<int>(i);
  if (!identity) c->transpose_ = std::move(transpose);
  c->big_endian_ = big_endian && c->layout_.swap_unit() > 1;
  c->codecs_ = std::move(codecs);
  c->sharding_ = std::move(sharding);
  return c;
}

Result<std::string> CodecChain::EncodeArray(std::string_view decoded) const {
  std::string buf;
  if (!transpose_.empty()) {
    buf.resize(decoded.size());
    TransposeCopy(decoded.data(), buf.data(), layout_.shape, transpose_, layout_.item_size);
  } else {
    buf.assign(decoded);
  }
  if (sharding_) return EncodeShard(buf);
  if (big_endian_) ByteSwapInPlace(buf, layout_.swap_unit());
  return buf;
}

Result<std::string> CodecChain::Encode(std::string_view decoded) const {
  std::string out;
  RETURN_IF_ERROR(Encode(decoded, &out));
  return out;
}

Status CodecChain::Encode(std::string_view decoded, std::string* out) const {
  if (static_cast<int64_t>(decoded.size()) != layout_.num_bytes()) {
    return InternalError("encode: chunk buffer has the wrong size");
  }
  if (transpose_.empty() && !sharding_ && !big_endian_ && !codecs_.empty()) {
    // The first codec reads the caller's bytes directly (no copy of the chunk) into the caller's buffer.
    RETURN_IF_ERROR(codecs_[0]->EncodeInto(decoded, out));
    for (size_t i = 1; i < codecs_.size(); ++i) {
      ASSIGN_OR_RETURN(*out, codecs_[i]->Encode(*out));
    }
    return OkStatus();
  }
  ASSIGN_OR_RETURN(*out, EncodeArray(decoded));
  for (const auto& c : codecs_) {
    ASSIGN_OR_RETURN(*out, c->Encode(*out));
  }
  return OkStatus();
}

Status CodecChain::DecodeArray(std::string_view bytes, std::span<char> out) const {
  std::string permuted;
  std::span<char> target = out;
  if (!transpose_.empty()) {
    permuted.resize(out.size());
    target = permuted;
  }
  if (sharding_) {
    RETURN_IF_ERROR(DecodeShard(bytes, target));
  } else {
    if (bytes.size() != target.size()) {
      return DataLossError("decoded chunk has " + std::to_string(bytes.size()) + " bytes, expected " +
                           std::to_string(target.size()));
    }
    std::memcpy(target.data(), bytes.data(), bytes.size());
    if (big_endian_) ByteSwapInPlace(target, layout_.swap_unit());
  }
  if (!transpose_.empty()) {
    std::vector<int64_t> eshape(layout_.shape.size());
    std::vector<int> inverse(transpose_.size());
    for (size_t i = 0; i < transpose_.size(); ++i) {
      eshape[i] = layout_.shape[transpose_[i]];
      inverse[transpose_[i]] = static_cast<int>(i);
    }
    TransposeCopy(permuted.data(), out.data(), eshape, inverse, layout_.item_size);
  }
  return OkStatus();
}

Status CodecChain::Decode(std::string_view encoded, std::span<char> out) const {
  if (static_cast<int64_t>(out.size()) != layout_.num_bytes()) return InternalError("decode: wrong buffer size");
  const bool direct = transpose_.empty() && !big_endian_ && !sharding_;
  if (codecs_.empty()) return DecodeArray(encoded, out);
  // A trailing crc32c (on every chunk jigsaw-shard writes) is checked and stripped in place: no copy of the
  // chunk for it.
  size_t n = codecs_.size();
  while (n > 1 && codecs_[n - 1]->name() == "crc32c") {
    RETURN_IF_ERROR(CheckCrc32cSuffix(encoded));
    encoded.remove_suffix(4);
    --n;
  }
  if (direct && n == 1) return codecs_[0]->DecodeInto(encoded, out);
  const size_t array_bound = sharding_ ? static_cast<size_t>(2 * layout_.num_bytes() + (1 << 20)) : out.size();
  const size_t stage_bound = array_bound + (1 << 16);
  std::string cur(encoded);
  for (size_t i = n; i-- > 1;) {
    ASSIGN_OR_RETURN(cur, codecs_[i]->Decode(cur, stage_bound));
  }
  if (direct) return codecs_[0]->DecodeInto(cur, out);
  ASSIGN_OR_RETURN(cur, codecs_[0]->Decode(cur, array_bound));
  return DecodeArray(cur, out);
}

json CodecChain::ToV3() const {
  json codecs = json::array();
  if (!transpose_.empty()) codecs.push_back({{"name", "transpose"}, {"configuration", {{"order", transpose_}}}});
  if (sharding_) {
    json index = json::array(
        {{{"name", "bytes"}, {"configuration", {{"endian", sharding_->index_big_endian ? "big" : "little"}}}}});
    if (sharding_->index_crc32c) index.push_back({{"name", "crc32c"}});
    codecs.push_back({{"name", "sharding_indexed"},
                      {"configuration",
                       {{"chunk_shape", sharding_->inner_shape},
                        {"codecs", sharding_->inner->ToV3()},
                        {"index_codecs", index},
                        {"index_location", sharding_->index_at_end ? "end" : "start"}}}});
  } else {
    json bytes = {{"name", "bytes"}};
    if (layout_.item_size > 1) bytes["configuration"] = {{"endian", big_endian_ ? "big" : "little"}};
    codecs.push_back(bytes);
  }
  for (const auto& c : codecs_) codecs.push_back(c->ToV3());
  return codecs;
}

Status CodecChain::ToV2(json* compressor, json* filters, char* order, bool* big_endian) const {
  if (sharding_) return UnimplementedError("sharding has no Zarr v2 form");
  if (codecs_.size() > 1) return UnimplementedError("more than one compressor has no Zarr v2 form");
  *order = 'C';
  if (!transpose_.empty()) {
    for (size_t i = 0; i < transpose_.size(); ++i)
      if (transpose_[i] != static_cast<int>(transpose_.size() - 1 - i))
        return UnimplementedError("a transpose other than F order has no Zarr v2 form");
    *order = 'F';
  }
  *filters = nullptr;
  *big_endian = big_endian_;
  if (codecs_.empty()) {
    *compressor = nullptr;
  } else {
    ASSIGN_OR_RETURN(*compressor, codecs_[0]->ToV2());
  }
  return OkStatus();
}

std::string CodecChain::Describe() const {
  std::string s;
  if (!transpose_.empty()) s += "transpose -> ";
  if (sharding_) {
    s += "sharding[";
    for (size_t i = 0; i < sharding_->inner_shape.size(); ++i)
      s += (i ? "x" : "") + std::to_string(sharding_->inner_shape[i]);
    s += ": " + sharding_->inner->Describe() + "]";
  } else {
    s += big_endian_ ? "bytes(be)" : "bytes(le)";
  }
  for (const auto& c : codecs_) s += " -> " + c->name();
  return s;
}

// ---- parsing ----

Result<std::unique_ptr<BytesCodec>> BytesCodecFromV3(const json& codec, int item_size) {
  std::string name = codec.is_string() ? codec.get<std::string>() : codec.value("name", "");
  json config = codec.is_object() ? codec.value("configuration", json::object()) : json::object();
  if (name == "blosc") return BloscFromV3(config, item_size);
  if (name == "zstd") {
    ASSIGN_OR_RETURN(int64_t level, IntField(config, "level", 0, -131072, 22));
    return NewZstdCodec(static_cast<int>(level), config.value("checksum", false));
  }
  if (name == "gzip" || name == "numcodecs.zlib" || name == "zlib") {
    ASSIGN_OR_RETURN(int64_t level, IntField(config, "level", 5, 0, 9));
    return name == "gzip" ? NewGzipCodec(static_cast<int>(level)) : NewZlibCodec(static_cast<int>(level));
  }
  if (name == "crc32c") return NewCrc32cCodec();
  return UnimplementedError("unsupported codec \"" + name + "\"");
}

Result<std::unique_ptr<BytesCodec>> BytesCodecFromV2(const json& compressor, int item_size) {
  RETURN_IF_ERROR(NeedObject(compressor, "compressor"));
  std::string id = compressor.value("id", "");
  if (id == "blosc") return BloscFromV2(compressor, item_size);
  if (id == "zstd") {
    ASSIGN_OR_RETURN(int64_t level, IntField(compressor, "level", 1, -131072, 22));
    return NewZstdCodec(static_cast<int>(level), compressor.value("checksum", false));
  }
  if (id == "gzip" || id == "zlib") {
    ASSIGN_OR_RETURN(int64_t level, IntField(compressor, "level", 1, 0, 9));
    return id == "gzip" ? NewGzipCodec(static_cast<int>(level)) : NewZlibCodec(static_cast<int>(level));
  }
  return UnimplementedError("unsupported numcodecs compressor \"" + id + "\"");
}

Result<std::unique_ptr<BytesCodec>> BytesCodecFromName(std::string_view name, int item_size) {
  if (name == "none") return std::unique_ptr<BytesCodec>();
  if (name.starts_with("blosc-")) {
    std::string cname(name.substr(6));
    return NewBloscCodec(cname, cname == "zstd" || cname == "zlib" ? 3 : 5, item_size == 1 ? 2 : 1, item_size, 0);
  }
  if (name == "zstd") return NewZstdCodec(3, false);
  if (name == "gzip") return NewGzipCodec(5);
  if (name == "zlib") return NewZlibCodec(5);
  return InvalidArgumentError("unknown codec \"" + std::string(name) +
                              "\" (choose blosc-lz4, blosc-lz4hc, blosc-zstd, blosc-zlib, blosc-blosclz, zstd, "
                              "gzip, zlib or none)");
}

namespace {

Result<std::shared_ptr<const CodecChain>> ParseV3(const json& codecs, const ChunkLayout& layout) {
  if (!codecs.is_array() || codecs.empty()) return InvalidArgumentError("\"codecs\" must be a non-empty list");
  std::vector<int> transpose;
  std::vector<int64_t> shape = layout.shape;
  bool have_array_to_bytes = false, big_endian = false;
  std::unique_ptr<ShardingSpec> sharding;
  std::vector<std::unique_ptr<BytesCodec>> bytes_codecs;
  for (const json& c : codecs) {
    std::string name = c.is_string() ? c.get<std::string>() : c.is_object() ? c.value("name", "") : "";
    if (name.empty()) return InvalidArgumentError("codec without a name: " + c.dump());
    json config = c.is_object() ? c.value("configuration", json::object()) : json::object();
    RETURN_IF_ERROR(NeedObject(config, "codec configuration"));
    if (name == "transpose") {
      if (have_array_to_bytes) return InvalidArgumentError("transpose must come before the bytes codec");
      if (!transpose.empty()) return UnimplementedError("more than one transpose codec");
      const json& order = config.at("order");
      if (order.is_string()) {
        transpose.resize(shape.size());
        std::iota(transpose.begin(), transpose.end(), 0);
        if (order == "F") std::reverse(transpose.begin(), transpose.end());
      } else {
        ASSIGN_OR_RETURN(auto o, IntList(order, "transpose order", 0, 64));
        transpose.assign(o.begin(), o.end());
      }
      std::vector<int> sorted = transpose;
      std::sort(sorted.begin(), sorted.end());
      for (size_t i = 0; i < sorted.size(); ++i)
        if (sorted[i] != static_cast<int>(i) || sorted.size() != shape.size())
          return InvalidArgumentError("transpose order " + order.dump() + " is not a permutation of the dimensions");
      std::vector<int64_t> permuted(shape.size());
      for (size_t i = 0; i < shape.size(); ++i) permuted[i] = shape[transpose[i]];
      shape = permuted;
    } else if (name == "bytes") {
      if (have_array_to_bytes) return InvalidArgumentError("more than one array->bytes codec");
      have_array_to_bytes = true;
      std::string endian = config.value("endian", "little");
      if (endian != "little" && endian != "big") return InvalidArgumentError("bytes: bad endian \"" + endian + "\"");
      big_endian = endian == "big";
    } else if (name == "sharding_indexed") {
      if (have_array_to_bytes) return InvalidArgumentError("more than one array->bytes codec");
      have_array_to_bytes = true;
      auto sh = std::make_unique<ShardingSpec>();
      ASSIGN_OR_RETURN(sh->inner_shape, IntList(config.at("chunk_shape"), "sharding chunk_shape", 1));
      if (sh->inner_shape.size() != shape.size())
        return InvalidArgumentError("sharding: chunk_shape rank differs from the array's");
      for (size_t i = 0; i < shape.size(); ++i)
        if (sh->inner_shape[i] <= 0 || shape[i] % sh->inner_shape[i] != 0)
          return InvalidArgumentError("sharding: inner chunk shape does not divide the shard shape");
      std::string loc = config.value("index_location", "end");
      if (loc != "end" && loc != "start") return InvalidArgumentError("sharding: bad index_location \"" + loc + "\"");
      sh->index_at_end = loc == "end";
      const json& index_codecs = config.value("index_codecs", json::array({{{"name", "bytes"}}, {{"name", "crc32c"}}}));
      sh->index_crc32c = false;
      bool index_bytes = false;
      for (const json& ic : index_codecs) {
        std::string iname = ic.is_string() ? ic.get<std::string>() : ic.value("name", "");
        if (iname == "bytes" && !index_bytes) {
          index_bytes = true;
          json icfg = ic.is_object() ? ic.value("configuration", json::object()) : json::object();
          sh->index_big_endian = icfg.value("endian", "little") == "big";
        } else if (iname == "crc32c" && index_bytes && !sh->index_crc32c) {
          sh->index_crc32c = true;
        } else {
          return UnimplementedError("sharding: index codecs other than bytes[+crc32c]: " + index_codecs.dump());
        }
      }
      if (!index_bytes) return InvalidArgumentError("sharding: index_codecs lack the bytes codec");
      ChunkLayout inner{sh->inner_shape, layout.item_size, layout.fill, layout.swap_size};
      ASSIGN_OR_RETURN(sh->inner, ParseV3(config.at("codecs"), inner));
      sharding = std::move(sh);
    } else {
      if (!have_array_to_bytes) return InvalidArgumentError("codec \"" + name + "\" must follow the bytes codec");
      ASSIGN_OR_RETURN(auto bc, BytesCodecFromV3(c, layout.item_size));
      bytes_codecs.push_back(std::move(bc));
    }
  }
  if (!have_array_to_bytes) return InvalidArgumentError("codecs lack an array->bytes codec (\"bytes\")");
  return CodecChain::Make(layout, transpose, big_endian, std::move(bytes_codecs), std::move(sharding));
}

}  // namespace

Result<std::shared_ptr<const CodecChain>> CodecChain::FromV3(const json& codecs, const ChunkLayout& layout) {
  try {
    return ParseV3(codecs, layout);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("malformed codec configuration: ") + e.what());
  }
}

Result<std::shared_ptr<const CodecChain>> CodecChain::FromV2(const json& compressor, const json& filters,
                                                             bool big_endian, char order, const ChunkLayout& layout) {
  try {
    if (!filters.is_null() && !(filters.is_array() && filters.empty())) {
      return UnimplementedError("Zarr v2 filters are not supported: " + filters.dump());
    }
    std::vector<int> transpose;
    if (order == 'F') {
      transpose.resize(layout.shape.size());
      std::iota(transpose.rbegin(), transpose.rend(), 0);
    } else if (order != 'C') {
      return InvalidArgumentError(std::string("unknown order \"") + order + "\"");
    }
    std::vector<std::unique_ptr<BytesCodec>> codecs;
    if (!compressor.is_null()) {
      ASSIGN_OR_RETURN(auto c, BytesCodecFromV2(compressor, layout.item_size));
      codecs.push_back(std::move(c));
    }
    return Make(layout, transpose, big_endian, std::move(codecs));
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("malformed compressor: ") + e.what());
  }
}

}  // namespace jigsaw
