#include "storage/zarr/metadata.h"

#include <charconv>

#include "storage/codec/json_fields.h"

namespace jigsaw {

std::vector<int64_t> ArrayMetadata::grid() const {
  std::vector<int64_t> g(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) g[i] = (shape[i] + chunks[i] - 1) / chunks[i];
  return g;
}

int64_t ArrayMetadata::num_chunks() const {
  int64_t n = 1;
  for (int64_t g : grid()) n *= g;
  return n;
}

std::string ArrayMetadata::ChunkKey(std::span<const int64_t> index) const {
  std::string key = zarr_format == 3 && !v2_key_encoding ? "c" : "";
  if (index.empty()) return key.empty() ? "0" : key;
  for (size_t i = 0; i < index.size(); ++i) {
    if (!key.empty()) key += separator;
    key += std::to_string(index[i]);
  }
  return key;
}

std::optional<std::vector<int64_t>> ArrayMetadata::ParseChunkKey(std::string_view key) const {
  if (zarr_format == 3 && !v2_key_encoding) {
    if (!key.starts_with("c")) return std::nullopt;
    key.remove_prefix(1);
    if (shape.empty()) return key.empty() ? std::optional(std::vector<int64_t>{}) : std::nullopt;
    if (key.empty() || key[0] != separator) return std::nullopt;
    key.remove_prefix(1);
  } else if (shape.empty()) {
    return key == "0" ? std::optional(std::vector<int64_t>{}) : std::nullopt;
  }
  std::vector<int64_t> idx;
  while (true) {
    size_t end = key.find(separator);
    std::string_view part = key.substr(0, end);
    int64_t v;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || part.empty()) return std::nullopt;
    idx.push_back(v);
    if (end == std::string_view::npos) break;
    key.remove_prefix(end + 1);
  }
  if (idx.size() != shape.size()) return std::nullopt;
  return idx;
}

Result<json> ParseJson(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(std::string(what) + ": malformed JSON");
  return j;
}

Result<json> ParseStoredJson(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DataLossError(std::string(what) + ": malformed JSON");
  return j;
}

namespace {

Status CheckShapes(const ArrayMetadata& m) {
  if (m.chunks.size() != m.shape.size()) {
    return InvalidArgumentError("chunk shape has " + std::to_string(m.chunks.size()) + " dimensions, shape has " +
                                std::to_string(m.shape.size()));
  }
  for (size_t i = 0; i < m.shape.size(); ++i) {
    if (m.shape[i] < 0) return InvalidArgumentError("negative shape");
    if (m.chunks[i] <= 0) return InvalidArgumentError("chunk lengths must be positive");
  }
  // A chunk must fit in memory and in blosc's 2 GiB limit with room to spare.
  int64_t elements = 1;
  for (int64_t c : m.chunks) {
    if (c > (int64_t{1} << 40) / elements) return InvalidArgumentError("chunk shape too large");
    elements *= c;
  }
  if (elements * m.dtype.size > (int64_t{1} << 31)) return InvalidArgumentError("chunks over 2 GiB are not supported");
  if (!m.dimension_names.empty() && m.dimension_names.size() != m.shape.size()) {
    return InvalidArgumentError("dimension_names has the wrong length");
  }
  return OkStatus();
}

std::vector<std::string> NamesFromJson(const json& j) {
  std::vector<std::string> names;
  for (const json& n : j) names.push_back(n.is_string() ? n.get<std::string>() : "");
  return names;
}

Result<ArrayMetadata> ParseV3(const json& j) {
  if (!j.is_object()) return InvalidArgumentError("zarr.json is not an object");
  if (j.value("zarr_format", json()) != 3) return InvalidArgumentError("zarr_format is not 3");
  if (j.value("node_type", "") != "array") return InvalidArgumentError("node_type is not \"array\"");
  ArrayMetadata m;
  m.zarr_format = 3;
  ASSIGN_OR_RETURN(m.shape, IntList(j.at("shape"), "shape"));
  const json& dt = j.at("data_type");
  ASSIGN_OR_RETURN(m.dtype, DataTypeFromV3(dt));
  const json& grid = j.at("chunk_grid");
  if (grid.value("name", "") != "regular") {
    return UnimplementedError("chunk grid \"" + grid.value("name", "") + "\" (only \"regular\" is supported)");
  }
  ASSIGN_OR_RETURN(m.chunks, IntList(grid.at("configuration").at("chunk_shape"), "chunk_shape"));
  json cke = j.value("chunk_key_encoding", json{{"name", "default"}});
  std::string enc = cke.value("name", "default");
  json cfg = cke.value("configuration", json::object());
  if (enc == "default") {
    m.separator = cfg.value("separator", "/")[0];
  } else if (enc == "v2") {
    m.v2_key_encoding = true;
    m.separator = cfg.value("separator", ".")[0];
  } else {
    return UnimplementedError("chunk key encoding \"" + enc + "\"");
  }
  if (m.separator != '/' && m.separator != '.') return InvalidArgumentError("chunk key separator must be '/' or '.'");
  if (j.contains("storage_transformers") && !j["storage_transformers"].empty()) {
    return UnimplementedError("storage transformers are not supported");
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_object() && v.contains("must_understand") && v["must_understand"] != false && k != "chunk_grid" &&
        k != "chunk_key_encoding" && k != "data_type") {
      return UnimplementedError("unknown extension \"" + k + "\" that must be understood");
    }
  }
  if (j.contains("dimension_names") && !j["dimension_names"].is_null())
    m.dimension_names = NamesFromJson(j["dimension_names"]);
  m.attributes = j.value("attributes", json::object());
  RETURN_IF_ERROR(CheckShapes(m));
  ASSIGN_OR_RETURN(m.fill, ParseFillValue(j.at("fill_value"), m.dtype));
  ASSIGN_OR_RETURN(m.codecs, CodecChain::FromV3(j.at("codecs"), m.chunk_layout()));
  return m;
}

