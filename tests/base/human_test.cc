#include "base/human.h"

#include <gtest/gtest.h>

namespace jigsaw {
namespace {

TEST(Human, CountsBytesAndDurations) {
  EXPECT_EQ(HumanCount(950), "950");
  EXPECT_EQ(HumanCount(12345), "12.3k");
  EXPECT_EQ(HumanCount(4.561e6), "4.56M");
  EXPECT_EQ(HumanCount(999.6e3), "1.00M");  // rounds up into the next unit, not "1000k"
  EXPECT_EQ(HumanCount(2.6e9), "2.60G");
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(460800), "461 kB");
  EXPECT_EQ(HumanBytes(1.45e9), "1.45 GB");
  EXPECT_EQ(HumanDuration(0.129074), "0.129 s");
  EXPECT_EQ(HumanDuration(4.567), "4.57 s");
  EXPECT_EQ(HumanDuration(42), "42 s");
  EXPECT_EQ(HumanDuration(192), "3m12s");
  EXPECT_EQ(HumanDuration(3720), "1h02m");
  EXPECT_EQ(HumanDuration(2 * 86400 + 3 * 3600 + 5), "2d03h");
}

}  // namespace
}  // namespace jigsaw
