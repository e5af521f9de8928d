#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <tuple>

#include "tests/testing/iota.h"
#include "storage/kvstore/faulty.h"
#include "storage/zarr/array.h"
#include "storage/zarr/group.h"
#include "storage/zarr/npy.h"
#include "storage/zarr/store_ops.h"

namespace jigsaw {
namespace {

DataType F32() { return *DataTypeFromName("float32"); }

using testdata::Iota;

float At(const std::string& s, int64_t i) {
  float f;
  std::memcpy(&f, &s[i * 4], 4);
  return f;
}

TEST(Metadata, ChunkKeys) {
  ArraySpec s;
  s.shape = {10, 10};
  s.chunks = {5, 5};
  s.dtype = F32();
  auto v3 = *MakeArrayMetadata(s);
  std::vector<int64_t> idx = {1, 0};
  EXPECT_EQ(v3.ChunkKey(idx), "c/1/0");
  EXPECT_EQ(*v3.ParseChunkKey("c/1/0"), idx);
  EXPECT_FALSE(v3.ParseChunkKey("c/1").has_value());
  EXPECT_FALSE(v3.ParseChunkKey("1/0").has_value());
  s.zarr_format = 2;
  auto v2 = *MakeArrayMetadata(s);
  EXPECT_EQ(v2.ChunkKey(idx), "1.0");
  EXPECT_EQ(*v2.ParseChunkKey("1.0"), idx);
  EXPECT_FALSE(v2.ParseChunkKey("1.x").has_value());
}

TEST(Metadata, V3RoundTripAndRefusals) {
  const char* text = R"({"zarr_format":3,"node_type":"array","shape":[4,6],"data_type":"float32",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,3]}},
    "chunk_key_encoding":{"name":"default","configuration":{"separator":"."}},
    "fill_value":"NaN","codecs":[{"name":"bytes","configuration":{"endian":"little"}}],
    "attributes":{"units":"K"},"dimension_names":["lat",null]})";
  auto m = ParseArrayMetadataV3(json::parse(text));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->separator, '.');
  EXPECT_EQ(m->dimension_names, (std::vector<std::string>{"lat", ""}));
  EXPECT_EQ(ArrayMetadataToV3(*m), json::parse(text));
  auto bad = [&](const std::string& field, json v) {
    json j = json::parse(text);
    j[field] = v;
    return ParseArrayMetadataV3(j).status();
  };
  EXPECT_EQ(bad("data_type", "complex64").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(bad("chunk_grid", {{"name", "rectilinear"}}).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(bad("shape", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad("shape", {4}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad("storage_transformers", {{{"name", "x"}}}).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(bad("chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", {0, 3}}}}}).code(),
            StatusCode::kInvalidArgument);
}

TEST(Metadata, V2RoundTrip) {
  json zarray = json::parse(R"({"zarr_format":2,"shape":[5],"chunks":[2],"dtype":">i4","compressor":
      {"id":"zstd","level":1},"fill_value":null,"order":"C","filters":null,"dimension_separator":"/"})");
  json zattrs = {{"_ARRAY_DIMENSIONS", {"time"}}, {"units", "hours since 1900-01-01"}};
  auto m = ParseArrayMetadataV2(zarray, zattrs);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->dimension_names, std::vector<std::string>{"time"});
  EXPECT_TRUE(m->fill_null);
  json za, zt;
  ASSERT_TRUE(ArrayMetadataToV2(*m, &za, &zt).ok());
  EXPECT_EQ(za, zarray);
  EXPECT_EQ(zt, zattrs);
}

struct Format {
  int zarr_format;
  std::vector<int64_t> shard;
  std::string codec;
};

void PrintTo(const Format& f, std::ostream* os) {
  *os << "v" << f.zarr_format << " " << f.codec << (f.shard.empty() ? "" : " sharded");
}

class ArrayIo : public ::testing::TestWithParam<Format> {};

