// Every operation of the CUDA backend against the CPU backend on the same inputs (GPU test: skipped, with
// the reason, in a build without the CUDA backend or on a machine without a GPU). Shapes are odd and larger
// than a thread block, so that the kernels' tails and multi-block reductions run. Tolerances: max |cuda -
// cpu| / max |cpu| per output within 2e-6 for elementwise bodies (the same functions, train/elementwise.h;
// the device's erff against the CPU's erf), 1e-5 for reductions and GEMMs (another summation order); TF32
// products within 2e-3 and bfloat16 products within 1e-2 of the float32 ones.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "train/backend.h"

namespace jigsaw::train {
namespace {

std::vector<float> Normal(int64_t n, unsigned seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(double(got[i]) - want[i]));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return diff / scale;
}

// Buffers on one backend, made from host vectors and read back.
struct On {
  Backend* be;
  std::vector<float*> ptrs;
  std::vector<int64_t> sizes;
  ~On() {
    for (size_t i = 0; i < ptrs.size(); ++i) be->Free(ptrs[i], sizes[i]);
  }
  float* operator()(const std::vector<float>& host) {
    float* p = be->Alloc(static_cast<int64_t>(host.size()));
    be->Upload(p, host.data(), static_cast<int64_t>(host.size()));
    ptrs.push_back(p);
    sizes.push_back(static_cast<int64_t>(host.size()));
    return p;
  }
  std::vector<float> Read(const float* p, int64_t n) {
    std::vector<float> h(n);
    be->Download(h.data(), p, n);
    return h;
  }
};

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cuda = NewBackend("cuda");
    if (!cuda.ok()) GTEST_SKIP() << "GPU test: " << cuda.status().ToString();
    cuda_ = std::move(*cuda);
    cpu_ = NewCpuBackend(2);
  }
  // Runs `op` on both backends over copies of `inputs`; returns the outputs the op names (index into its
  // buffers), CPU first.
  using Op = std::function<double(Backend*, std::vector<float*>&)>;
  struct Outputs {
    std::vector<std::vector<float>> cpu, cuda;
    double cpu_value = 0, cuda_value = 0;
  };
  Outputs Run(const std::vector<std::vector<float>>& inputs, const std::vector<int>& outputs, const Op& op) {
    Outputs out;
    for (Backend* be : {cpu_.get(), cuda_.get()}) {
      On on{be, {}, {}};
      std::vector<float*> bufs;
      for (const auto& h : inputs) bufs.push_back(on(h));
      const double value = op(be, bufs);
      auto& dst = be == cpu_.get() ? out.cpu : out.cuda;
      for (int o : outputs) dst.push_back(on.Read(bufs[o], static_cast<int64_t>(inputs[o].size())));
      (be == cpu_.get() ? out.cpu_value : out.cuda_value) = value;
    }
    return out;
  }
  void ExpectClose(const Outputs& o, double tolerance, const std::string& what) {
    for (size_t i = 0; i < o.cpu.size(); ++i)
      EXPECT_LT(RelError(o.cuda[i], o.cpu[i]), tolerance) << what << ", output " << i;
  }
  std::unique_ptr<Backend> cpu_, cuda_;
};

TEST_F(CudaBackendTest, GemmInEveryTransposition) {
  const int64_t m = 131, n = 97, k = 75;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto o = Run({Normal(m * k, 1), Normal(k * n, 2), Normal(m * n, 3)}, {2}, [&](Backend* be, auto& b) {
        be->Gemm(ta, tb, m, n, k, 0.5f, b[0], b[1], 1.0f, b[2]);
        return 0.0;
      });
      ExpectClose(o, 1e-5, std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N"));
    }
}

TEST_F(CudaBackendTest, ReducedPrecisionProducts) {
  const int64_t m = 256, n = 192, k = 320;
  const auto a = Normal(m * k, 4), b = Normal(k * n, 5);
  std::vector<float> want(m * n);
  {
    On on{cuda_.get(), {}, {}};
    float *pa = on(a), *pb = on(b), *pc = on(want);
    cuda_->Gemm(false, false, m, n, k, 1.0f, pa, pb, 0.0f, pc);
    want = on.Read(pc, m * n);
  }
  for (const char* name : {"cuda:tf32", "cuda:bf16"}) {
    auto be = NewBackend(name);
    ASSERT_TRUE(be.ok()) << be.status().ToString();
    On on{be->get(), {}, {}};
    float *pa = on(a), *pb = on(b), *pc = on(std::vector<float>(m * n));
    (*be)->Gemm(false, false, m, n, k, 1.0f, pa, pb, 0.0f, pc);
    EXPECT_LT(RelError(on.Read(pc, m * n), want), std::string(name) == "cuda:tf32" ? 2e-3 : 1e-2) << name;
  }
}

