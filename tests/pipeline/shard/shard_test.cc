#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "pipeline/shard/moments.h"
#include "pipeline/shard/plan.h"
#include "pipeline/shard/synthetic.h"
#include "pipeline/sources/source.h"

namespace jigsaw {
namespace {

TEST(Plan, Steps) {
  EXPECT_EQ(*ParseStep("6h"), 21600);
  EXPECT_EQ(*ParseStep("30m"), 1800);
  EXPECT_EQ(*ParseStep("1d"), 86400);
  EXPECT_EQ(*ParseStep("3600s"), 3600);
  for (const char* bad : {"", "h", "6", "6x", "-1h", "1.5h"}) EXPECT_FALSE(ParseStep(bad).ok()) << bad;
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

  // No --start, --end or --step: the source's whole span at its own step, the plan an explicit one makes.
  const std::string explicit_print = plan->ToJson().dump();
  o.tiles = "1x2x3";
  o.start = o.end = o.step = "";
  auto whole = MakeShardPlan(o, sources);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->times, sources[0]->times());
  EXPECT_EQ(whole->step_seconds, 6 * 3600);
  EXPECT_EQ(whole->ToJson().dump(), explicit_print);
  // Only an end: from the first time.
  o.end = "2020-01-01T06";
  EXPECT_EQ(MakeShardPlan(o, sources)->times.size(), 2u);
  // A step that does not fit the source's says so and names the source's.
  o.end = "";
  o.step = "4h";
  const std::string why = MakeShardPlan(o, sources).status().message();
  EXPECT_NE(why.find("--step 4h does not fit the sources' 6h step"), std::string::npos) << why;
  o.step = "12h";
  EXPECT_EQ(MakeShardPlan(o, sources)->times.size(), 2u);
}

TEST(Plan, FormatStepAndSourceStep) {
  EXPECT_EQ(FormatStep(21600), "6h");
  EXPECT_EQ(FormatStep(86400), "1d");
  EXPECT_EQ(FormatStep(1800), "30m");
  EXPECT_EQ(FormatStep(7), "7s");
  const std::vector<int64_t> gappy = {0, 43200, 86400, 172800};  // 12-hourly with a day missing
  EXPECT_EQ(SourceTimeStep(gappy), 43200);
  EXPECT_EQ(SourceTimeStep(std::vector<int64_t>{5}), 0);
}

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