TEST_P(ArrayIo, WriteAndReadBoxesIncludingEdgesAndMissingChunks) {
  auto store = NewMemoryKvStore();
  ArraySpec s;
  s.zarr_format = GetParam().zarr_format;
  s.shape = {7, 9, 11};
  s.chunks = {2, 3, 4};
  s.shard = GetParam().shard;
  s.codec = GetParam().codec;
  s.dtype = F32();
  s.fill_value = -1;
  auto a = Array::Create(store.get(), "grp/arr", *MakeArrayMetadata(s));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  // Nothing written: everything reads as the fill value.
  std::string out(7 * 9 * 11 * 4, '\0');
  ASSERT_TRUE((*a)->Read((*a)->full_box(), out).ok());
  EXPECT_EQ(At(out, 0), -1.0f);
  // Write the whole array, then an unaligned box on top.
  std::string all = Iota(7 * 9 * 11);
  ASSERT_TRUE((*a)->Write((*a)->full_box(), all).ok());
  Box box{{1, 2, 3}, {5, 6, 7}};
  std::string patch(box.num_elements() * 4, '\0');
  for (int64_t i = 0; i < box.num_elements(); ++i) {
    float f = 1000.0f + i;
    std::memcpy(&patch[i * 4], &f, 4);
  }
  ASSERT_TRUE((*a)->Write(box, patch).ok());
  auto reopened = Array::Open(store.get(), "grp/arr");
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  ASSERT_TRUE((*reopened)->Read((*reopened)->full_box(), out).ok());
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 9; ++j)
      for (int64_t k = 0; k < 11; ++k) {
        int64_t flat = (i * 9 + j) * 11 + k;
        bool in = i >= 1 && i < 6 && j >= 2 && j < 8 && k >= 3 && k < 10;
        float want = in ? 1000.0f + ((i - 1) * 6 + (j - 2)) * 7 + (k - 3) : static_cast<float>(flat);
        ASSERT_EQ(At(out, flat), want) << i << "," << j << "," << k;
      }
  // A partial read of an unaligned box equals the same box cut from the full read.
  Box sub{{3, 1, 5}, {3, 5, 6}};
  std::string part(sub.num_elements() * 4, '\0');
  ASSERT_TRUE((*reopened)->Read(sub, part).ok());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t k = 0; k < 6; ++k)
        ASSERT_EQ(At(part, (i * 5 + j) * 6 + k), At(out, ((i + 3) * 9 + j + 1) * 11 + k + 5));
  // Out-of-range boxes are refused.
  Box outside{{0, 0, 0}, {8, 1, 1}};
  std::string tiny(8 * 4, '\0');
  EXPECT_EQ((*reopened)->Read(outside, tiny).code(), StatusCode::kOutOfRange);
}

TEST_P(ArrayIo, ChunksHoldingOnlyTheFillValueAreNotStored) {
  auto store = NewMemoryKvStore();
  ArraySpec s;
  s.zarr_format = GetParam().zarr_format;
  s.shape = {4, 6};
  s.chunks = {2, 3};
  s.shard = GetParam().shard.empty() ? std::vector<int64_t>{} : std::vector<int64_t>{2, 6};
  s.codec = GetParam().codec;
  s.dtype = F32();
  auto a = *Array::Create(store.get(), "", *MakeArrayMetadata(s));
  std::string zeros(24 * 4, '\0');
  ASSERT_TRUE(a->Write(a->full_box(), zeros).ok());
  auto keys = *store->List("");
  EXPECT_EQ(keys.size(), 1u) << "only metadata expected, got " << keys.size() << " keys";
}

INSTANTIATE_TEST_SUITE_P(Formats, ArrayIo,
                         ::testing::Values(Format{3, {}, "blosc-lz4"}, Format{2, {}, "zstd"}, Format{2, {}, "none"},
                                           Format{3, {4, 6, 8}, "blosc-zstd"}, Format{3, {2, 9, 4}, "gzip"}),
                         [](const auto& info) {
                           return "v" + std::to_string(info.param.zarr_format) +
                                  (info.param.shard.empty() ? "" : "_sharded") + "_" + std::to_string(info.index);
                         });