TEST_F(CudaBackendTest, ElementwiseKernels) {
  const int64_t m = 203, n = 301;
  const auto x = Normal(m * n, 6, 2.0f), y = Normal(m * n, 7), cb = Normal(n, 8), rb = Normal(m, 9);
  ExpectClose(Run({x, y}, {1}, [&](Backend* be, auto& b) { return be->Axpy(-0.75f, b[0], b[1], m * n), 0.0; }), 2e-6,
              "axpy");
  ExpectClose(Run({x}, {0}, [&](Backend* be, auto& b) { return be->Scale(b[0], m * n, 1.5f), 0.0; }), 2e-6, "scale");
  ExpectClose(Run({x}, {0}, [&](Backend* be, auto& b) { return be->Fill(b[0], m * n, 3.0f), 0.0; }), 0, "fill");
  ExpectClose(Run({x, cb, rb}, {0},
                  [&](Backend* be, auto& b) { return be->AddBias(b[0], m, n, b[1], b[2]), 0.0; }),
              2e-6, "bias");
  ExpectClose(Run({x, y, cb}, {0, 1},
                  [&](Backend* be, auto& b) { return be->BiasGelu(b[0], b[1], m, n, b[2], nullptr), 0.0; }),
              2e-6, "bias + gelu");
  ExpectClose(Run({x, y, y}, {2},
                  [&](Backend* be, auto& b) { return be->GeluBackward(b[0], b[1], b[2], m * n), 0.0; }),
              2e-6, "gelu backward");
  ExpectClose(Run({x, Normal(n, 10)}, {1}, [&](Backend* be, auto& b) { return be->ColSumsAdd(b[0], m, n, b[1]), 0.0; }),
              1e-5, "column sums");
  ExpectClose(Run({x, Normal(m, 11)}, {1}, [&](Backend* be, auto& b) { return be->RowSumsAdd(b[0], m, n, b[1]), 0.0; }),
              1e-5, "row sums");
  auto sq = Run({x}, {}, [&](Backend* be, auto& b) { return be->SumSquares(b[0], m * n); });
  EXPECT_NEAR(sq.cuda_value, sq.cpu_value, 1e-9 * sq.cpu_value);
}

TEST_F(CudaBackendTest, LayerNormForwardAndBackward) {
  // width 2n: as if the row were split over two ranks and this were one half (sums passed as they are).
  const int64_t m = 77, n = 515, width = 2 * n;
  const auto x = Normal(m * n, 12, 3.0f), gamma = Normal(n, 13), beta = Normal(n, 14), dy = Normal(m * n, 15);
  const std::vector<float> zeros_mn(m * n), zeros_m(m), zeros_2m(2 * m), zeros_n(n);
  auto o = Run({x, gamma, beta, zeros_m, zeros_m, zeros_mn, zeros_m, zeros_mn, dy, zeros_2m, zeros_n, zeros_n, zeros_mn},
               {3, 4, 5, 6, 7, 9, 10, 11, 12}, [&](Backend* be, auto& b) {
                 be->LayerNormSums(b[0], m, n, b[3]);
                 be->LayerNormCentredSquares(b[0], m, n, b[3], width, b[4]);
                 be->LayerNormApply(b[0], m, n, b[3], b[4], width, 1e-5f, b[1], b[2], b[5], b[6], b[7]);
                 be->LayerNormBackwardSums(b[8], b[5], b[1], m, n, b[9], b[10], b[11]);
                 be->LayerNormBackwardApply(b[8], b[5], b[1], b[6], b[9], m, n, width, b[12]);
                 return 0.0;
               });
  const char* names[] = {"sums", "centred squares", "xhat", "rstd", "y", "backward sums", "dgamma", "dbeta", "dx"};
  for (size_t i = 0; i < o.cpu.size(); ++i) EXPECT_LT(RelError(o.cuda[i], o.cpu[i]), 1e-5) << names[i];
}

TEST_F(CudaBackendTest, PatchesLossAndAdamW) {
  // A block [3, 12, 20] of a tile [3, 16, 24], patches 2x4.
  const Backend::Block blk{3, 12, 20, 24, 16 * 24};
  const int64_t tile = 3 * 16 * 24, tokens = 3 * 12 * 20;
  const auto t = Normal(tile, 16);
  auto p = Run({t, std::vector<float>(tokens), std::vector<float>(tile)}, {1, 2}, [&](Backend* be, auto& b) {
    be->Patchify(b[0], blk, 2, 4, b[1]);
    be->Unpatchify(b[1], blk, 2, 4, b[2]);
    return 0.0;
  });
  ExpectClose(p, 0, "patches");
  const int64_t c = 5, h = 33, w = 70;
  auto loss = Run({Normal(c * h * w, 17), Normal(c * h * w, 18), Normal(c * h * w, 19), Normal(h, 20), Normal(c, 21),
                   std::vector<float>(c * h * w)},
                  {5}, [&](Backend* be, auto& b) {
                    return be->WeightedSquaredError(b[0], b[1], b[2], b[3], b[4], c, h, w, 0.25f, b[5]);
                  });
  ExpectClose(loss, 2e-6, "loss gradient");
  EXPECT_NEAR(loss.cuda_value, loss.cpu_value, 1e-6 * std::abs(loss.cpu_value));
  const int64_t n = 100003;
  auto adam = Run({Normal(n, 22), Normal(n, 23), Normal(n, 24, 0.1f), Normal(n, 25, 0.0f)}, {0, 2, 3},
                  [&](Backend* be, auto& b) {
                    // v >= 0: start it at m^2.
                    std::vector<float> m = Normal(n, 24, 0.1f);
                    for (auto& v : m) v *= v;
                    be->Upload(b[3], m.data(), n);
                    be->AdamW(b[0], b[1], b[2], b[3], n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 4);
                    return 0.0;
                  });
  ExpectClose(adam, 2e-6, "adamw");
}

}  // namespace
}  // namespace jigsaw::train
