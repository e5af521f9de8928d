#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "storage/codec/codec.h"
#include "storage/codec/crc32c.h"

namespace jigsaw {
namespace {

std::string Floats(int n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string s(n * 4, '\0');
  for (int i = 0; i < n; ++i) {
    float f = static_cast<float>(std::sin(i * 0.01) * 100 + (rng() % 100) * 0.001);
    std::memcpy(&s[i * 4], &f, 4);
  }
  return s;
}

std::vector<std::unique_ptr<BytesCodec>> AllCodecs(int typesize) {
  std::vector<std::unique_ptr<BytesCodec>> v;
  for (const char* c : {"lz4", "lz4hc", "zstd", "zlib", "blosclz"})
    for (int shuffle : {0, 1, 2}) v.push_back(*NewBloscCodec(c, 5, shuffle, typesize, 0));
  v.push_back(*NewZstdCodec(3, false));
  v.push_back(*NewZstdCodec(1, true));
  v.push_back(*NewGzipCodec(5));
  v.push_back(*NewZlibCodec(1));
  v.push_back(NewCrc32cCodec());
  return v;
}

TEST(Codecs, RoundTripEveryCodec) {
  std::string data = Floats(10000);
  for (const auto& c : AllCodecs(4)) {
    auto enc = c->Encode(data);
    ASSERT_TRUE(enc.ok()) << c->name();
    auto dec = c->Decode(*enc, data.size());
    ASSERT_TRUE(dec.ok()) << c->name() << ": " << dec.status().ToString();
    EXPECT_EQ(*dec, data) << c->name();
    std::string into(data.size(), '\0');
    ASSERT_TRUE(c->DecodeInto(*enc, into).ok()) << c->name();
    EXPECT_EQ(into, data) << c->name();
  }
}

TEST(Codecs, DecodingIsBounded) {
  std::string data = Floats(1000);
  for (const auto& c : AllCodecs(4)) {
    if (c->name() == "crc32c") continue;
    auto enc = c->Encode(data);
    ASSERT_TRUE(enc.ok());
    // A destination smaller than what the data claims is an error, never an overflow.
    auto dec = c->Decode(*enc, data.size() - 1);
    EXPECT_FALSE(dec.ok()) << c->name();
    EXPECT_EQ(dec.status().code(), StatusCode::kDataLoss) << c->name();
    std::string small(data.size() - 4, '\0');
    EXPECT_EQ(c->DecodeInto(*enc, small).code(), StatusCode::kDataLoss) << c->name();
  }
}

TEST(Codecs, TruncatedAndCorruptInputIsDataLoss) {
  std::string data = Floats(1000);
  for (const auto& c : AllCodecs(4)) {
    auto enc = *c->Encode(data);
    std::string out(data.size(), '\0');
    for (size_t cut : {size_t{0}, size_t{3}, enc.size() / 2, enc.size() - 1}) {
      Status s = c->DecodeInto(std::string_view(enc).substr(0, cut), out);
      EXPECT_EQ(s.code(), StatusCode::kDataLoss) << c->name() << " cut at " << cut << ": " << s.ToString();
    }
  }
  auto crc = NewCrc32cCodec();
  std::string enc = *crc->Encode("payload");
  enc[2] ^= 0x10;
  EXPECT_EQ(crc->Decode(enc, 100).status().code(), StatusCode::kDataLoss);
}

TEST(Codecs, BloscHeaderClaimingHugeSizeIsRefused) {
  auto c = *NewBloscCodec("lz4", 5, 1, 4, 0);
  std::string enc = *c->Encode(Floats(100));
  uint32_t huge = 0x7FFFFFF0u;  // nbytes field at offset 4
  std::memcpy(&enc[4], &huge, 4);
  auto r = c->Decode(enc, 400);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  // Incremental equals one shot.
  EXPECT_EQ(Crc32c("56789", Crc32c("1234")), 0xE3069283u);
  std::string big = Floats(5000);
  EXPECT_EQ(Crc32c(big.substr(100), Crc32c(big.substr(0, 100))), Crc32c(big));
}

TEST(Crc32c, InterleavedLanesAgreeWithOneStream) {
  // From 12 KiB on, three lanes run at once and are joined; pieces under 12 KiB take the one-stream
  // path, so extending piece by piece checks the joined result.
  std::string data(100000, '\0');
  uint64_t x = 1;
  for (auto& c : data) c = static_cast<char>((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 56);
  for (size_t n : {12287u, 12288u, 12289u, 24576u, 40000u, 100000u}) {
    std::string_view v(data.data(), n);
    uint32_t piecewise = 0;
    for (size_t off = 0; off < n; off += 1000) piecewise = Crc32c(v.substr(off, 1000), piecewise);
    EXPECT_EQ(Crc32c(v), piecewise) << n;
    EXPECT_EQ(Crc32cCombine(Crc32c(v.substr(0, n / 3)), Crc32c(v.substr(n / 3)), n - n / 3), Crc32c(v)) << n;
  }
  EXPECT_EQ(Crc32cCombine(Crc32c("1234"), Crc32c("56789"), 5), 0xE3069283u);
  EXPECT_EQ(Crc32cCombine(Crc32c("123456789"), Crc32c(""), 0), 0xE3069283u);
}

TEST(Codecs, CodecNamesFromCommandLine) {
  for (const char* n :
       {"blosc-lz4", "blosc-lz4hc", "blosc-zstd", "blosc-zlib", "blosc-blosclz", "zstd", "gzip", "zlib"}) {
    auto c = BytesCodecFromName(n, 4);
    ASSERT_TRUE(c.ok()) << n;
    ASSERT_NE(*c, nullptr);
  }
  EXPECT_EQ(*BytesCodecFromName("none", 4), nullptr);
  EXPECT_EQ(BytesCodecFromName("snappy2", 4).status().code(), StatusCode::kInvalidArgument);
}

TEST(Transpose, PermutesLikeNumpy) {
  // 2x3 int32 array [[0,1,2],[3,4,5]] transposed -> [[0,3],[1,4],[2,5]].
  std::vector<int32_t> in = {0, 1, 2, 3, 4, 5}, out(6);
  std::vector<int64_t> shape = {2, 3};
  std::vector<int> order = {1, 0};
  TransposeCopy(reinterpret_cast<char*>(in.data()), reinterpret_cast<char*>(out.data()), shape, order, 4);
  EXPECT_EQ(out, (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
  // 3-d: order (2, 0, 1) of shape (2, 3, 4): out[k][i][j] = in[i][j][k].
  std::vector<int32_t> a(24), b(24);
  std::iota(a.begin(), a.end(), 0);
  std::vector<int64_t> s3 = {2, 3, 4};
  std::vector<int> o3 = {2, 0, 1};
  TransposeCopy(reinterpret_cast<char*>(a.data()), reinterpret_cast<char*>(b.data()), s3, o3, 4);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(b[k * 6 + i * 3 + j], a[i * 12 + j * 4 + k]);
}

ChunkLayout Layout(std::vector<int64_t> shape, int item = 4) {
  std::string fill(item, '\0');
  return {std::move(shape), item, fill};
}

TEST(CodecChain, V3ChainWithTransposeBigEndianAndCrc) {
  json codecs = json::parse(R"([{"name":"transpose","configuration":{"order":[1,0]}},
    {"name":"bytes","configuration":{"endian":"big"}},
    {"name":"blosc","configuration":{"cname":"zstd","clevel":3,"shuffle":"bitshuffle","typesize":4,"blocksize":0}},
    {"name":"crc32c"}])");
  auto chain = CodecChain::FromV3(codecs, Layout({50, 40}));
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  std::string data = Floats(2000);
  auto enc = (*chain)->Encode(data);
  ASSERT_TRUE(enc.ok());
  std::string out(data.size(), '\0');
  ASSERT_TRUE((*chain)->Decode(*enc, out).ok());
  EXPECT_EQ(out, data);
  EXPECT_EQ((*chain)->ToV3(), codecs);
}

TEST(CodecChain, ShardingRoundTripWithEmptyInnerChunksAndBothIndexLocations) {
  for (const char* loc : {"end", "start"}) {
    json codecs = {
        {{"name", "sharding_indexed"},
         {"configuration",
          {{"chunk_shape", {2, 5}},
           {"codecs",
            {{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
             {{"name", "zstd"}, {"configuration", {{"level", 1}, {"checksum", false}}}}}},
           {"index_codecs", {{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, {{"name", "crc32c"}}}},
           {"index_location", loc}}}}};
    auto chain = CodecChain::FromV3(codecs, Layout({4, 10}));
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    std::string data = Floats(40);
    std::memset(data.data(), 0, 4 * 5);       // rows 0-1, cols 0-4 are the fill value... only row 0 here
    std::memset(data.data() + 40, 0, 4 * 5);  // now inner chunk (0,0) is all zero: stored as empty
    auto enc = (*chain)->Encode(data);
    ASSERT_TRUE(enc.ok());
    const ShardingSpec* sh = (*chain)->sharding();
    ASSERT_NE(sh, nullptr);
    std::string_view index =
        std::string_view(*enc).substr(sh->index_at_end ? enc->size() - sh->IndexBytes(4) : 0, sh->IndexBytes(4));
    auto entries = sh->DecodeIndex(index, 4, enc->size());
    ASSERT_TRUE(entries.ok());
    EXPECT_TRUE((*entries)[0].empty());
    EXPECT_FALSE((*entries)[1].empty());
    std::string out(data.size(), '\0');
    ASSERT_TRUE((*chain)->Decode(*enc, out).ok());
    EXPECT_EQ(out, data);
    EXPECT_EQ((*chain)->ToV3(), codecs);
  }
}

TEST(CodecChain, ShardIndexPointingOutsideTheShardIsDataLoss) {
  ShardingSpec sh;
  sh.index_crc32c = false;
  std::vector<ShardingSpec::Entry> e = {{0, 100}};
  auto r = sh.DecodeIndex(sh.EncodeIndex(e), 1, 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("outside"), std::string::npos);
}

TEST(CodecChain, V2Forms) {
  json blosc = {{"id", "blosc"}, {"cname", "lz4"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}};
  auto chain = CodecChain::FromV2(blosc, nullptr, true, 'F', Layout({3, 7}));
  ASSERT_TRUE(chain.ok());
  std::string data = Floats(21);
  std::string out(data.size(), '\0');
  ASSERT_TRUE((*chain)->Decode(*(*chain)->Encode(data), out).ok());
  EXPECT_EQ(out, data);
  json c, f;
  char order;
  bool be;
  ASSERT_TRUE((*chain)->ToV2(&c, &f, &order, &be).ok());
  EXPECT_EQ(c, blosc);
  EXPECT_EQ(order, 'F');
  EXPECT_TRUE(be);
  EXPECT_EQ(CodecChain::FromV2({{"id", "lzma"}}, nullptr, false, 'C', Layout({3})).status().code(),
            StatusCode::kUnimplemented);
  EXPECT_EQ(CodecChain::FromV2(nullptr, json::array({{{"id", "delta"}}}), false, 'C', Layout({3})).status().code(),
            StatusCode::kUnimplemented);
}

TEST(CodecChain, BadV3ListsAreRefusedClearly) {
  for (const char* text :
       {R"([])", R"([{"name":"blosc"}])", R"([{"name":"bytes"},{"name":"bytes"}])",
        R"([{"name":"bytes"},{"name":"lzma"}])", R"([{"name":"bytes","configuration":{"endian":"middle"}}])",
        R"([{"name":"transpose","configuration":{"order":[0,0]}},{"name":"bytes"}])",
        R"([{"name":"sharding_indexed","configuration":{"chunk_shape":[3,3],"codecs":[{"name":"bytes"}]}}])",
        R"([{"name":"blosc","configuration":{"cname":7}}])"}) {
    auto r = CodecChain::FromV3(json::parse(text), Layout({4, 4}));
    EXPECT_FALSE(r.ok()) << text;
    // Bad metadata is bad input (kInvalidArgument), or a codec jigsaw does not have (kUnimplemented).
    EXPECT_TRUE(r.status().code() == StatusCode::kInvalidArgument || r.status().code() == StatusCode::kUnimplemented)
        << text << ": " << r.status().ToString();
  }
}

TEST(ArrayOps, CopyBoxAndFill) {
  std::vector<int32_t> big(4 * 5, -1), small = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> bs = {4, 5}, ss = {2, 3}, o0 = {0, 0}, o = {1, 2};
  CopyBox(reinterpret_cast<char*>(small.data()), ss, o0, reinterpret_cast<char*>(big.data()), bs, o, ss, 4);
  EXPECT_EQ(big[1 * 5 + 2], 1);
  EXPECT_EQ(big[2 * 5 + 4], 6);
  EXPECT_EQ(big[0], -1);
  std::string buf(12, '\0');
  FillWith(buf, std::string("\x01\x02\x03\x04", 4));
  EXPECT_TRUE(AllEqualTo(buf, std::string("\x01\x02\x03\x04", 4)));
  EXPECT_FALSE(AllEqualTo(buf, std::string("\x01\x02\x03\x05", 4)));
  for (size_t n : {1, 2, 3, 7, 8, 9, 1000, 4097}) {  // element counts around the doubling steps
    std::string b(n * 4 + 3, 'x');
    FillWith(std::span<char>(b.data(), n * 4), std::string("\x01\x02\x03\x04", 4));
    EXPECT_TRUE(AllEqualTo(b.substr(0, n * 4), std::string("\x01\x02\x03\x04", 4))) << n;
    EXPECT_EQ(b.substr(n * 4), "xxx") << n;
  }
}

TEST(ArrayOps, FillOutsideLeavesTheBoxAndFillsEverythingElse) {
  const std::vector<int64_t> shape = {3, 4, 5};
  const std::string fill("\xff\xff\xff\x7f", 4);
  for (auto [origin, extent] : std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>{
           {{0, 0, 0}, {2, 4, 5}},     // an edge chunk: the last outer row is past the array
           {{0, 0, 0}, {3, 4, 2}},     // past the array in the innermost dimension
           {{1, 1, 2}, {1, 2, 3}},     // a box in the middle
           {{0, 0, 0}, {3, 4, 5}}}) {  // everything covered: nothing filled
    std::vector<int32_t> a(60);
    for (int i = 0; i < 60; ++i) a[i] = i;
    FillOutside(reinterpret_cast<char*>(a.data()), shape, origin, extent, fill);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 5; ++k) {
          const bool inside = i >= origin[0] && i < origin[0] + extent[0] && j >= origin[1] &&
                              j < origin[1] + extent[1] && k >= origin[2] && k < origin[2] + extent[2];
          const int64_t at = (i * 4 + j) * 5 + k;
          EXPECT_EQ(a[at], inside ? at : 0x7fffffff) << i << "," << j << "," << k;
        }
  }
}

}  // namespace
}  // namespace jigsaw
