#include "pipeline/grid/tile_grid.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace jigsaw
