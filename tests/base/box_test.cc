#include "base/box.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace jigsaw {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(Box, WithinChecksEveryDimensionWithoutOverflow) {
  const std::vector<int64_t> shape{4, 6};
  EXPECT_TRUE(BoxWithin({{0, 0}, {4, 6}}, shape));
  EXPECT_TRUE(BoxWithin({{4, 6}, {0, 0}}, shape));  // empty at the far edge
  EXPECT_FALSE(BoxWithin({{1, 0}, {4, 6}}, shape));
  EXPECT_FALSE(BoxWithin({{-1, 0}, {2, 2}}, shape));
  EXPECT_FALSE(BoxWithin({{0, 0}, {2, -1}}, shape));
  EXPECT_FALSE(BoxWithin({{0}, {2}}, shape));  // another rank
  // origin + shape would wrap round to a negative number and pass a naive check (issue 16).
  EXPECT_FALSE(BoxWithin({{kMax, 0}, {2, 2}}, shape));
  EXPECT_FALSE(BoxWithin({{2, 0}, {kMax, 2}}, shape));
  EXPECT_FALSE(BoxWithin({{kMax, kMax}, {kMax, kMax}}, shape));
}

TEST(Box, IntersectionAndOverlap) {
  const Box a{{0, 0}, {4, 4}}, b{{2, 3}, {4, 4}}, c{{4, 0}, {1, 1}};
  const Box ab = Intersection(a, b);
  EXPECT_EQ(ab.origin, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ab.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(Overlap(a, b));
  EXPECT_FALSE(Overlap(a, c));  // touching is not overlapping
  EXPECT_EQ(Intersection(a, c).num_elements(), 0);
  EXPECT_EQ(a.ToString(), "[0:4, 0:4]");
  EXPECT_EQ((Box{{kMax, 1}, {2, 2}}).ToString(), "[9223372036854775807:+2, 1:3]");  // no overflow to print it
}

}  // namespace
}  // namespace jigsaw