TEST(Array, CorruptChunkErrorNamesStoreAndKey) {
  auto store = NewMemoryKvStore("corrupt-test");
  ArraySpec s;
  s.shape = {4};
  s.chunks = {2};
  s.dtype = F32();
  auto a = *Array::Create(store.get(), "x", *MakeArrayMetadata(s));
  ASSERT_TRUE(a->Write(a->full_box(), Iota(4)).ok());
  ASSERT_TRUE(store->Write("x/c/1", "garbage!").ok());
  std::string out(16, '\0');
  Status st = a->Read(a->full_box(), out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("memory://corrupt-test"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("x/c/1"), std::string::npos) << st.message();
}

TEST(Array, LargeChunksInFilesDecodeFromAMappingAndFailCleanly) {
  const auto dir = std::filesystem::temp_directory_path() / ("jigsaw-zarr-map-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto store = NewFileKvStore(dir.string());
  ArraySpec s;
  s.shape = {3, 1024, 1024};
  s.chunks = {1, 1024, 1024};  // 4 MiB chunks: read through KvStore::Map
  s.dtype = F32();
  s.crc32c = true;
  ASSERT_GE(size_t{4} << 20, Array::kMinMappedChunkBytes);
  auto a = *Array::Create(store.get(), "x", *MakeArrayMetadata(s));
  const std::string data = Iota(3 * 1024 * 1024);
  ASSERT_TRUE(a->Write(a->full_box(), data).ok());
  std::string out(data.size(), '\0');
  ASSERT_TRUE(a->Read(a->full_box(), out).ok());
  EXPECT_EQ(out, data);
  std::string one(4 << 20, '\0');
  ASSERT_TRUE(a->Read({{1, 0, 0}, {1, 1024, 1024}}, one).ok());  // decoded in place
  EXPECT_EQ(one, data.substr(4 << 20, 4 << 20));
  // A flipped byte in chunk 2 and a truncated chunk 1: errors name the chunk; a missing chunk is fill.
  std::string c2 = store->Read("x/c/2/0/0")->value;
  c2[c2.size() / 2] ^= 1;
  ASSERT_TRUE(store->Write("x/c/2/0/0", c2).ok());
  Status st = a->Read({{2, 0, 0}, {1, 1024, 1024}}, one);
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("x/c/2/0/0"), std::string::npos) << st.message();
  ASSERT_TRUE(store->Write("x/c/1/0/0", store->Read("x/c/1/0/0", ByteRange::Span(0, 1000))->value).ok());
  st = a->Read({{1, 0, 0}, {1, 1024, 1024}}, one);
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("x/c/1/0/0"), std::string::npos) << st.message();
  ASSERT_TRUE(store->Delete("x/c/0/0/0").ok());
  ASSERT_TRUE(a->Read({{0, 0, 0}, {1, 1024, 1024}}, one).ok());
  EXPECT_EQ(one, std::string(4 << 20, '\0'));
  std::filesystem::remove_all(dir);
}

TEST(Array, ShardIndexPointingOutsideTheObjectIsAnError) {
  auto store = NewMemoryKvStore();
  ArraySpec s;
  s.shape = {8};
  s.chunks = {2};
  s.shard = {8};
  s.dtype = F32();
  auto a = *Array::Create(store.get(), "", *MakeArrayMetadata(s));
  ASSERT_TRUE(a->Write(a->full_box(), Iota(8)).ok());
  // Rewrite the index so that entry 1 points far past the end (crc32c recomputed so that only bounds fail).
  std::string shard = store->Read("c/0")->value;
  const ShardingSpec* sh = a->metadata().codecs->sharding();
  auto entries = *sh->DecodeIndex(shard.substr(shard.size() - sh->IndexBytes(4)), 4, shard.size());
  entries[1].offset = 1 << 20;
  shard = shard.substr(0, shard.size() - sh->IndexBytes(4)) + sh->EncodeIndex(entries);
  ASSERT_TRUE(store->Write("c/0", shard).ok());
  std::string out(8, '\0');
  Status partial = a->Read(Box{{2}, {2}}, out);
  EXPECT_FALSE(partial.ok());
  std::string all(32, '\0');
  Status whole = a->Read(a->full_box(), all);
  EXPECT_EQ(whole.code(), StatusCode::kDataLoss) << whole.ToString();
  EXPECT_NE(whole.message().find("outside"), std::string::npos) << whole.message();
}