Result<ArrayMetadata> ParseV2(const json& j, const json& attrs) {
  if (!j.is_object()) return InvalidArgumentError(".zarray is not an object");
  if (j.value("zarr_format", json()) != 2) return InvalidArgumentError("zarr_format is not 2");
  ArrayMetadata m;
  m.zarr_format = 2;
  ASSIGN_OR_RETURN(m.shape, IntList(j.at("shape"), "shape"));
  ASSIGN_OR_RETURN(m.chunks, IntList(j.at("chunks"), "chunks"));
  bool big_endian = false;
  const json& dt = j.at("dtype");
  if (!dt.is_string()) return UnimplementedError("structured dtypes are not supported: " + dt.dump());
  ASSIGN_OR_RETURN(m.dtype, DataTypeFromV2(dt.get<std::string>(), &big_endian));
  std::string sep = j.value("dimension_separator", ".");
  if (sep != "." && sep != "/") return InvalidArgumentError("dimension_separator must be \".\" or \"/\"");
  m.separator = sep[0];
  m.attributes = attrs.is_object() ? attrs : json::object();
  if (m.attributes.contains("_ARRAY_DIMENSIONS")) m.dimension_names = NamesFromJson(m.attributes["_ARRAY_DIMENSIONS"]);
  RETURN_IF_ERROR(CheckShapes(m));
  const json& fv = j.at("fill_value");
  m.fill_null = fv.is_null();
  ASSIGN_OR_RETURN(m.fill, ParseFillValue(fv, m.dtype));
  std::string order = j.value("order", "C");
  if (order != "C" && order != "F") return InvalidArgumentError("order must be \"C\" or \"F\"");
  ASSIGN_OR_RETURN(m.codecs, CodecChain::FromV2(j.value("compressor", json()), j.value("filters", json()), big_endian,
                                                order[0], m.chunk_layout()));
  return m;
}

}  // namespace

Result<ArrayMetadata> ParseArrayMetadataV3(const json& j) {
  try {
    return ParseV3(j);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("malformed array metadata: ") + e.what());
  }
}

Result<ArrayMetadata> ParseArrayMetadataV2(const json& j, const json& attrs) {
  try {
    return ParseV2(j, attrs);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("malformed array metadata: ") + e.what());
  }
}

