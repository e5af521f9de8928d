#include <gtest/gtest.h>

#include <cmath>

#include "storage/zarr/cf.h"

namespace jigsaw {
namespace {

TEST(Cf, IsoTimes) {
  EXPECT_EQ(*ParseIsoTime("1970-01-01"), 0);
  EXPECT_EQ(*ParseIsoTime("2020-01-01T06"), 1577858400);
  EXPECT_EQ(*ParseIsoTime("1900-01-01 00:00:00.0"), -2208988800);
  EXPECT_EQ(*ParseIsoTime("2000-02-29T12:30:15Z"), 951827415);
  EXPECT_FALSE(ParseIsoTime("2020-13-01").ok());
  EXPECT_FALSE(ParseIsoTime("yesterday").ok());
  EXPECT_EQ(FormatIsoTime(1577858400), "2020-01-01T06:00:00");
  EXPECT_EQ(FormatIsoTime(-2208988800), "1900-01-01T00:00:00");
}

// A bound names a whole day, month or year unless it names an hour: pandas' slice("1990", "2019").
TEST(Cf, TimeBounds) {
  const int64_t day = 86400;
  EXPECT_EQ(*ParseTimeBound("2019-12-31", false), *ParseIsoTime("2019-12-31T00"));
  EXPECT_EQ(*ParseTimeBound("2019-12-31", true), *ParseIsoTime("2020-01-01T00") - 1);
  EXPECT_EQ(*ParseTimeBound("2019-12-31T06", true), *ParseIsoTime("2019-12-31T06"));
  EXPECT_EQ(*ParseTimeBound("2019", false), *ParseIsoTime("2019-01-01"));
  EXPECT_EQ(*ParseTimeBound("2019", true), *ParseIsoTime("2020-01-01") - 1);
  EXPECT_EQ(*ParseTimeBound("2020-02", true), *ParseIsoTime("2020-02-29") + day - 1);  // a leap February
  EXPECT_EQ(*ParseTimeBound("2019-12", true), *ParseIsoTime("2020-01-01") - 1);
  EXPECT_EQ(*ParseTimeBound("2019-02", false), *ParseIsoTime("2019-02-01"));
  for (const char* bad : {"2019-13", "19x", "", "2019-02-30", "2019-1-1-1"})
    EXPECT_FALSE(ParseTimeBound(bad, true).ok()) << bad;
}

TEST(Cf, TimeUnitsAndCalendars) {
  auto u = ParseCfTimeUnits("hours since 1900-01-01 00:00:00.0", "gregorian");
  ASSERT_TRUE(u.ok());
  std::vector<double> v = {1051896.0, 1051902.0};  // 2020-01-01T00 and T06
  auto t = DecodeCfTimes(v, *u);
  EXPECT_EQ(t[0], 1577836800);
  EXPECT_EQ(t[1] - t[0], 6 * 3600);
  EXPECT_EQ(ParseCfTimeUnits("days since 1970-01-01", "")->seconds_per_unit, 86400);
  EXPECT_EQ(ParseCfTimeUnits("days since 1970-01-01", "noleap").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(ParseCfTimeUnits("days since 1500-01-01", "standard").status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(ParseCfTimeUnits("days since 1500-01-01", "proleptic_gregorian").ok());
  EXPECT_FALSE(ParseCfTimeUnits("fortnights since 1970-01-01", "").ok());
  EXPECT_FALSE(ParseCfTimeUnits("hours", "").ok());
}

TEST(Cf, Unpacking) {
  ArraySpec s;
  s.zarr_format = 2;
  s.shape = {4};
  s.chunks = {4};
  s.dtype = *DataTypeFromName("int16");
  s.fill_value = nullptr;
  s.attributes = {{"scale_factor", 0.5}, {"add_offset", 100.0}, {"missing_value", -32767}, {"_FillValue", -32768}};
  auto m = *MakeArrayMetadata(s);
  CfPacking p = CfPackingOf(m);
  int16_t raw[4] = {0, 10, -32767, -32768};
  double out[4];
  UnpackCf(reinterpret_cast<const char*>(raw), m.dtype, 4, p, out);
  EXPECT_EQ(out[0], 100.0);
  EXPECT_EQ(out[1], 105.0);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_TRUE(std::isnan(out[3]));
  // Zarr v2 as xarray writes it: _FillValue lives in the array's fill_value.
  s.attributes = {{"scale_factor", 2.0}};
  s.fill_value = 7;
  auto m2 = *MakeArrayMetadata(s);
  int16_t raw2[2] = {7, 8};
  UnpackCf(reinterpret_cast<const char*>(raw2), m2.dtype, 2, CfPackingOf(m2), out);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], 16.0);
}

}  // namespace
}  // namespace jigsaw