TEST(Array, ReadErrorsFromTheStorePropagate) {
  auto base = NewMemoryKvStore();
  ArraySpec s;
  s.shape = {4};
  s.chunks = {1};
  s.dtype = F32();
  auto a = *Array::Create(base.get(), "", *MakeArrayMetadata(s));
  ASSERT_TRUE(a->Write(a->full_box(), Iota(4)).ok());
  auto faulty =
      NewFaultyKvStore(base.get(), {[](std::string_view op, std::string_view key) {
                                      return op == "read" && key == "c/2" ? IoError("disk on fire") : OkStatus();
                                    },
                                    nullptr});
  auto b = *Array::Open(faulty.get(), "");
  std::string out(16, '\0');
  Status st = b->Read(b->full_box(), out);
  EXPECT_EQ(st.code(), StatusCode::kIo);
  EXPECT_NE(st.message().find("disk on fire"), std::string::npos);
}

TEST(Array, ZeroDimensional) {
  auto store = NewMemoryKvStore();
  for (int fmt : {2, 3}) {
    ArraySpec s;
    s.zarr_format = fmt;
    s.dtype = F32();
    auto a = *Array::Create(store.get(), "s" + std::to_string(fmt), *MakeArrayMetadata(s));
    std::string v = Iota(2).substr(4);
    ASSERT_TRUE(a->Write(a->full_box(), v).ok());
    std::string out(4, '\0');
    ASSERT_TRUE(Array::Open(store.get(), "s" + std::to_string(fmt)).value()->Read(a->full_box(), out).ok());
    EXPECT_EQ(At(out, 0), 1.0f);
  }
}

TEST(Groups, ListCopyVerify) {
  auto src = NewMemoryKvStore();
  ASSERT_TRUE(WriteGroup(src.get(), "", 2, {{"title", "test"}}).ok());
  ASSERT_TRUE(WriteGroup(src.get(), "sub", 2, json::object()).ok());
  ArraySpec s;
  s.zarr_format = 2;
  s.shape = {6, 8};
  s.chunks = {3, 4};
  s.dtype = F32();
  s.dimension_names = {"lat", "lon"};
  s.attributes = {{"units", "K"}};
  auto a = *Array::Create(src.get(), "sub/t", *MakeArrayMetadata(s));
  ASSERT_TRUE(a->Write(a->full_box(), Iota(48)).ok());
  ASSERT_TRUE(WriteConsolidated(src.get(), 2).ok());

  std::ostringstream ls;
  ASSERT_TRUE(ListStore(src.get(), true, ls).ok());
  json j = json::parse(ls.str());
  ASSERT_EQ(j["nodes"].size(), 3u);
  EXPECT_EQ(j["nodes"][2]["path"], "sub/t");
  EXPECT_EQ(j["nodes"][2]["dimension_names"], json({"lat", "lon"}));
  EXPECT_EQ(j["nodes"][2]["stored_objects"], 4);

  // v2 -> v3 sharded -> v2: values and attributes survive.
  auto mid = NewMemoryKvStore(), back = NewMemoryKvStore();
  std::ostringstream log;
  CopyOptions to3;
  to3.zarr_format = 3;
  to3.shard = {6, 8};
  to3.codec = "blosc-zstd";
  ASSERT_TRUE(CopyStore(src.get(), mid.get(), to3, log).ok());
  auto m3 = *Array::Open(mid.get(), "sub/t");
  EXPECT_NE(m3->metadata().codecs->sharding(), nullptr);
  EXPECT_EQ(m3->metadata().dimension_names, (std::vector<std::string>{"lat", "lon"}));
  CopyOptions to2;
  to2.zarr_format = 2;
  to2.codec = "gzip";
  ASSERT_TRUE(CopyStore(mid.get(), back.get(), to2, log).ok());
  auto b = *Array::Open(back.get(), "sub/t");
  std::string out(48 * 4, '\0');
  ASSERT_TRUE(b->Read(b->full_box(), out).ok());
  EXPECT_EQ(out, Iota(48));
  EXPECT_EQ(b->metadata().attributes["units"], "K");
  EXPECT_EQ(ReadNodeMetadata(back.get(), "").value().attributes["title"], "test");
  // Copying a sharded store to v2 with no codec given keeps the inner compressor.
  auto back2 = NewMemoryKvStore();
  CopyOptions keep2;
  keep2.zarr_format = 2;
  ASSERT_TRUE(CopyStore(mid.get(), back2.get(), keep2, log).ok());
  {
    // mid's inner chunks are blosc-zstd (to3 above): the v2 array's compressor is that blosc, values equal.
    auto kept = *Array::Open(back2.get(), "sub/t");
    EXPECT_EQ(kept->metadata().zarr_format, 2);
    EXPECT_EQ(kept->metadata().codecs->sharding(), nullptr);
    json zarray, zattrs;
    ASSERT_TRUE(ArrayMetadataToV2(kept->metadata(), &zarray, &zattrs).ok());
    EXPECT_EQ(zarray["compressor"]["id"], "blosc") << zarray.dump();
    EXPECT_EQ(zarray["compressor"]["cname"], "zstd") << zarray.dump();
    std::string values(48 * 4, '\0');
    ASSERT_TRUE(kept->Read(kept->full_box(), values).ok());
    EXPECT_EQ(values, Iota(48));
  }

  for (KvStore* st : {src.get(), mid.get(), back.get(), back2.get()}) {
    auto report = VerifyStore(st, nullptr);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->problems.empty()) << report->problems.front();
  }
  // Corruption and stray keys are found and named.
  ASSERT_TRUE(back->Write("sub/t/1.1", "junk").ok());
  ASSERT_TRUE(back->Write("sub/t/9.9", back->Read("sub/t/0.0")->value).ok());
  ASSERT_TRUE(back->Write("sub/t/notachunk", "x").ok());
  // Each is found twice: by the format (does not decode, outside the shape, not a chunk key) and by the
  // copy's checksum record (changed; not in the record, twice).
  auto report = *VerifyStore(back.get(), nullptr);
  EXPECT_TRUE(report.checksum_record);
  std::string all;
  for (auto& p : report.problems) all += p + "\n";
  ASSERT_EQ(report.problems.size(), 6u) << all;
  EXPECT_NE(all.find("sub/t/1.1: 4 bytes, crc32c"), std::string::npos) << all;
  EXPECT_NE(all.find("sub/t/9.9: not in the checksum record"), std::string::npos) << all;
  EXPECT_NE(all.find("sub/t/1.1"), std::string::npos) << all;
  EXPECT_NE(all.find("sub/t/9.9"), std::string::npos) << all;
  EXPECT_NE(all.find("notachunk"), std::string::npos) << all;
  // Consolidated metadata out of date.
  ASSERT_TRUE(WriteGroup(back.get(), "new", 2, json::object()).ok());
  report = *VerifyStore(back.get(), nullptr);
  EXPECT_EQ(report.problems.size(), 8u);  // + consolidated metadata lacks "new", + new/.zgroup not in the record
}

