#include <gtest/gtest.h>

#include <sstream>
#include <tuple>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"
#include "storage/zarr/group.h"
#include "storage/zarr/store_copy.h"
#include "tests/testing/iota.h"

namespace jigsaw {
namespace {

using testdata::Iota;

// A v2 array with the given dtype string and compressor, values written as `values` (native order).
std::unique_ptr<KvStore> V2Source(const std::string& dtype, const json& compressor, const std::string& values,
                                  int64_t n) {
  auto store = NewMemoryKvStore();
  EXPECT_TRUE(WriteGroup(store.get(), "", 2, json::object()).ok());
  json zarray = {{"zarr_format", 2},         {"shape", {n}},          {"chunks", {n}},      {"dtype", dtype},
                 {"compressor", compressor}, {"fill_value", nullptr}, {"filters", nullptr}, {"order", "C"}};
  auto m = ParseArrayMetadataV2(zarray, json::object());
  EXPECT_TRUE(m.ok()) << m.status().message();
  auto a = *Array::Create(store.get(), "x", *m);
  EXPECT_TRUE(a->Write(a->full_box(), values).ok());
  return store;
}

TEST(Copy, KeepsTheSourceByteOrderUnlessToldAndNamesIt) {
  auto src = V2Source(">f4", nullptr, Iota(6), 6);
  EXPECT_EQ(src->Read("x/0")->value.substr(4, 4), std::string("\x3f\x80\x00\x00", 4));  // 1.0f big-endian
  for (auto [order, big, v2] : {std::tuple{CopyOptions::ByteOrder::kSource, true, ">f4"},
                                {CopyOptions::ByteOrder::kLittle, false, "<f4"},
                                {CopyOptions::ByteOrder::kBig, true, ">f4"}}) {
    for (int format : {2, 3}) {
      auto dst = NewMemoryKvStore();
      CopyOptions o;
      o.zarr_format = format;
      o.byte_order = order;
      std::ostringstream log;
      ASSERT_TRUE(CopyStore(src.get(), dst.get(), o, log).ok());
      auto a = *Array::Open(dst.get(), "x");
      EXPECT_EQ(a->metadata().codecs->big_endian(), big) << log.str();
      EXPECT_NE(log.str().find(big ? "bytes(be)" : "bytes(le)"), std::string::npos) << log.str();
      if (format == 2) {
        EXPECT_NE(dst->Read("x/.zarray")->value.find(v2), std::string::npos);
      }
      std::string out(24, '\0');
      ASSERT_TRUE(a->Read(a->full_box(), out).ok());
      EXPECT_EQ(out, Iota(6));
    }
  }
  // Text elements change order code point by code point, not as one 40-byte element.
  auto u = *FixedLengthUtf32(3);
  std::string words = *Utf8ToUtf32("ab", u) + *Utf8ToUtf32("xyz", u);
  auto text = V2Source(">U3", nullptr, words, 2);
  EXPECT_EQ(text->Read("x/0")->value.substr(0, 4), std::string("\0\0\0a", 4));
  auto dst = NewMemoryKvStore();
  CopyOptions little;
  little.zarr_format = 3;
  little.byte_order = CopyOptions::ByteOrder::kLittle;
  std::ostringstream log;
  ASSERT_TRUE(CopyStore(text.get(), dst.get(), little, log).ok());
  EXPECT_EQ(dst->Read("x/c/0")->value.substr(0, 4), std::string("a\0\0\0", 4));
  auto a = *Array::Open(dst.get(), "x");
  std::string out(24, '\0');
  ASSERT_TRUE(a->Read(a->full_box(), out).ok());
  EXPECT_EQ(Utf32ToUtf8(out.substr(12)), "xyz");
}

TEST(Copy, IntoV3OnlySpecCodecsZlibBecomesGzipAndSaysSo) {
  auto src = V2Source("<f4", json{{"id", "zlib"}, {"level", 7}}, Iota(6), 6);
  auto dst = NewMemoryKvStore();
  CopyOptions o;
  o.zarr_format = 3;
  std::ostringstream log;
  ASSERT_TRUE(CopyStore(src.get(), dst.get(), o, log).ok());
  EXPECT_NE(log.str().find("gzip(7) (zlib has no Zarr v3 codec: re-encoded as gzip, level 7)"), std::string::npos)
      << log.str();
  json meta = json::parse(dst->Read("x/zarr.json")->value);
  EXPECT_EQ(meta["codecs"][1], json::parse(R"({"name": "gzip", "configuration": {"level": 7}})")) << meta.dump();
  // Into v2 zlib stays zlib; named explicitly, v3 gets numcodecs.zlib, and the line says who cannot read it.
  auto v2 = NewMemoryKvStore();
  CopyOptions keep;
  ASSERT_TRUE(CopyStore(src.get(), v2.get(), keep, log).ok());
  EXPECT_EQ(json::parse(v2->Read("x/.zarray")->value)["compressor"]["id"], "zlib");
  auto named = NewMemoryKvStore();
  CopyOptions zlib;
  zlib.zarr_format = 3;
  zlib.codec = "zlib";
  std::ostringstream named_log;
  ASSERT_TRUE(CopyStore(src.get(), named.get(), zlib, named_log).ok());
  EXPECT_EQ(json::parse(named->Read("x/zarr.json")->value)["codecs"][1]["name"], "numcodecs.zlib");
  EXPECT_NE(named_log.str().find("TensorStore"), std::string::npos) << named_log.str();
}

TEST(Metadata, V2ZstdWithoutChecksumHasNoChecksumKey) {
  // numcodecs 0.11 (Debian 12) refuses the key; it is written only when a checksum is on.
  auto src = V2Source("<f4", json{{"id", "zstd"}, {"level", 3}}, Iota(6), 6);
  EXPECT_EQ(json::parse(src->Read("x/.zarray")->value)["compressor"], json::parse(R"({"id": "zstd", "level": 3})"));
  auto on = V2Source("<f4", json{{"id", "zstd"}, {"level", 3}, {"checksum", true}}, Iota(6), 6);
  EXPECT_EQ(json::parse(on->Read("x/.zarray")->value)["compressor"]["checksum"], true);
}

}  // namespace
}  // namespace jigsaw
