#include "pipeline/sources/source.h"

#include <gtest/gtest.h>

#include <cmath>

namespace jigsaw {
namespace {

TEST(Sources, NamesAndOrientation) {
  EXPECT_EQ(CanonicalVariableName("t2m"), "2m_temperature");
  EXPECT_EQ(CanonicalVariableName("z"), "geopotential");
  EXPECT_EQ(CanonicalVariableName("temperature"), "temperature");
  EXPECT_EQ(RoleOfDimension("valid_time"), DimRole::kTime);
  EXPECT_EQ(RoleOfDimension("pressure_level"), DimRole::kLevel);
  // Latitude ascending, longitude in [-180, 180): canonical is descending, [0, 360).
  SourceGrid g;
  auto o = PlaneOrientation::From({-10, 0, 10}, {-180, -90, 0, 90}, &g);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(g.latitude, (std::vector<double>{10, 0, -10}));
  EXPECT_EQ(g.longitude, (std::vector<double>{0, 90, 180, 270}));
  float src[12];
  for (int i = 0; i < 12; ++i) src[i] = static_cast<float>(i);  // src[lat][lon]
  float out[12];
  o->Apply(src, 4, 1, 3, out);
  // Canonical row 0 = source row 2 (lat 10); canonical lon 0 = source lon index 2 (0 deg).
  EXPECT_EQ(out[0], 10.0f);
  EXPECT_EQ(out[2], 8.0f);  // 180 deg = source index 0
  // Transposed source (lon, lat): strides swap.
  float t[12];
  for (int la = 0; la < 3; ++la)
    for (int lo = 0; lo < 4; ++lo) t[lo * 3 + la] = src[la * 4 + lo];
  float out2[12];
  o->Apply(t, 1, 3, 3, out2);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(out2[i], out[i]);
  EXPECT_FALSE(PlaneOrientation::From({0, 0, 1}, {0, 1}, &g).ok());
}

TEST(Names, ABlockIsKeptAsItIsOnlyWhenApplyingWouldCopyIt) {
  SourceGrid g;
  auto canonical = PlaneOrientation::From({10, 0, -10}, {0, 90, 180, 270}, &g);
  auto flipped = PlaneOrientation::From({-10, 0, 10}, {0, 90, 180, 270}, &g);
  auto rotated = PlaneOrientation::From({10, 0, -10}, {-180, -90, 0, 90}, &g);
  ASSERT_TRUE(canonical.ok() && flipped.ok() && rotated.ok());
  const DimRole tzyx[] = {DimRole::kTime, DimRole::kLevel, DimRole::kLatitude, DimRole::kLongitude};
  const DimRole tzxy[] = {DimRole::kTime, DimRole::kLevel, DimRole::kLongitude, DimRole::kLatitude};
  const DimRole tyx[] = {DimRole::kTime, DimRole::kLatitude, DimRole::kLongitude};
  const int64_t dims4[] = {5, 6, 3, 4}, dims4t[] = {5, 6, 4, 3}, dims3[] = {5, 3, 4};
  const std::vector<int64_t> in_order = {2, 3, 4}, reversed = {4, 3, 2}, gap = {2, 4};
  EXPECT_TRUE(canonical->KeepsBlockAsIs(BlockFor(tzyx, dims4, 1, in_order), in_order, 3));
  EXPECT_TRUE(canonical->KeepsBlockAsIs(BlockFor(tyx, dims3, 1, {}), {}, 3));
  EXPECT_FALSE(canonical->KeepsBlockAsIs(BlockFor(tzyx, dims4, 1, reversed), reversed, 3));
  EXPECT_FALSE(canonical->KeepsBlockAsIs(BlockFor(tzyx, dims4, 1, gap), gap, 3));  // level 3 in the block, not wanted
  EXPECT_FALSE(canonical->KeepsBlockAsIs(BlockFor(tzxy, dims4t, 1, in_order), in_order, 3));  // (lon, lat) planes
  EXPECT_FALSE(flipped->KeepsBlockAsIs(BlockFor(tzyx, dims4, 1, in_order), in_order, 3));
  EXPECT_FALSE(rotated->KeepsBlockAsIs(BlockFor(tyx, dims3, 1, {}), {}, 3));
}

}  // namespace
}  // namespace jigsaw