json ArrayMetadataToV3(const ArrayMetadata& m) {
  json j = {{"zarr_format", 3},
            {"node_type", "array"},
            {"shape", m.shape},
            {"data_type", DataTypeToV3(m.dtype)},
            {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", m.chunks}}}}},
            {"chunk_key_encoding",
             {{"name", m.v2_key_encoding ? "v2" : "default"},
              {"configuration", {{"separator", std::string(1, m.separator)}}}}},
            {"fill_value", FillValueToJson(m.fill, m.dtype)},
            {"codecs", m.codecs->ToV3()},
            {"attributes", m.attributes}};
  j["attributes"].erase("_ARRAY_DIMENSIONS");
  if (!m.dimension_names.empty()) {
    json names = json::array();
    for (const auto& n : m.dimension_names) names.push_back(n.empty() ? json() : json(n));
    j["dimension_names"] = names;
  }
  return j;
}

Status ArrayMetadataToV2(const ArrayMetadata& m, json* zarray, json* zattrs) {
  json compressor, filters;
  char order;
  bool big_endian;
  RETURN_IF_ERROR(m.codecs->ToV2(&compressor, &filters, &order, &big_endian));
  ASSIGN_OR_RETURN(std::string dtype, V2TypeString(m.dtype, big_endian));
  *zarray = {{"zarr_format", 2},
             {"shape", m.shape},
             {"chunks", m.chunks},
             {"dtype", dtype},
             {"compressor", compressor},
             {"fill_value", m.fill_null ? json() : FillValueToJson(m.fill, m.dtype)},
             {"order", std::string(1, order)},
             {"filters", filters},
             {"dimension_separator", std::string(1, m.separator)}};
  *zattrs = m.attributes;
  if (!m.dimension_names.empty()) (*zattrs)["_ARRAY_DIMENSIONS"] = m.dimension_names;
  return OkStatus();
}

Result<ArrayMetadata> MakeArrayMetadata(const ArraySpec& s) {
  ArrayMetadata m;
  m.zarr_format = s.zarr_format;
  m.shape = s.shape;
  m.dtype = s.dtype;
  m.chunks = s.shard.empty() ? s.chunks : s.shard;
  m.separator = s.separator ? s.separator : (s.zarr_format == 3 ? '/' : '.');
  m.dimension_names = s.dimension_names;
  m.attributes = s.attributes;
  m.fill_null = s.fill_value.is_null() && s.zarr_format == 2;
  RETURN_IF_ERROR(CheckShapes(m));
  if (s.chunks.size() != s.shape.size()) return InvalidArgumentError("chunk shape rank differs from the array's");
  ASSIGN_OR_RETURN(m.fill, ParseFillValue(s.fill_value, s.dtype));
  auto codecs_for = [&]() -> Result<std::vector<std::unique_ptr<BytesCodec>>> {
    std::vector<std::unique_ptr<BytesCodec>> v;
    ASSIGN_OR_RETURN(auto c, BytesCodecFromName(s.codec, s.dtype.size));
    if (c) v.push_back(std::move(c));
    if (s.crc32c) v.push_back(NewCrc32cCodec());
    return v;
  };
  if (s.zarr_format == 2 && (!s.shard.empty() || s.crc32c)) {
    return InvalidArgumentError("sharding and crc32c need Zarr v3 (--format zarr3)");
  }
  ASSIGN_OR_RETURN(auto codecs, codecs_for());
  if (s.shard.empty()) {
    m.codecs = CodecChain::Make(m.chunk_layout(), {}, s.big_endian, std::move(codecs));
    return m;
  }
  for (size_t i = 0; i < s.shard.size(); ++i) {
    if (i >= s.chunks.size() || s.chunks[i] <= 0 || s.shard[i] % s.chunks[i] != 0) {
      return InvalidArgumentError("shard shape must be a multiple of the chunk shape in every dimension");
    }
  }
  auto sh = std::make_unique<ShardingSpec>();
  sh->inner_shape = s.chunks;
  sh->inner =
      CodecChain::Make({s.chunks, s.dtype.size, m.fill, s.dtype.swap_size()}, {}, s.big_endian, std::move(codecs));
  m.codecs = CodecChain::Make(m.chunk_layout(), {}, false, {}, std::move(sh));
  return m;
}

}  // namespace jigsaw
