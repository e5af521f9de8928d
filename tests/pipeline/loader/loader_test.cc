// The loader on a store in memory (no files, no servers): every batch equals the rank's tile read
// independently through the Zarr array, restore resumes exactly, and a missing chunk is an error naming it.
#include "pipeline/loader/loader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "pipeline/shard/plan.h"
#include "pipeline/shard/shard_store.h"
#include "pipeline/shard/synthetic.h"
#include "pipeline/sources/source.h"
#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"

namespace jigsaw {
namespace {

// memory://NAME holds a 1x2x1 tile store of t2m and msl, 8 times from 2020-01-01T00 every 6 h.
std::unique_ptr<KvStore> MakeTileStore(const std::string& name) {
  auto src = OpenKvStore("memory://" + name + "-src").value();
  EXPECT_TRUE(WriteSyntheticEra5(src.get(), {.nlat = 9, .nlon = 16, .ntime = 8}).ok());
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(OpenZarrSource("memory://" + name + "-src").value());
  ShardOptions o;
  o.vars = {"t2m", "msl"};
  o.start = "2020-01-01T00";
  o.end = "2020-01-02T18";
  o.tiles = "1x2x1";
  auto plan = MakeShardPlan(o, sources);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  auto out = OpenKvStore("memory://" + name).value();
  std::ostringstream log;
  auto run = RunShard(*plan, sources, out.get(), nullptr, log);
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  return out;
}

// The tile of rank 1 (the eastern half: longitudes 8..15, both channels) at time index t, read directly.
std::vector<float> TileAt(KvStore* store, int64_t t) {
  auto data = Array::Open(store, "data").value();
  std::vector<float> out(2 * 9 * 8);
  EXPECT_TRUE(data->Read({{t, 0, 0, 8}, {1, 2, 9, 8}}, {reinterpret_cast<char*>(out.data()), out.size() * 4}).ok());
  return out;
}

TEST(Loader, BatchesAreTheRanksTilesAndRestoreResumesExactly) {
  auto store = MakeTileStore("loader-test");
  LoaderOptions o;
  o.rank = 1;
  o.batch_size = 2;
  o.lead_steps = 1;
  o.shuffle = true;
  o.seed = 7;
  auto loader = Loader::Open("memory://loader-test", o);
  ASSERT_TRUE(loader.ok()) << loader.status().ToString();
  EXPECT_EQ((*loader)->batch_shape(), (std::vector<int64_t>{2, 2, 2, 9, 8}));
  EXPECT_EQ((*loader)->batches_per_epoch(), 3);  // 7 (input, target) pairs in batches of 2
  const int64_t tile = 2 * 9 * 8;
  std::vector<std::vector<float>> seen;
  for (int b = 0; b < 3; ++b) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    const float* x = static_cast<const float*>((*batch)->data());
    seen.emplace_back(x, x + 2 * 2 * tile);
    for (int s = 0; s < 2; ++s) {
      const int64_t t = ((*batch)->times()[s] - 1577836800) / 21600;  // 2020-01-01T00 = 1577836800
      ASSERT_GE(t, 0);
      ASSERT_LT(t, 7);
      EXPECT_EQ(std::memcmp(x + (s * 2 + 0) * tile, TileAt(store.get(), t).data(), tile * 4), 0) << "input " << t;
      EXPECT_EQ(std::memcmp(x + (s * 2 + 1) * tile, TileAt(store.get(), t + 1).data(), tile * 4), 0) << "target " << t;
    }
  }
  // Back to batch 1 of epoch 0: the same bytes again.
  ASSERT_TRUE((*loader)->Restore({0, 1}).ok());
  auto again = (*loader)->Next();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::memcmp((*again)->data(), seen[1].data(), seen[1].size() * 4), 0);
}

TEST(Loader, AMissingChunkOfACompleteStoreIsAnErrorNamingIt) {
  auto store = MakeTileStore("loader-missing");
  ASSERT_TRUE(store->Delete("data/c/3/0/0/1").ok());  // time 3, rank 1's tile
  LoaderOptions o;
  o.rank = 1;
  o.batch_size = 7;
  o.shuffle = false;
  auto loader = Loader::Open("memory://loader-missing", o);
  ASSERT_TRUE(loader.ok()) << loader.status().ToString();
  auto batch = (*loader)->Next();
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(batch.status().message().find("data/c/3/0/0/1"), std::string::npos) << batch.status().ToString();
}

}  // namespace
}  // namespace jigsaw
