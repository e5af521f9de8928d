#include "pipeline/loader/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

namespace jigsaw {
namespace {

std::vector<int64_t> Range(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(Sampler, ReplicasAreDisjointEquallyLongAndDeterministic) {
  const int64_t n = 103, dp = 4, batch = 5;
  std::set<int64_t> seen;
  for (int64_t r = 0; r < dp; ++r) {
    Sampler s(Range(n), 42, true, r, dp, batch);
    EXPECT_EQ(s.batches_per_epoch(), (n / dp) / batch);  // 25 per replica -> 5 batches
    auto e = s.Epoch(3);
    EXPECT_EQ(static_cast<int64_t>(e.size()), n / dp);
    for (int64_t t : e) EXPECT_TRUE(seen.insert(t).second) << "index " << t << " in two replicas";
    EXPECT_EQ(e, Sampler(Range(n), 42, true, r, dp, batch).Epoch(3));
    EXPECT_EQ(s.Batch(3, 2), std::vector<int64_t>(e.begin() + 10, e.begin() + 15));
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), (n / dp) * dp);
}

TEST(Sampler, EpochsDifferAndSeedsMatter) {
  Sampler a(Range(50), 1, true, 0, 1, 1), b(Range(50), 2, true, 0, 1, 1);
  EXPECT_NE(a.Epoch(0), a.Epoch(1));
  EXPECT_NE(a.Epoch(0), b.Epoch(0));
  auto e = a.Epoch(0);
  std::sort(e.begin(), e.end());
  EXPECT_EQ(e, Range(50));  // a permutation
  Sampler ordered(Range(10), 1, false, 1, 2, 1);
  EXPECT_EQ(ordered.Epoch(0), (std::vector<int64_t>{1, 3, 5, 7, 9}));
}

TEST(Sampler, FixedSequenceAcrossBuilds) {
  // The permutation is part of the resume contract: pin it.
  Sampler s(Range(8), 7, true, 0, 1, 8);
  EXPECT_EQ(s.Epoch(0), (std::vector<int64_t>{3, 4, 1, 7, 2, 5, 0, 6}));
}

}  // namespace
}  // namespace jigsaw
