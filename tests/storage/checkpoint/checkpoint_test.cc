#include "tests/testing/iota.h"
#include "storage/checkpoint/checkpoint.h"
#include "storage/codec/codec.h"
#include "storage/kvstore/faulty.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <thread>

namespace jigsaw {
namespace {

TEST(Tiles, RegularSplitAndRefusals) {
  auto mesh = *Mesh::Parse("domain=4,tensor=2");
  TensorSpec t{"w", *DataTypeFromName("float32"), {721, 10}, {"domain", "tensor"}};
  auto last = TileOf(t, mesh, 7);  // domain 3, tensor 1
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->origin, (std::vector<int64_t>{543, 5}));
  EXPECT_EQ(last->shape, (std::vector<int64_t>{178, 5}));
  TensorSpec tiny{"b", *DataTypeFromName("float32"), {3}, {"domain"}};
  auto empty = TileOf(tiny, mesh, 0);  // 3 in 4 parts leaves one empty
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("cannot split dimension 0 of length 3 in 4 parts"), std::string::npos)
      << empty.status().message();
  TensorSpec twice{"x", *DataTypeFromName("float32"), {8, 8}, {"domain", "domain"}};
  auto reused = TileOf(twice, mesh, 0);
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(reused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(reused.status().message().find("axis domain used twice"), std::string::npos) << reused.status().message();
}

using testdata::Iota;

TEST(Checkpoint, SaveReadBoxesAcrossTilesAndBlocks) {
  auto root = NewMemoryKvStore();
  auto mesh = *Mesh::Parse("domain=3,tensor=2");
  // 1000 x 700 float32 = 2.8 MB: tiles span several 1 MiB checksum blocks.
  std::vector<TensorSpec> specs = {{"big", *DataTypeFromName("float32"), {1000, 700}, {"domain", "tensor"}},
                                   {"rep", *DataTypeFromName("float32"), {5}, {}}};
  const std::string big = Iota(1000 * 700), rep = Iota(5);
  int calls = 0;
  Status s = SaveCheckpoint(root.get(), 7, mesh, specs,
                            [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
                              ++calls;
                              const std::string& all = t.name == "big" ? big : rep;
                              std::string out(box.num_elements() * 4, '\0');
                              std::vector<int64_t> zero(box.shape.size(), 0);
                              CopyBox(all.data(), t.shape, box.origin, out.data(), box.shape, zero, box.shape, 4);
                              return out;
                            },
                            {.sync = false});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(calls, 6 + 1);  // the replicated tensor once
  auto m = ReadManifest(root.get());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->step, 7);
  const TensorRecord* t = m->Find("big");
  ASSERT_NE(t, nullptr);
  for (const Box& box :
       {Box{{0, 0}, {1000, 700}}, Box{{330, 340}, {20, 30}}, Box{{999, 0}, {1, 700}}, Box{{100, 1}, {700, 1}}}) {
    auto got = ReadTensorBox(root.get(), "step-00000007", *m, *t, box);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    for (int64_t i = 0; i < box.shape[0]; ++i)
      for (int64_t j = 0; j < box.shape[1]; ++j) {
        float f;
        std::memcpy(&f, got->data() + (i * box.shape[1] + j) * 4, 4);
        ASSERT_EQ(f, static_cast<float>((box.origin[0] + i) * 700 + box.origin[1] + j));
      }
  }
  // Boxes outside the tensor, or of another rank, are refused (they used to come back partly uninitialised).
  for (const Box& bad : {Box{{990, 0}, {20, 700}}, Box{{-1, 0}, {2, 2}}, Box{{0}, {5}}, Box{{0, 0}, {1, 701}}}) {
    auto r = ReadTensorBox(root.get(), "step-00000007", *m, *t, bad);
    EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange) << bad.ToString();
    EXPECT_NE(r.status().message().find("tensor big"), std::string::npos) << r.status().ToString();
    EXPECT_EQ(LoadTensorBox(root.get(), "step-00000007", *m, *t, bad).status().code(), StatusCode::kOutOfRange);
  }
  auto problems = VerifyCheckpoint(root.get(), "step-00000007");
  ASSERT_TRUE(problems.ok());
  EXPECT_TRUE(problems->empty());
  // Corrupt one byte in the middle of a tile: a box reading that block fails; one that does not, succeeds.
  std::string f = root->Read("step-00000007/rank-00000.bin")->value;
  f[f.size() / 2] ^= 1;
  ASSERT_TRUE(root->Write("step-00000007/rank-00000.bin", f).ok());
  EXPECT_EQ(VerifyCheckpoint(root.get(), "step-00000007")->size(), 1u);
  EXPECT_EQ(ReadTensorBox(root.get(), "step-00000007", *m, *t, {{0, 0}, {334, 350}}).status().code(),
            StatusCode::kDataLoss);
  EXPECT_TRUE(ReadTensorBox(root.get(), "step-00000007", *m, *t, {{400, 0}, {10, 700}}).ok());
}

