// Unit tests of the trainer's pieces on one process: the block products against a plain triple loop,
// refusals of shapes that cannot run (named numbers), the schedule, latitude weights, the split rule.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "parallel/split.h"
#include "tests/train/reference.h"
#include "train/block_matmul.h"
#include "train/config.h"
#include "train/latitude_weights.h"
#include "train/mesh.h"
#include "train/weather_mixer.h"

namespace jigsaw::train {
namespace {

using testing::NaiveProduct;
using testing::Random;

TEST(BlockMatmul, EveryKernelEqualsTheDefinitionOnOneRank) {
  auto backend = NewCpuBackend(1);
  auto world = NewLocalCommunicator();
  auto mesh = SplitMesh(world.get(), 1);
  ASSERT_TRUE(mesh.ok());
  BlockMatmul mm(backend.get(), &*mesh);
  const int64_t m = 7, k = 5, n = 3;
  const Bounds M = {0, m}, K = {0, k}, N = {0, n};
  struct Case {
    bool ta, tb;
  };
  for (Case cs : {Case{false, false}, Case{false, true}, Case{true, false}}) {
    auto a = Random(m * k, 1), b = Random(k * n, 2);
    std::vector<float> c(m * n, 0.5f);
    Status st = !cs.ta && !cs.tb ? mm.NN(M, K, N, a.data(), b.data(), 1.0f, c.data())
                : cs.tb          ? mm.NT(M, K, N, a.data(), b.data(), 1.0f, c.data())
                                 : mm.TN(M, K, N, a.data(), b.data(), 1.0f, c.data());
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto want = NaiveProduct(cs.ta, cs.tb, m, n, k, a, b);
    for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], want[i] + 0.5f, 1e-5) << "ta " << cs.ta << " tb " << cs.tb;
  }
  EXPECT_EQ(mm.stats().gemm_flops, 3 * 2 * m * n * k);
  EXPECT_EQ(mm.stats().bytes_sent, 0);
}

ModelConfig Small() {
  ModelConfig c;
  c.channels = 4;
  c.height = 8;
  c.width = 16;
  c.patch_h = c.patch_w = 2;
  c.dim = 8;
  c.depth = 1;
  c.token_hidden = 6;
  c.channel_hidden = 10;
  return c;
}

TEST(Config, RefusesWhatCannotRunNamingTheNumbers) {
  const DomainGrid halves{1, 2}, thirds{1, 3};
  EXPECT_TRUE(Small().Validate(2, halves).ok());
  EXPECT_TRUE(Small().Validate(1).ok());
  ModelConfig c = Small();
  c.height = 9;  // 9 rows are no whole 2-row patches
  Status st = c.Validate(2, halves);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("9 latitude rows"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--lat-crop 1 gives 720"), std::string::npos) << st.message();
  c = Small();
  st = c.Validate(3, halves);  // 2 domain parts on a 3x3 mesh
  EXPECT_NE(st.message().find("3x3 mesh needs 3 domain parts"), std::string::npos) << st.message();
  c = Small();
  c.channels = 2;
  c.width = 12;
  st = c.Validate(3, thirds);  // 2 channels in 3 groups
  EXPECT_NE(st.message().find("channels of length 2 in 3 parts"), std::string::npos) << st.message();
}

TEST(Config, MeshMustBeSquareAndMatchTheStore) {
  auto side = ParseJigsawMesh("domain=2,tensor=3");
  ASSERT_FALSE(side.ok());
  EXPECT_EQ(side.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(side.status().message().find("domain=2,tensor=3"), std::string::npos);
  for (const char* bad : {"domain=2", "domain=2,data=2", "domain=2,tensor=2,data=1", "tensor=0,domain=0"}) {
    auto refused = ParseJigsawMesh(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find(bad), std::string::npos) << refused.status().message();
  }
  // The axes in either order are the same mesh (the run's rank order), never a transposed one.
  auto swapped = ParseJigsawMesh("tensor=2,domain=2");
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->mesh.ToString(), "domain=2,tensor=2");
  auto three = ParseJigsawMesh("domain=3,tensor=3");
  ASSERT_TRUE(three.ok()) << three.status().message();
  EXPECT_EQ(three->s, 3);
  EXPECT_EQ(three->mesh.AxisSize("domain"), 3);
  // The run's domain grid is the store's, whichever way it cuts the domain, when its tiles hold whole patches.
  auto g = RunDomainGrid(Small(), 2, 1, 2, 2);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ToString(), "1x2");
  g = RunDomainGrid(Small(), 2, 2, 1, 2);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ToString(), "2x1");
  g = RunDomainGrid(Small(), 1, 2, 2, 3);  // one rank reads any store whole
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ToString(), "1x1");
  Status st = RunDomainGrid(Small(), 2, 1, 2, 4).status();
  EXPECT_NE(st.message().find("1x2x4 does not fit a 2x2 mesh"), std::string::npos) << st.message();
  ModelConfig wide = Small();
  wide.patch_w = 16;  // one patch across: a 1x2 tile grid cuts every patch in two
  st = RunDomainGrid(wide, 2, 1, 2, 2).status();
  EXPECT_NE(st.message().find("do not hold whole 2x16 patches"), std::string::npos) << st.message();
}

