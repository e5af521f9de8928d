#include "parallel/mesh.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "parallel/split.h"

namespace jigsaw {
namespace {

TEST(Split, OneRuleForTilesCheckpointsAndBlocks) {
  EXPECT_EQ(SplitBounds(721, 4), (std::vector<int64_t>{0, 181, 362, 543, 721}));
  EXPECT_EQ(SplitPart(721, 4, 3), (std::pair<int64_t, int64_t>{543, 721}));
  EXPECT_FALSE(CheckSplit(5, 4, "x").ok());  // parts of 2: 2, 2, 1, then nothing
  EXPECT_TRUE(CheckSplit(7, 4, "x").ok());
}

TEST(Mesh, ParseAndCoordinates) {
  auto m = Mesh::Parse("domain=2,tensor=3");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 6);
  // Row-major over the axes in order: rank 4 = (domain 1, tensor 1).
  EXPECT_EQ(m->Coordinate(4, "domain"), 1);
  EXPECT_EQ(m->Coordinate(4, "tensor"), 1);
  EXPECT_EQ(m->Coordinate(4, "absent"), 0);
  EXPECT_EQ(Mesh::Parse("")->size(), 1);
  for (const char* bad : {"domain", "domain=0", "=2", "a=2,a=3", "a=x", "domain=2;tensor=8", "domain=2xyz", "domain=2,",
                          "domain= 2", "2d=2", "domain=2,,tensor=2", "domain=-1", "domain=99999999999999999999",
                          "a=1111111111112,b=1111111111112", "a=65536,b=65537"})
    EXPECT_FALSE(Mesh::Parse(bad).ok()) << bad;
  // At most 2^31 ranks (an int to MPI and NCCL), found by fuzz_parsers: the size once overflowed.
  EXPECT_EQ(Mesh::Parse("a=65536,b=32768")->size(), int64_t{1} << 31);
  EXPECT_NE(Mesh::Parse("a=65536,b=65537").status().message().find("more than 2^31 ranks"), std::string::npos);
}

TEST(Mesh, TileOfFollowsTheSplitRuleAndNamesWhatIsWrong) {
  const Mesh mesh = *Mesh::Parse("domain=4,tensor=2");
  const std::vector<int64_t> shape{721, 10};
  auto last = TileOf(shape, {"domain", "tensor"}, mesh, 7);  // domain 3, tensor 1
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->origin, (std::vector<int64_t>{543, 5}));
  EXPECT_EQ(last->shape, (std::vector<int64_t>{178, 5}));
  auto replicated = TileOf(shape, {}, mesh, 5);
  ASSERT_TRUE(replicated.ok());
  EXPECT_EQ(replicated->shape, shape);
  EXPECT_NE(TileOf(shape, {"domain"}, mesh, 0).status().message().find("1 entries for 2 dimensions"),
            std::string::npos);
  EXPECT_NE(TileOf(shape, {"pipe", std::nullopt}, mesh, 0).status().message().find("no axis \"pipe\""),
            std::string::npos);
  EXPECT_NE(TileOf(shape, {"domain", "domain"}, mesh, 0).status().message().find("axis domain used twice"),
            std::string::npos);
  // Ranks do not wrap round: rank 8 of 8 ranks is not rank 0.
  EXPECT_EQ(TileOf(shape, {"domain", "tensor"}, mesh, 8).status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(TileOf(shape, {}, mesh, -1).status().message().find("rank -1 is not a rank of mesh domain=4,tensor=2"),
            std::string::npos);
}

TEST(Mesh, TheLowestRankOfAReplicatedTileOwnsIt) {
  const Mesh mesh = *Mesh::Parse("domain=2,tensor=2");  // rank = 2 * domain + tensor
  // Split on domain only: tensor-coordinate 0 owns; both are written once per domain part.
  EXPECT_TRUE(OwnsTile({"domain"}, mesh, 0));
  EXPECT_FALSE(OwnsTile({"domain"}, mesh, 1));
  EXPECT_TRUE(OwnsTile({"domain"}, mesh, 2));
  EXPECT_FALSE(OwnsTile({"domain"}, mesh, 3));
  EXPECT_TRUE(OwnsTile({}, mesh, 0));  // replicated everywhere: rank 0 alone
  for (int64_t r = 1; r < 4; ++r) EXPECT_FALSE(OwnsTile({}, mesh, r));
  for (int64_t r = 0; r < 4; ++r) EXPECT_TRUE(OwnsTile({"domain", "tensor"}, mesh, r));
}

TEST(Mesh, PartitionSpecsRoundTripThroughJsonAndRefuseOtherShapes) {
  auto p = ParsePartitionSpec(nlohmann::json::parse(R"(["domain", null])"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(PartitionSpecToJson(*p).dump(), R"(["domain",null])");
  EXPECT_TRUE(ParsePartitionSpec(nlohmann::json())->empty());
  EXPECT_FALSE(ParsePartitionSpec(nlohmann::json::parse(R"({"a": 1})")).ok());
  EXPECT_FALSE(ParsePartitionSpec(nlohmann::json::parse(R"(["domain", 3])")).ok());
}

}  // namespace
}  // namespace jigsaw