TEST(Checkpoint, LoadMapsWholeRunsOfLocalTilesAndChecksThem) {
  char dir[] = "/tmp/jigsaw_ckpt_map_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto root = NewFileKvStore(dir);
  auto mesh = *Mesh::Parse("domain=2");
  // 1024 x 1024 float32 in two 2 MiB tiles (two checksum blocks each), and a small tensor below the threshold.
  std::vector<TensorSpec> specs = {{"w", *DataTypeFromName("float32"), {1024, 1024}, {"domain", std::nullopt}},
                                   {"b", *DataTypeFromName("float32"), {1024}, {"domain"}}};
  const std::string w = Iota(1024 * 1024), b = Iota(1024);
  auto provider = [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
    const std::string& all = t.name == "w" ? w : b;
    std::string out(box.num_elements() * 4, '\0');
    std::vector<int64_t> zero(box.shape.size(), 0);
    CopyBox(all.data(), t.shape, box.origin, out.data(), box.shape, zero, box.shape, 4);
    return out;
  };
  ASSERT_TRUE(SaveCheckpoint(root.get(), 1, mesh, specs, provider, {.sync = false}).ok());
  auto m = *ReadManifest(root.get());
  const TensorRecord& t = *m.Find("w");
  struct Case {
    Box box;
    bool mapped;
  };
  // Rank 1's tile; the second block of rank 0's tile; a box across both tiles; a box not of whole rows.
  for (const Case& c : {Case{{{512, 0}, {512, 1024}}, true}, Case{{{256, 0}, {256, 1024}}, true},
                        Case{{{0, 0}, {1024, 1024}}, false}, Case{{{0, 0}, {512, 512}}, false}}) {
    auto got = LoadTensorBox(root.get(), "step-00000001", m, t, c.box);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->mapped(), c.mapped) << c.box.ToString();
    EXPECT_EQ(std::string(got->data(), got->size()), *ReadTensorBox(root.get(), "step-00000001", m, t, c.box));
  }
  auto small = LoadTensorBox(root.get(), "step-00000001", m, *m.Find("b"), {{0}, {512}});
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->mapped());  // under kMinMappedBytes: read
  // A flipped byte in rank 1's second block: the mapped load names the tensor and block; the first block still loads.
  const std::string file = std::string(dir) + "/step-00000001/rank-00001.bin";
  std::string bytes = root->Read("step-00000001/rank-00001.bin")->value;
  const TileRecord& tile = t.tiles[1];
  ASSERT_EQ(tile.rank, 1);
  bytes[tile.offset + (1 << 20) + 5] ^= 1;
  ASSERT_TRUE(root->Write("step-00000001/rank-00001.bin", bytes).ok());
  auto bad = LoadTensorBox(root.get(), "step-00000001", m, t, {{512, 0}, {512, 1024}});
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("tensor w"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("block 1"), std::string::npos) << bad.status().ToString();
  EXPECT_TRUE(LoadTensorBox(root.get(), "step-00000001", m, t, {{512, 0}, {256, 1024}}).ok());
  std::filesystem::remove_all(dir);
}