// The stored layout on a domain grid cut both ways (2x2 parts on a 4x4 mesh, uneven hidden sizes): every
// rank's box of each token-mix tensor holds exactly its in-memory block, element for element, the block's
// tokens being its domain part's patches row-major inside the part. The expected positions are worked out
// here from the tile convention alone, not from TileOf.
TEST(StoredLayout, TokenBoxesAreTheBlocksOnAGridCutBothWays) {
  const DomainGrid grid{2, 2};
  const int64_t s = grid.parts(), PR = 6, PC = 8, Hs = 10;  // 3x4 patches per part; Hs in parts 3,3,3,1
  const Mesh stored = StoredMesh(grid);
  auto part = [&](int64_t n, int64_t q) {
    const int64_t c = (n + s - 1) / s;
    return std::pair<int64_t, int64_t>{std::min(n, q * c), std::min(n, (q + 1) * c)};
  };
  // The global patch index of token t of domain part q (row-major inside the part).
  auto token = [&](int64_t q, int64_t t) {
    const int64_t a = q / grid.lon, b = q % grid.lon, rows = PR / grid.lat, cols = PC / grid.lon;
    return (a * rows + t / cols) * PC + b * cols + t % cols;
  };
  const int64_t T = PR * PC / s;  // tokens per part
  for (int64_t i = 0; i < s; ++i)
    for (int64_t j = 0; j < s; ++j) {
      Parameter w1, w2;
      w1.stored_shape = {PR, PC, Hs};
      w1.stored_partition = {"domain_lat", "domain_lon", kColumnsAxes};
      w2.stored_shape = {Hs, PR, PC};
      w2.stored_partition = {kRowsAxes, "tensor_lat", "tensor_lon"};
      for (Parameter* p : {&w1, &w2}) {
        auto box = TileOf(p->stored_shape, p->stored_partition, stored, i * s + j);
        ASSERT_TRUE(box.ok()) << box.status().ToString();
        p->stored_box = *box;
      }
      // token_w1 block (i, j): tokens of part i x Hs part j.
      std::vector<int64_t> want;
      const auto [h0, h1] = part(Hs, j);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = h0; h < h1; ++h) want.push_back(token(i, t) * Hs + h);
      EXPECT_EQ(w1.StoredIndices(), want) << "token_w1 rank (" << i << ", " << j << ")";
      // token_w2 block (i, j): Hs part i x tokens of part j (the mesh column's domain part).
      want.clear();
      const auto [g0, g1] = part(Hs, i);
      for (int64_t h = g0; h < g1; ++h)
        for (int64_t t = 0; t < T; ++t) want.push_back(h * PR * PC + token(j, t));
      EXPECT_EQ(w2.StoredIndices(), want) << "token_w2 rank (" << i << ", " << j << ")";
    }
}

TEST(Mesh, RefusesAJobThatHoldsNoWholeMeshes) {
  auto world = NewLocalCommunicator();
  auto mesh = SplitMesh(world.get(), 2);
  ASSERT_FALSE(mesh.ok());
  EXPECT_NE(mesh.status().message().find("1 ranks cannot hold whole 2x2 meshes"), std::string::npos);
}

