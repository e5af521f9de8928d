#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "pipeline/grid/tile_grid.h"
#include "pipeline/shard/moments.h"
#include "pipeline/shard/plan.h"
#include "pipeline/shard/synthetic.h"
#include "pipeline/sources/source.h"

namespace jigsaw {
namespace {

TEST(TileGrid, ParseAndRanks) {
  auto g = TileGrid::Parse("1x2x2");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->num_tiles(), 4);
  for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(g->RankOfTile(g->TileOfRank(r)), r);
  auto t = g->TileOfRank(3);  // r = (i * LON + j) * CH + k
  EXPECT_EQ(t.i, 0);
  EXPECT_EQ(t.j, 1);
  EXPECT_EQ(t.k, 1);
  for (const char* bad : {"", "1x2", "0x1x1", "1x2x2x", "axbxc", "1x-2x2"})
    EXPECT_FALSE(TileGrid::Parse(bad).ok()) << bad;
}

TEST(TileGrid, RegularChunkSplit) {
  // 721 latitude rows in 4 parts: 181, 181, 181, 178.
  EXPECT_EQ(SplitLength(721, 4), 181);
  EXPECT_EQ(SplitPart(721, 4, 3), std::make_pair(int64_t{543}, int64_t{721}));
  EXPECT_TRUE(CheckSplit(721, 4, "latitude").ok());
  // 10 in 4 parts: ceil = 3 -> 3, 3, 3, 1: fine. 9 in 4: 3, 3, 3, 0: refused.
  EXPECT_TRUE(CheckSplit(10, 4, "x").ok());
  Status s = CheckSplit(9, 4, "the channels");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the channels"), std::string::npos);
  EXPECT_FALSE(CheckSplit(3, 4, "x").ok());
}

TEST(Plan, Steps) {
  EXPECT_EQ(*ParseStep("6h"), 21600);
  EXPECT_EQ(*ParseStep("30m"), 1800);
  EXPECT_EQ(*ParseStep("1d"), 86400);
  EXPECT_EQ(*ParseStep("3600s"), 3600);
  for (const char* bad : {"", "h", "6", "6x", "-1h", "1.5h"}) EXPECT_FALSE(ParseStep(bad).ok()) << bad;
}

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

TEST(Plan, SyntheticSourceEndToEndInMemory) {
  auto store = NewMemoryKvStore("synthetic-plan-test");
  SyntheticSpec spec;
  spec.nlat = 9;
  spec.nlon = 12;
  spec.ntime = 4;
  spec.lat_ascending = true;
  ASSERT_TRUE(WriteSyntheticEra5(store.get(), spec).ok());
  auto src = OpenZarrSource("memory://synthetic-plan-test");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->variables().size(), 9u);
  EXPECT_EQ((*src)->grid().latitude.front(), 90.0);
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(std::move(*src));
  ShardOptions o;
  o.vars = {"z", "t2m"};
  o.levels = {500, 1000};
  o.start = "2020-01-01T00";
  o.end = "2020-01-01T18";
  o.tiles = "1x2x3";
  auto plan = MakeShardPlan(o, sources);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->num_channels(), 3);
  EXPECT_EQ(plan->channels[0].name, "geopotential_500");
  EXPECT_EQ(plan->channels[2].name, "2m_temperature");
  EXPECT_EQ(plan->tile_shape(), (std::vector<int64_t>{1, 9, 6}));
  // Same options, same fingerprint; another tile grid, another one.
  EXPECT_EQ(plan->fingerprint(), MakeShardPlan(o, sources)->fingerprint());
  o.tiles = "1x2x1";
  EXPECT_NE(plan->fingerprint(), MakeShardPlan(o, sources)->fingerprint());
  // Geopotential grows with height: 500 hPa above 1000 hPa everywhere.
  std::vector<float> f(2 * 9 * 12);
  std::vector<int64_t> levels = {plan->reads[0].level_indices[0], plan->reads[0].level_indices[1]};
  ASSERT_TRUE(sources[0]->Read("geopotential", 0, levels, f.data()).ok());
  for (int i = 0; i < 9 * 12; ++i) EXPECT_GT(f[i], f[9 * 12 + i]);
  o.end = "2020-01-02T00";
  EXPECT_NE(MakeShardPlan(o, sources).status().message().find("2020-01-02T00:00:00"), std::string::npos);
}

}  // namespace
}  // namespace jigsaw

namespace jigsaw {
namespace {

// Two passes in long double: the reference for the one-pass vector kernels.
Moments Reference(const std::vector<double>& v) {
  Moments m;
  long double sum = 0, m2 = 0;
  for (double x : v) {
    if (std::isnan(x)) continue;
    sum += x;
    m.n += 1;
    m.min = std::min(m.min, x);
    m.max = std::max(m.max, x);
  }
  if (m.n == 0) return m;
  m.mean = static_cast<double>(sum / m.n);
  for (double x : v)
    if (!std::isnan(x)) m2 += (x - static_cast<long double>(m.mean)) * (x - static_cast<long double>(m.mean));
  m.m2 = static_cast<double>(m2);
  return m;
}

TEST(Moments, MatchTwoPassReferenceWithNaNsTailsAndLargeOffsets) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  // Lengths around the 16-value vector step; an offset large against the spread (geopotential-like).
  for (int64_t count : {0, 1, 15, 16, 17, 33, 1000, 100003}) {
    for (float offset : {0.0f, -40.0f, 50000.0f}) {
      std::vector<float> x(count), y(count);
      for (int64_t i = 0; i < count; ++i) {
        x[i] = offset + noise(rng);
        y[i] = offset + noise(rng);
        if (i % 97 == 5) x[i] = NAN;
        if (i % 89 == 3) y[i] = NAN;
      }
      std::vector<double> xs(x.begin(), x.end()), ds(count);
      for (int64_t i = 0; i < count; ++i) ds[i] = static_cast<double>(x[i]) - y[i];
      for (auto [got, want] : {std::pair{Moments::Of(x.data(), count), Reference(xs)},
                               std::pair{Moments::OfDifference(x.data(), y.data(), count), Reference(ds)}}) {
        SCOPED_TRACE("count " + std::to_string(count) + " offset " + std::to_string(offset));
        ASSERT_EQ(got.n, want.n);
        if (want.n == 0) continue;
        EXPECT_NEAR(got.mean, want.mean, 1e-9 * (1 + std::abs(want.mean)));
        EXPECT_NEAR(got.population_std(), want.population_std(), 1e-7 * (1 + want.population_std()));
        EXPECT_EQ(got.min, want.min);
        EXPECT_EQ(got.max, want.max);
      }
    }
  }
  std::vector<float> nans(40, NAN);
  EXPECT_EQ(Moments::Of(nans.data(), 40).n, 0);
}

}  // namespace
}  // namespace jigsaw