TEST(Slices, NumpyStyle) {
  std::vector<int64_t> kept;
  auto b = ParseSlice("0,:,10:20", {3, 4, 30}, &kept);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->origin, (std::vector<int64_t>{0, 0, 10}));
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 4, 10}));
  EXPECT_EQ(kept, (std::vector<int64_t>{4, 10}));
  b = ParseSlice("-1,-5:", {3, 30}, &kept);
  EXPECT_EQ(b->origin, (std::vector<int64_t>{2, 25}));
  EXPECT_EQ(kept, (std::vector<int64_t>{5}));
  // Each refusal quotes the slice: bad input (exit 2 in the tools), or a NumPy step, which is not supported.
  for (auto [bad, code] : {std::pair{"3", StatusCode::kInvalidArgument},
                           {"0,0", StatusCode::kInvalidArgument},
                           {"::2", StatusCode::kUnimplemented},
                           {"a", StatusCode::kInvalidArgument}}) {
    auto r = ParseSlice(bad, {3}, &kept);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), code) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos) << r.status().message();
  }
}

TEST(Npy, HeaderIsAlignedAndParsable) {
  auto npy = EncodeNpy(F32(), {2, 3}, Iota(6));
  ASSERT_TRUE(npy.ok());
  EXPECT_EQ(npy->substr(0, 6), "\x93NUMPY");
  uint16_t len;
  std::memcpy(&len, npy->data() + 8, 2);
  EXPECT_EQ((10 + len) % 64, 0);
  EXPECT_NE(npy->find("'shape': (2,3)"), std::string::npos);
  EXPECT_NE(EncodeNpy(F32(), {5}, Iota(5))->find("'shape': (5,)"), std::string::npos);
}

}  // namespace
}  // namespace jigsaw
