#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "storage/zarr/dtype.h"

namespace jigsaw {
namespace {

DataType F32() { return *DataTypeFromName("float32"); }

TEST(DataTypes, V2TypeStrings) {
  bool be;
  EXPECT_EQ(DataTypeFromV2("<f4", &be)->name, "float32");
  EXPECT_FALSE(be);
  EXPECT_EQ(DataTypeFromV2(">i2", &be)->name, "int16");
  EXPECT_TRUE(be);
  EXPECT_EQ(DataTypeFromV2("|b1", &be)->name, "bool");
  EXPECT_EQ(DataTypeFromV2("|u1", &be)->name, "uint8");
  EXPECT_EQ(DataTypeFromV2("<c8", &be).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(DataTypeFromV2("<S10", &be).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(*V2TypeString(*DataTypeFromName("uint16"), true), ">u2");
  EXPECT_FALSE(V2TypeString(*DataTypeFromName("bfloat16"), false).ok());
}

TEST(DataTypes, FillValues) {
  auto f32 = F32();
  float f;
  std::memcpy(&f, ParseFillValue("NaN", f32)->data(), 4);
  EXPECT_TRUE(std::isnan(f));
  std::memcpy(&f, ParseFillValue("-Infinity", f32)->data(), 4);
  EXPECT_TRUE(std::isinf(f) && f < 0);
  std::memcpy(&f, ParseFillValue("0x3f800000", f32)->data(), 4);
  EXPECT_EQ(f, 1.0f);
  EXPECT_EQ(FillValueToJson(*ParseFillValue("NaN", f32), f32), "NaN");
  auto i16 = *DataTypeFromName("int16");
  EXPECT_EQ(FillValueToJson(*ParseFillValue(-5, i16), i16), -5);
  EXPECT_FALSE(ParseFillValue(40000, i16).ok());
  auto u64 = *DataTypeFromName("uint64");
  EXPECT_EQ(FillValueToJson(*ParseFillValue(json(18446744073709551615ull), u64), u64), json(18446744073709551615ull));
  auto b = *DataTypeFromName("bool");
  EXPECT_EQ(FillValueToJson(*ParseFillValue(true, b), b), true);
  EXPECT_EQ(*ParseFillValue(nullptr, f32), std::string(4, '\0'));
  EXPECT_FALSE(ParseFillValue("banana", f32).ok());
}

TEST(DataTypes, FixedLengthText) {
  bool be = true;
  auto u10 = DataTypeFromV2("<U10", &be);
  ASSERT_TRUE(u10.ok()) << u10.status().message();
  EXPECT_FALSE(be);
  EXPECT_EQ(u10->kind, 'U');
  EXPECT_EQ(u10->size, 40);
  EXPECT_EQ(u10->swap_size(), 4);
  EXPECT_EQ(*V2TypeString(*u10, false), "<U10");
  EXPECT_EQ(*V2TypeString(*u10, true), ">U10");
  EXPECT_EQ(DataTypeFromV2(">U100", &be)->size, 400);  // past the 64 that numeric sizes stop at
  EXPECT_TRUE(be);
  EXPECT_FALSE(*u10 == *FixedLengthUtf32(11));  // the length is part of the type
  // v3: zarr-python's fixed_length_utf32, length in bytes.
  json v3 = DataTypeToV3(*u10);
  EXPECT_EQ(v3, json::parse(R"({"name": "fixed_length_utf32", "configuration": {"length_bytes": 40}})"));
  EXPECT_EQ(*DataTypeFromV3(v3), *u10);
  EXPECT_EQ(DataTypeToV3(F32()), "float32");
  for (const char* bad : {R"({"name": "fixed_length_utf32"})", R"({"name": "fixed_length_utf32",
        "configuration": {"length_bytes": 6}})",
                          R"({"name": "fixed_length_utf32", "configuration": {"length_bytes": 0}})"}) {
    EXPECT_FALSE(DataTypeFromV3(json::parse(bad)).ok()) << bad;
  }
  // Text <-> UTF-32: ASCII, 2-, 3- and 4-byte UTF-8, NUL padding, too long and not UTF-8 refused.
  auto e = Utf8ToUtf32("t2m", *u10);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->size(), 40u);
  EXPECT_EQ((*e)[0], 't');
  EXPECT_EQ((*e)[4], '2');
  EXPECT_EQ(e->substr(12), std::string(28, '\0'));
  const std::string mixed = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\x8d";  // "été € 🌍": 7 code points
  auto m = Utf8ToUtf32(mixed, *u10);
  ASSERT_TRUE(m.ok());
  uint32_t c;
  std::memcpy(&c, m->data() + 6 * 4, 4);
  EXPECT_EQ(c, 0x1F30Du);
  EXPECT_EQ(Utf32ToUtf8(*m), mixed);
  EXPECT_EQ(Utf8ToUtf32("elevenchars", *u10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Utf8ToUtf32("a\xc3", *u10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Utf8ToUtf32("\xed\xa0\x80", *u10).status().code(), StatusCode::kInvalidArgument);  // a surrogate
  EXPECT_EQ(FillValueToJson(*ParseFillValue("", *u10), *u10), "");
  EXPECT_EQ(FillValueToJson(*ParseFillValue("n/a", *u10), *u10), "n/a");
  EXPECT_FALSE(ParseFillValue(0, *u10).ok());
}

TEST(DataTypes, HalfAndBFloat16) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(v)), v) << v;
  }
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(3.140625f)), 3.140625f);
  EXPECT_EQ(FloatToBFloat16(1.00390625f), 0x3F80);  // tie rounds to even
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
}

}  // namespace
}  // namespace jigsaw