TEST(Schedule, WarmsUpLinearlyThenFollowsTheCosine) {
  OptimizerConfig o;
  o.lr = 1.0f;
  o.min_lr = 0.1f;
  o.warmup_steps = 4;
  o.total_steps = 14;
  EXPECT_FLOAT_EQ(LearningRate(o, 0), 0.25f);
  EXPECT_FLOAT_EQ(LearningRate(o, 3), 1.0f);
  EXPECT_FLOAT_EQ(LearningRate(o, 4), 1.0f);
  EXPECT_NEAR(LearningRate(o, 9), 0.55f, 1e-6);  // half way down the cosine
  EXPECT_FLOAT_EQ(LearningRate(o, 14), 0.1f);
  EXPECT_FLOAT_EQ(LearningRate(o, 100), 0.1f);
}

TEST(LatitudeWeights, CellAreasOverTheirMean) {
  // Rows at 67.5, 22.5, -22.5, -67.5: edges 90, 45, 0, -45, -90.
  auto w = LatitudeWeights({67.5, 22.5, -22.5, -67.5});
  const double outer = 1 - std::sin(M_PI / 4), inner = std::sin(M_PI / 4), mean = (outer + inner) / 2;
  EXPECT_NEAR(w[0], outer / mean, 1e-6);
  EXPECT_NEAR(w[1], inner / mean, 1e-6);
  EXPECT_NEAR(w[2], w[1], 1e-7);
  EXPECT_NEAR(w[3], w[0], 1e-7);
  auto south_up = LatitudeWeights({-67.5, -22.5, 22.5, 67.5});
  EXPECT_NEAR(south_up[0], w[0], 1e-7);
}

}  // namespace
}  // namespace jigsaw::train

namespace jigsaw::train {
namespace {

TEST(CudaDevice, OneGpuPerRankByLocalRankRefusedNamingBothCounts) {
  EXPECT_EQ(*PickCudaDevice("node7", 0, 4, 4, false), 0);
  EXPECT_EQ(*PickCudaDevice("node7", 3, 4, 8, false), 3);
  auto refused = PickCudaDevice("node7", 2, 4, 2, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("4 ranks run on node7, which has 2 GPUs"), std::string::npos)
      << refused.status().ToString();
  // A launcher that binds one GPU to each rank shows each rank one device: it is that rank's.
  EXPECT_EQ(*PickCudaDevice("node7", 2, 4, 1, true), 0);
  EXPECT_FALSE(PickCudaDevice("node7", 1, 2, 1, false).ok());
  EXPECT_NE(PickCudaDevice("node7", 0, 2, 0, false).status().message().find("which has 0 GPUs"), std::string::npos);
}

TEST(CudaDevice, ARankPlacesItselfOnItsHost) {
  auto world = NewLocalCommunicator();
  auto place = PlaceOnHost(world.get());
  ASSERT_TRUE(place.ok()) << place.status().ToString();
  EXPECT_EQ(place->local_rank, 0);
  EXPECT_EQ(place->local_ranks, 1);
  EXPECT_FALSE(place->host.empty());
}

}  // namespace
}  // namespace jigsaw::train