TEST(Checkpoint, AsyncSaveCopiesBuffersAndTheNextStartWaitsForTheOneInFlight) {
  auto memory = NewMemoryKvStore();
  // Step 1's writes are held until released: its save stays in flight, and Start(2) must wait for it.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  auto root =
      NewFaultyKvStore(memory.get(), {.before = [&](std::string_view op, std::string_view key) -> Status {
                                        if (op == "open_writer" && key.find("step-00000001") != std::string_view::npos) {
                                          std::unique_lock lock(mu);
                                          cv.wait(lock, [&] { return released; });
                                        }
                                        return OkStatus();
                                      },
                                      .mutate = nullptr});
  auto mesh = *Mesh::Parse("domain=2");
  std::vector<TensorSpec> specs = {{"w", *DataTypeFromName("float32"), {64, 8}, {"domain", std::nullopt}}};
  std::string weights = Iota(64 * 8);
  auto provider = [&](int64_t, const TensorSpec& t, const Box& box) -> Result<std::string> {
    std::string out(box.num_elements() * 4, '\0');
    std::vector<int64_t> zero(2, 0);
    CopyBox(weights.data(), t.shape, box.origin, out.data(), box.shape, zero, box.shape, 4);
    return out;
  };
  AsyncCheckpointSaver saver;
  ASSERT_TRUE(saver.Start(root.get(), 1, mesh, specs, provider, {.sync = false}).ok());  // returns: writes held
  EXPECT_TRUE(saver.in_flight());
  const std::string saved = weights;
  std::fill(weights.begin(), weights.end(), '\x7f');  // training goes on and changes the weights
  std::atomic<bool> second_started{false};
  Status second;
  std::thread next([&] {
    second = saver.Start(root.get(), 2, mesh, specs, provider, {.sync = false});
    second_started = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(second_started.load());  // one save in flight at a time: step 2 waits for step 1's writes
  {
    std::lock_guard lock(mu);
    released = true;
  }
  cv.notify_all();
  next.join();
  ASSERT_TRUE(second.ok()) << second.ToString();
  ASSERT_TRUE(saver.Wait().ok());
  EXPECT_FALSE(saver.in_flight());
  auto m1 = *ReadManifest(root.get(), "step-00000001");
  EXPECT_EQ(*ReadTensorBox(root.get(), "step-00000001", m1, *m1.Find("w"), {{0, 0}, {64, 8}}), saved);
  auto m2 = *ReadManifest(root.get());
  EXPECT_EQ(m2.step, 2);
  EXPECT_EQ(*ReadTensorBox(root.get(), "step-00000002", m2, *m2.Find("w"), {{0, 0}, {64, 8}}), weights);
  // A failing save reports through Wait().
  ASSERT_TRUE(saver.Start(root.get(), 2, mesh, specs, provider, {.sync = false}).ok());
  EXPECT_EQ(saver.Wait().code(), StatusCode::kFailedPrecondition);  // step 2 is already committed
}

// Tiles from memory, copied later (while "training" reads them), committed in the background by the next
// save; arguments that do not fit are refused by the save's verdict, naming the tensor.
TEST(Checkpoint, AsyncSaveFromMemoryCopiesLaterAndCommitsInTheBackground) {
  auto root = NewMemoryKvStore();
  const Mesh mesh = *Mesh::Parse("domain=1");
  const DataType f32 = *DataTypeFromName("float32");
  std::vector<TensorSpec> specs = {{"w", f32, {64, 8}, {"domain", std::nullopt}}, {"b", f32, {8}, {}}};
  std::string w = Iota(64 * 8), b = Iota(8);
  auto tiles = [&] { return std::vector<TensorBuffer>{{w.data(), {64, 8}}, {b.data(), {8}}}; };
  AsyncCheckpointSaver saver;
  ASSERT_TRUE(saver.Start(root.get(), 1, mesh, specs, tiles(), {.sync = false}, nullptr, /*copy_later=*/true).ok());
  saver.TilesCopied();
  const std::string w1 = w, b1 = b;
  std::fill(w.begin(), w.end(), '\x11');                                                // the optimiser's update
  ASSERT_TRUE(saver.Start(root.get(), 2, mesh, specs, tiles(), {.sync = false}).ok());  // copies now, commits 1
  EXPECT_TRUE(saver.in_flight());
  std::fill(w.begin(), w.end(), '\x22');
  ASSERT_TRUE(saver.Wait().ok());
  EXPECT_FALSE(saver.in_flight());
  auto m1 = *ReadManifest(root.get(), "step-00000001");
  EXPECT_EQ(*ReadTensorBox(root.get(), "step-00000001", m1, *m1.Find("w"), {{0, 0}, {64, 8}}), w1);
  EXPECT_EQ(*ReadTensorBox(root.get(), "step-00000001", m1, *m1.Find("b"), {{0}, {8}}), b1);
  auto m2 = *ReadManifest(root.get());
  EXPECT_EQ(m2.step, 2);
  EXPECT_EQ(*ReadTensorBox(root.get(), "step-00000002", m2, *m2.Find("w"), {{0, 0}, {64, 8}}),
            std::string(w.size(), '\x11'));
  // A tile of the wrong shape: the save fails, naming the tensor; LATEST stays.
  std::vector<TensorBuffer> bad = tiles();
  bad[0].shape = {32, 8};
  ASSERT_TRUE(saver.Start(root.get(), 3, mesh, specs, bad, {.sync = false}).ok());
  Status st = saver.Wait();
  EXPECT_NE(st.message().find("tensor w"), std::string::npos) << st.ToString();
  EXPECT_EQ(ReadManifest(root.get())->step, 2);
  // One process cannot give the tiles of a mesh of two ranks.
  ASSERT_TRUE(saver.Start(root.get(), 3, *Mesh::Parse("domain=2"), specs, tiles(), {.sync = false}).ok());
  EXPECT_EQ(saver.Wait().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(saver.Start(root.get(), 3, mesh, specs, tiles(), {.sync = false}).ok());  // and the retry works
  ASSERT_TRUE(saver.Wait().ok());
  EXPECT_EQ(ReadManifest(root.get())->step, 3);
}

// A store operation that fails at any point of a save (listing, clearing, opening a rank file, appending,
// committing it, writing the manifest or LATEST) fails the save with that error and leaves LATEST naming
// the step before, which still reads; a retry on a healthy store succeeds. Through SaveCheckpoint and the
// asynchronous saver alike (whose clearing of old garbage after the commit is housekeeping).
TEST(Checkpoint, AFailingWriteAtEachStepOfASaveLeavesLatestValid) {
  const Mesh mesh = *Mesh::Parse("domain=2");
  const DataType f32 = *DataTypeFromName("float32");
  std::vector<TensorSpec> specs = {{"w", f32, {64, 8}, {"domain", std::nullopt}}, {"b", f32, {8}, {}}};
  const std::string w = Iota(64 * 8), b = Iota(8);
  const TileProvider provider = TilesFromMemory(specs, {{w.data(), {64, 8}}, {b.data(), {8}}}, /*whole=*/true);
  for (bool async : {false, true}) {
    for (int fail_at = 0;; ++fail_at) {
      auto base = NewMemoryKvStore();
      ASSERT_TRUE(SaveCheckpoint(base.get(), 1, mesh, specs, provider, {.sync = false}).ok());
      std::atomic<int> ops{0};
      std::string failed_op;
      auto store = NewFaultyKvStore(base.get(), {.before = [&](std::string_view op, std::string_view key) -> Status {
                                                   if (op == "read") return OkStatus();
                                                   if (ops++ != fail_at) return OkStatus();
                                                   failed_op = std::string(op) + " " + std::string(key);
                                                   return IoError("injected: " + failed_op);
                                                 },
                                                 .mutate = nullptr});
      Status st;
      if (async) {
        AsyncCheckpointSaver saver;
        st = saver.Start(store.get(), 2, mesh, specs, provider, {.sync = false});
        Status waited = saver.Wait();
        if (st.ok()) st = waited;
      } else {
        st = SaveCheckpoint(store.get(), 2, mesh, specs, provider, {.sync = false});
      }
      if (failed_op.empty()) {  // past the last operation: this save succeeded
        ASSERT_TRUE(st.ok()) << st.ToString();
        EXPECT_EQ(ReadManifest(base.get())->step, 2);
        EXPECT_GE(fail_at, 8) << "a save takes list, 2 x (open, appends, commit), manifest, LATEST";
        break;
      }
      SCOPED_TRACE((async ? "async, " : "") + failed_op);
      if (async && st.ok()) {
        // The asynchronous saver clears old garbage after LATEST moved, as housekeeping: its failure leaves
        // the save committed (the next save clears again).
        EXPECT_TRUE(failed_op.starts_with("list step-") || failed_op.starts_with("delete")) << failed_op;
        EXPECT_EQ(ReadManifest(base.get())->step, 2);
        continue;
      }
      EXPECT_FALSE(st.ok());
      EXPECT_NE(st.message().find("injected"), std::string::npos) << st.ToString();
      // LATEST names step 1 (or, when only LATEST's write failed, still step 1), which reads whole.
      auto m = ReadManifest(base.get());
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      EXPECT_EQ(m->step, 1);
      EXPECT_EQ(*ReadTensorBox(base.get(), "step-00000001", *m, *m->Find("w"), {{0, 0}, {64, 8}}), w);
      EXPECT_TRUE(VerifyCheckpoint(base.get(), "step-00000001")->empty());
      // The retry, on the healthy store, clears what the failed save left and commits.
      ASSERT_TRUE(SaveCheckpoint(base.get(), 2, mesh, specs, provider, {.sync = false}).ok());
      EXPECT_EQ(ReadManifest(base.get())->step, 2);
      EXPECT_TRUE(VerifyCheckpoint(base.get(), "step-00000002")->empty());
    }
  }
}

TEST(Checkpoint, UnknownMajorVersionIsRefused) {
  Manifest m;
  nlohmann::json j = m.ToJson();
  j["version"] = {2, 0};
  auto r = Manifest::FromJson(j);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos);
}

}  // namespace
}  // namespace jigsaw