namespace jigsaw::train {
namespace {

// ForwardBackward's `final`: every parameter handed over exactly once, in the order the backward finishes
// them (head, blocks from the last, embedding, W_s), and only once its gradient is final: what it held at
// hand-over equals what it holds when the call returns (a 2-step rollout, whose later application runs its
// backward first and must hand nothing over).
TEST(GradientsFinal, EveryParameterOnceWhenFinalInBackwardOrder) {
  ModelConfig c = Small();
  c.depth = 3;
  c.static_channels = 1;
  auto be = NewCpuBackend(1);
  auto world = NewLocalCommunicator();
  auto mesh = SplitMesh(world.get(), 1);
  auto model = WeatherMixer::Create(c, be.get(), &*mesh, 3);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::vector<float> st = Random((*model)->static_tile().size(), 4);
  ASSERT_TRUE((*model)->SetStatic(st.data()).ok());
  const std::vector<float> x0 = Random((*model)->tile().size(), 5), x1 = Random(2 * x0.size(), 6);
  std::vector<std::string> order;
  std::vector<std::vector<float>> at_hand_over;
  WeatherMixer::GradientsFinal final = [&](std::span<Parameter> ps) {
    for (Parameter& p : ps) {
      order.push_back(p.name);
      at_hand_over.push_back(p.grad.Download());
    }
    return OkStatus();
  };
  auto loss = (*model)->ForwardBackward(x0.data(), x1.data(), 1, 2, 0.5f, false, final);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  std::vector<std::string> want = {"head_norm_w", "head_norm_b", "head_w", "head_b"};
  for (int l = 2; l >= 0; --l)
    for (const char* n : {"token_norm_w", "token_norm_b", "token_w1", "token_b1", "token_w2", "token_b2",
                          "channel_norm_w", "channel_norm_b", "channel_w1", "channel_b1", "channel_w2", "channel_b2"})
      want.push_back("blocks." + std::to_string(l) + "." + n);
  for (const char* n : {"embed_w", "embed_b", "static_w"}) want.push_back(n);
  EXPECT_EQ(order, want);
  ASSERT_EQ(order.size(), (*model)->parameters().size());
  for (size_t i = 0; i < order.size(); ++i)
    EXPECT_EQ(at_hand_over[i], (*model)->Find(order[i])->grad.Download()) << order[i] << " changed after hand-over";
  // An error from `final` ends the call.
  auto refused = (*model)->ForwardBackward(x0.data(), x1.data(), 1, 1, 0.5f, false,
                                           [](std::span<Parameter>) { return InternalError("refused"); });
  EXPECT_FALSE(refused.ok());
}

// With bf16 products the model multiplies its weights' operand copies, made at the start of every pass:
// weights changed between passes (here uploaded from another model) are the ones multiplied, bit for bit
// as in a model made with them.
TEST(WeightOperands, EveryPassConvertsTheWeightsItMultiplies) {
  ModelConfig c = Small();
  auto be = NewCpuBackend(1, /*bf16_products=*/true);
  auto world = NewLocalCommunicator();
  auto mesh = SplitMesh(world.get(), 1);
  auto a = WeatherMixer::Create(c, be.get(), &*mesh, 3), b = WeatherMixer::Create(c, be.get(), &*mesh, 4);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<float> x0 = Random((*a)->tile().size(), 5), x1 = Random(x0.size(), 6);
  auto pass = [&](WeatherMixer& m) {
    for (Parameter& p : m.parameters()) be->Fill(p.grad.data(), p.local_size(), 0.0f);
    auto loss = m.ForwardBackward(x0.data(), x1.data(), 1, 1, 0.5f);
    EXPECT_TRUE(loss.ok());
    std::vector<std::vector<float>> out = {{static_cast<float>(*loss)}};
    for (Parameter& p : m.parameters()) out.push_back(p.grad.Download());
    return out;
  };
  const auto first = pass(**a);
  for (Parameter& p : (*a)->parameters()) {
    if (p.layout == Layout::kMatrix) {
      EXPECT_GT(p.operand.size(), 0) << p.name;
    }
    p.value.Upload((*b)->Find(p.name)->value.Download());
  }
  const auto again = pass(**a);
  EXPECT_NE(again, first);
  EXPECT_EQ(again, pass(**b));
  std::vector<float> t(x0.size());
  ASSERT_TRUE((*a)->Predict(x0.data(), t.data()).ok());
  std::vector<float> tb(x0.size());
  ASSERT_TRUE((*b)->Predict(x0.data(), tb.data()).ok());
  EXPECT_EQ(t, tb);
}

// With bf16 products a block's product-only activations (u, h: [T, D], [Hs, D]; v: [T, D]; g: [T, Hf]) are
// kept as bfloat16, and each weight matrix has a bfloat16 copy beside its float32 master: what one more
// block adds to the peak differs from float32's by exactly that (2 bytes per weight more, 2 per such
// activation less).
TEST(WeightOperands, Bf16ActivationsTakeHalfTheMemory) {
  ModelConfig c = Small();
  c.dim = 16;
  c.token_hidden = 24;
  c.channel_hidden = 40;
  const std::vector<float> x0 = Random(c.channels * c.height * c.width, 7), x1 = Random(x0.size(), 8);
  auto peak = [&](bool bf16, int64_t depth) {
    ModelConfig d = c;
    d.depth = depth;
    auto be = NewCpuBackend(1, bf16);
    auto world = NewLocalCommunicator();
    auto mesh = SplitMesh(world.get(), 1);
    auto m = WeatherMixer::Create(d, be.get(), &*mesh, 3);
    EXPECT_TRUE(m.ok());
    EXPECT_TRUE((*m)->ForwardBackward(x0.data(), x1.data(), 1, 1, 0.5f).ok());
    return be->peak_bytes();
  };
  const int64_t per_block32 = peak(false, 3) - peak(false, 2), per_block16 = peak(true, 3) - peak(true, 2);
  const int64_t T = c.tokens(), D = c.dim, Hs = c.token_hidden, Hf = c.channel_hidden;
  const int64_t weights = 2 * T * Hs + 2 * D * Hf, activations = 2 * T * D + Hs * D + T * Hf;
  EXPECT_EQ(per_block16 - per_block32, 2 * weights - 2 * activations);
}

// Activation recomputation: the same gradients bit for bit, the same model FLOPs (the recomputed products
// counted apart: one more forward of the blocks), and less memory at the peak.
TEST(Recompute, SameGradientsLessMemory) {
  ModelConfig c;
  c.channels = 3;
  c.height = 16;
  c.width = 32;
  c.patch_h = c.patch_w = 2;
  c.dim = 32;
  c.depth = 4;
  c.token_hidden = 96;
  c.channel_hidden = 128;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> x0(c.channels * c.height * c.width), x1(2 * x0.size());
  for (auto& v : x0) v = normal(rng);
  for (auto& v : x1) v = normal(rng);
  struct Run {
    std::vector<std::vector<float>> grads;
    double loss = 0;
    int64_t peak = 0;
    BlockMatmulStats stats;
  };
  auto run = [&](bool recompute) {
    auto be = NewCpuBackend(1);
    auto world = NewLocalCommunicator();
    auto mesh = SplitMesh(world.get(), 1);
    auto model = WeatherMixer::Create(c, be.get(), &*mesh, 9);
    EXPECT_TRUE(model.ok());
    EXPECT_TRUE((*model)->SetRecompute(recompute).ok());
    EXPECT_EQ((*model)->recompute(), recompute);
    Run r;
    auto loss = (*model)->ForwardBackward(x0.data(), x1.data(), 1, 2, 0.5f);  // a 2-step rollout
    EXPECT_TRUE(loss.ok());
    r.loss = *loss;
    for (auto& p : (*model)->parameters()) r.grads.push_back(p.grad.Download());
    r.peak = be->peak_bytes();
    r.stats = (*model)->matmul().stats();
    return r;
  };
  const Run kept = run(false), again = run(true);
  EXPECT_EQ(kept.loss, again.loss);
  ASSERT_EQ(kept.grads.size(), again.grads.size());
  for (size_t i = 0; i < kept.grads.size(); ++i) EXPECT_EQ(kept.grads[i], again.grads[i]) << "parameter " << i;
  EXPECT_EQ(kept.stats.gemm_flops, again.stats.gemm_flops);
  EXPECT_EQ(kept.stats.recomputed_gemm_flops, 0);
  // The blocks' forward: 4 products per block, 2 applications.
  const int64_t T = c.tokens(), D = c.dim, Hs = c.token_hidden, Hf = c.channel_hidden;
  EXPECT_EQ(again.stats.recomputed_gemm_flops, 2 * c.depth * 2 * (2 * Hs * T * D + 2 * T * D * Hf));
  // Activations per block and application: 4 [T, D] + 2 [Hs, D] + 2 [T, Hf] + 2 [T] floats, kept for
  // every block, against one shared set and a [T, D] input per block.
  const int64_t per_block = 4 * (4 * T * D + 2 * Hs * D + 2 * T * Hf + 2 * T);
  EXPECT_EQ(kept.peak - again.peak, 2 * c.depth * per_block - per_block - (2 * c.depth + 1) * 4 * T * D)
      << "kept " << kept.peak << " bytes at the peak, recomputing " << again.peak;
}

}  // namespace
}  // namespace jigsaw::train
