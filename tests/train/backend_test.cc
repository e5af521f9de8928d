// Every operation of each backend against host references written out here in double: the CPU backend
// here, the CUDA backend where there is a GPU (a GPU test: skipped, with the reason, in a build without the
// CUDA backend or on a machine without a GPU; scripts/device-check builds this file without the CPU
// backend, whose cases it then skips). Shapes are odd and larger
// than a thread block, so that the kernels' tails and multi-block reductions run. Tolerances: max |cuda -
// reference| / max |reference| per output within 2e-6 for elementwise bodies (train/elementwise.h, the
// device's erff), 1e-5 for reductions and GEMMs (float32 sums in another order); TF32 products within 2e-3
// and bfloat16 products within 1e-2 of float32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "train/backend.h"
#include "train/elementwise.h"

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

class BackendTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto made = NewBackend(GetParam(), 2);
    if (!made.ok()) {
      GTEST_SKIP() << (std::string(GetParam()) == "cuda" ? "GPU test: " : "") << made.status().ToString();
    }
    be_ = std::move(*made);
  }
  // Runs `op` on the GPU over copies of `inputs`; returns the buffers named by `outputs`, read back.
  template <typename Op>
  std::vector<std::vector<float>> Run(const std::vector<std::vector<float>>& inputs, const std::vector<int>& outputs,
                                      Op op, double* value = nullptr) {
    On on{be_.get(), {}, {}};
    std::vector<float*> bufs;
    for (const auto& h : inputs) bufs.push_back(on(h));
    const double v = op(be_.get(), bufs);
    if (value) *value = v;
    std::vector<std::vector<float>> out;
    for (int o : outputs) out.push_back(on.Read(bufs[o], static_cast<int64_t>(inputs[o].size())));
    return out;
  }
  std::unique_ptr<Backend> be_;
};

// C = alpha op(A) op(B) + beta C, row-major, in double.
std::vector<float> Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const std::vector<float>& a,
                        const std::vector<float>& b, float beta, std::vector<float> c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t q = 0; q < k; ++q) s += double(ta ? a[q * m + i] : a[i * k + q]) * (tb ? b[j * k + q] : b[q * n + j]);
      c[i * n + j] = static_cast<float>(alpha * s + beta * c[i * n + j]);
    }
  return c;
}
double GeluRef(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double GeluGradRef(double x) {
  return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

TEST_P(BackendTest, GemmInEveryTransposition) {
  const int64_t m = 131, n = 97, k = 75;
  const auto a = Normal(m * k, 1), b = Normal(k * n, 2), c = Normal(m * n, 3);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      auto got = Run({a, b, c}, {2}, [&](Backend* be, auto& p) {
        be->Gemm(ta, tb, m, n, k, 0.5f, p[0], p[1], 1.0f, p[2]);
        return 0.0;
      });
      EXPECT_LT(RelError(got[0], Gemm(ta, tb, m, n, k, 0.5f, a, b, 1.0f, c)), 1e-5) << ta << tb;
    }
  // k = 0 scales C by beta; beta = 0 clears NaN.
  auto empty = Run({a, b, std::vector<float>(m * n, NAN)}, {2}, [&](Backend* be, auto& p) {
    be->Gemm(false, false, m, n, 0, 1.0f, p[0], p[1], 0.0f, p[2]);
    return 0.0;
  });
  EXPECT_EQ(empty[0], std::vector<float>(m * n, 0.0f));
}

// x rounded to bfloat16 and back (train/elementwise.h's rounding, tested in elementwise_test.cc).
std::vector<float> RoundedToBFloat16(std::vector<float> x) {
  for (float& v : x) v = elementwise::FromBFloat16(elementwise::ToBFloat16(v));
  return x;
}

TEST_P(BackendTest, ReducedPrecisionProducts) {
  const int64_t m = 256, n = 192, k = 320;
  const auto a = Normal(m * k, 4), b = Normal(k * n, 5);
  const auto want = Gemm(false, false, m, n, k, 1.0f, a, b, 0.0f, std::vector<float>(m * n));
  // bfloat16 products: the operands' bfloat16 values multiplied exactly, summed in float32.
  const auto want16 =
      Gemm(false, false, m, n, k, 1.0f, RoundedToBFloat16(a), RoundedToBFloat16(b), 0.0f, std::vector<float>(m * n));
  const bool cuda = be_->device() == Device::kCuda;
  for (const char* name : cuda ? std::vector<const char*>{"cuda:tf32", "cuda:bf16"} : std::vector<const char*>{"cpu:bf16"}) {
    auto be = NewBackend(name);
    ASSERT_TRUE(be.ok()) << be.status().ToString();
    const bool bf16 = std::string(name).ends_with("bf16");
    EXPECT_EQ((*be)->operand_bytes(), bf16 ? 2 : 4) << name;
    On on{be->get(), {}, {}};
    float *pa = on(a), *pb = on(b), *pc = on(std::vector<float>(m * n));
    (*be)->Gemm(false, false, m, n, k, 1.0f, pa, pb, 0.0f, pc);
    const std::vector<float> got = on.Read(pc, m * n);
    const double err = RelError(got, want);
    EXPECT_LT(err, bf16 ? 1e-2 : 2e-3) << name;
    EXPECT_GT(err, 1e-7) << name << " multiplied in float32: the reduced precision is not in use";
    if (!bf16) continue;
    EXPECT_LT(RelError(got, want16), 1e-5) << name << ": not the product of the operands' bfloat16 values";
    // Operands converted ahead (ToOperand: the same rounding, bit for bit) give the same bits, alone or
    // beside a float32 operand.
    float *a16 = on(std::vector<float>((m * k + 1) / 2)), *b16 = on(std::vector<float>((k * n + 1) / 2));
    (*be)->ToOperand(pa, a16, m * k);
    (*be)->ToOperand(pb, b16, k * n);
    const std::vector<float> raw = on.Read(a16, (m * k + 1) / 2);
    std::vector<uint16_t> bits(m * k);
    std::memcpy(bits.data(), raw.data(), bits.size() * sizeof(uint16_t));
    for (int64_t i = 0; i < m * k; ++i) ASSERT_EQ(bits[i], elementwise::ToBFloat16(a[i])) << name << " element " << i;
    for (auto [ca, cb] : {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}}) {
      float* pc2 = on(std::vector<float>(m * n));
      (*be)->GemmOperands(false, false, m, n, k, 1.0f, {ca ? static_cast<const void*>(a16) : pa, ca},
                          {cb ? static_cast<const void*>(b16) : pb, cb}, 0.0f, pc2);
      EXPECT_EQ(on.Read(pc2, m * n), got) << name << " converted ahead: A " << ca << ", B " << cb;
    }
  }
}

TEST_P(BackendTest, ElementwiseKernels) {
  const int64_t m = 203, n = 301, mn = m * n;
  const auto x = Normal(mn, 6, 2.0f), y = Normal(mn, 7), cb = Normal(n, 8), rb = Normal(m, 9);
  std::vector<float> want(mn);
  for (int64_t i = 0; i < mn; ++i) want[i] = y[i] - 0.75f * x[i];
  EXPECT_LT(RelError(Run({x, y}, {1}, [&](Backend* be, auto& p) { return be->Axpy(-0.75f, p[0], p[1], mn), 0.0; })[0],
                     want),
            2e-6);
  for (int64_t i = 0; i < mn; ++i) want[i] = 1.5f * x[i];
  EXPECT_EQ(Run({x}, {0}, [&](Backend* be, auto& p) { return be->Scale(p[0], mn, 1.5f), 0.0; })[0], want);
  EXPECT_EQ(Run({x}, {0}, [&](Backend* be, auto& p) { return be->Fill(p[0], mn, 3.0f), 0.0; })[0],
            std::vector<float>(mn, 3.0f));
  // Rows 0..m/2 of x's columns 5..5+n/3 into every other row of y, from column 7.
  want = y;
  for (int64_t r = 0; r < m / 2; ++r)
    for (int64_t c = 0; c < n / 3; ++c) want[7 + 2 * r * n + c] = x[5 + r * n + c];
  EXPECT_EQ(Run({x, y}, {1},
                [&](Backend* be, auto& p) { return be->CopyRows(p[1] + 7, 2 * n, p[0] + 5, n, m / 2, n / 3), 0.0; })[0],
            want);
  std::vector<float> pre(mn), gelu(mn), dgelu(mn);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      const int64_t i = r * n + c;
      pre[i] = x[i] + (cb[c] + rb[r]);
      gelu[i] = static_cast<float>(GeluRef(pre[i]));
      dgelu[i] = static_cast<float>(y[i] * GeluGradRef(x[i]));
    }
  auto bias = Run({x, cb, rb}, {0}, [&](Backend* be, auto& p) { return be->AddBias(p[0], m, n, p[1], p[2]), 0.0; });
  EXPECT_LT(RelError(bias[0], pre), 2e-6) << "bias";
  auto bg = Run({x, y, cb, rb}, {0, 1},
                [&](Backend* be, auto& p) { return be->BiasGelu(p[0], p[1], m, n, p[2], p[3]), 0.0; });
  EXPECT_LT(RelError(bg[0], pre), 2e-6) << "bias + gelu: pre-activation";
  EXPECT_LT(RelError(bg[1], gelu), 2e-6) << "bias + gelu";
  auto gb = Run({x, y}, {1}, [&](Backend* be, auto& p) { return be->GeluBackward(p[0], p[1], p[1], mn), 0.0; });
  EXPECT_LT(RelError(gb[0], dgelu), 2e-6) << "gelu backward, in place";
  std::vector<float> cols = Normal(n, 10), rows = Normal(m, 11);
  std::vector<double> cs(cols.begin(), cols.end()), rs(rows.begin(), rows.end());
  double sq = 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      cs[c] += x[r * n + c];
      rs[r] += x[r * n + c];
      sq += double(x[r * n + c]) * x[r * n + c];
    }
  auto col = Run({x, cols}, {1}, [&](Backend* be, auto& p) { return be->ColSumsAdd(p[0], m, n, p[1]), 0.0; });
  EXPECT_LT(RelError(col[0], std::vector<float>(cs.begin(), cs.end())), 1e-5) << "column sums";
  auto row = Run({x, rows}, {1}, [&](Backend* be, auto& p) { return be->RowSumsAdd(p[0], m, n, p[1]), 0.0; });
  EXPECT_LT(RelError(row[0], std::vector<float>(rs.begin(), rs.end())), 1e-5) << "row sums";
  double got_sq = 0;
  Run({x}, {}, [&](Backend* be, auto& p) { return be->SumSquares(p[0], mn); }, &got_sq);
  EXPECT_NEAR(got_sq, sq, 1e-9 * sq);
}

TEST_P(BackendTest, LayerNormForwardAndBackward) {
  // This rank's half of rows of width 2n: the sums as the kernels leave them (before the mesh row's sum),
  // and the apply steps fed with sums that stand for the whole row.
  const int64_t m = 77, n = 515, width = 2 * n;
  const float eps = 1e-5f;
  const auto x = Normal(m * n, 12, 3.0f), gamma = Normal(n, 13), beta = Normal(n, 14), dy = Normal(m * n, 15);
  const auto other_sums = Normal(m, 16, 20.0f), other_sq = Normal(m, 17, 5.0f);
  std::vector<float> sums(m), sq(m), xhat(m * n), rstd(m), y(m * n), bsums(2 * m), dgamma(n), dbeta(n), dx(m * n);
  for (int64_t r = 0; r < m; ++r) {
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += x[r * n + c];
    sums[r] = static_cast<float>(s);
  }
  std::vector<float> whole_sums(m), whole_sq(m);
  for (int64_t r = 0; r < m; ++r) whole_sums[r] = sums[r] + other_sums[r];
  for (int64_t r = 0; r < m; ++r) {
    const double mean = double(whole_sums[r]) / width;
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += (x[r * n + c] - mean) * (x[r * n + c] - mean);
    sq[r] = static_cast<float>(s);
    whole_sq[r] = sq[r] + std::abs(other_sq[r]);
    const double rs = 1.0 / std::sqrt(double(whole_sq[r]) / width + eps);
    rstd[r] = static_cast<float>(rs);
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double h = (x[r * n + c] - mean) * rs;
      xhat[r * n + c] = static_cast<float>(h);
      y[r * n + c] = static_cast<float>(h * gamma[c] + beta[c]);
      s1 += double(dy[r * n + c]) * gamma[c];
      s2 += double(dy[r * n + c]) * gamma[c] * h;
      dgamma[c] += static_cast<float>(dy[r * n + c] * h);
      dbeta[c] += dy[r * n + c];
    }
    bsums[r] = static_cast<float>(s1);
    bsums[m + r] = static_cast<float>(s2);
    for (int64_t c = 0; c < n; ++c)
      dx[r * n + c] = static_cast<float>(rs * (dy[r * n + c] * gamma[c] - s1 / width - xhat[r * n + c] * s2 / width));
  }
  std::vector<float> whole_sq_abs = whole_sq;
  const std::vector<float> z_mn(m * n), z_m(m), z_2m(2 * m), z_n(n);
  auto got = Run({x, gamma, beta, z_m, z_m, z_mn, z_m, z_mn, dy, z_2m, z_n, z_n, z_mn, whole_sums, whole_sq_abs},
                 {3, 4, 5, 6, 7, 9, 10, 11, 12}, [&](Backend* be, auto& p) {
                   be->LayerNormSums(p[0], m, n, p[3]);
                   be->LayerNormCentredSquares(p[0], m, n, p[13], width, p[4]);
                   be->LayerNormApply(p[0], m, n, p[13], p[14], width, eps, p[1], p[2], p[5], p[6], p[7]);
                   be->LayerNormBackwardSums(p[8], p[5], p[1], m, n, p[9], p[10], p[11]);
                   be->LayerNormBackwardApply(p[8], p[5], p[1], p[6], p[9], m, n, width, p[12]);
                   return 0.0;
                 });
  const std::vector<std::vector<float>*> want = {&sums, &sq, &xhat, &rstd, &y, &bsums, &dgamma, &dbeta, &dx};
  const char* names[] = {"sums", "centred squares", "xhat", "rstd", "y", "backward sums", "dgamma", "dbeta", "dx"};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_LT(RelError(got[i], *want[i]), 1e-5) << names[i];
}

TEST_P(BackendTest, PatchesLossAndAdamW) {
  // A block [3, 12, 20] of a tile [3, 16, 24], patches 2x4: token (ty, tx), feature (k, py, px).
  const Backend::Block blk{3, 12, 20, 24, 16 * 24};
  const int64_t tile = 3 * 16 * 24, feats = 3 * 2 * 4, gw = 20 / 4;
  const auto t = Normal(tile, 16);
  std::vector<float> tokens(3 * 12 * 20), back(tile, 0.0f);
  for (int64_t ty = 0; ty < 6; ++ty)
    for (int64_t tx = 0; tx < gw; ++tx)
      for (int64_t k = 0; k < 3; ++k)
        for (int64_t py = 0; py < 2; ++py)
          for (int64_t px = 0; px < 4; ++px) {
            const int64_t pixel = k * 16 * 24 + (ty * 2 + py) * 24 + tx * 4 + px;
            tokens[(ty * gw + tx) * feats + (k * 2 + py) * 4 + px] = t[pixel];
            back[pixel] = t[pixel];
          }
  auto p = Run({t, std::vector<float>(tokens.size()), std::vector<float>(tile)}, {1, 2}, [&](Backend* be, auto& b) {
    be->Patchify(b[0], blk, 2, 4, b[1]);
    be->Unpatchify(b[1], blk, 2, 4, b[2]);
    return 0.0;
  });
  EXPECT_EQ(p[0], tokens);
  EXPECT_EQ(p[1], back);

  const int64_t c = 5, h = 33, w = 70, chw = c * h * w;
  const auto x0 = Normal(chw, 17), tend = Normal(chw, 18), x1 = Normal(chw, 19), wl = Normal(h, 20), wc = Normal(c, 21);
  const float scale = 0.25f;
  std::vector<float> grad(chw);
  double want_loss = 0;
  for (int64_t k = 0; k < c; ++k)
    for (int64_t yy = 0; yy < h; ++yy)
      for (int64_t xx = 0; xx < w; ++xx) {
        const int64_t i = (k * h + yy) * w + xx;
        const double e = double(x0[i]) + tend[i] - x1[i], wt = double(wl[yy]) * wc[k];
        want_loss += scale * wt * e * e;
        grad[i] = static_cast<float>(2 * scale * wt * e);
      }
  double loss = 0;
  auto g = Run({x0, tend, x1, wl, wc, std::vector<float>(chw)}, {5}, [&](Backend* be, auto& b) {
    return be->WeightedSquaredError(b[0], b[1], b[2], b[3], b[4], c, h, w, scale, b[5]);
  }, &loss);
  EXPECT_LT(RelError(g[0], grad), 2e-6) << "loss gradient";
  EXPECT_NEAR(loss, want_loss, 1e-5 * std::abs(want_loss));

  // AdamW, torch's update in double.
  const int64_t n = 100003;
  const auto w0 = Normal(n, 22), gr = Normal(n, 23), m0 = Normal(n, 24, 0.1f);
  std::vector<float> v0(n), wt(n), mt(n), vt(n);
  for (int64_t i = 0; i < n; ++i) v0[i] = m0[i] * m0[i];
  const double lr = 1e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  const int step = 4;
  for (int64_t i = 0; i < n; ++i) {
    const double mi = b1 * m0[i] + (1 - b1) * gr[i], vi = b2 * v0[i] + (1 - b2) * double(gr[i]) * gr[i];
    mt[i] = static_cast<float>(mi);
    vt[i] = static_cast<float>(vi);
    wt[i] = static_cast<float>(w0[i] * (1 - lr * wd) -
                               lr / (1 - std::pow(b1, step)) * mi / (std::sqrt(vi) / std::sqrt(1 - std::pow(b2, step)) + eps));
  }
  auto adam = Run({w0, gr, m0, v0}, {0, 2, 3}, [&](Backend* be, auto& b) {
    be->AdamW(b[0], b[1], b[2], b[3], n, float(lr), float(b1), float(b2), float(eps), float(wd), step);
    return 0.0;
  });
  EXPECT_LT(RelError(adam[0], wt), 2e-6) << "weights";
  EXPECT_LT(RelError(adam[1], mt), 2e-6) << "first moments";
  EXPECT_LT(RelError(adam[2], vt), 2e-6) << "second moments";

  // Every tensor at once: the long one above (chunks of 2^16 elements) and a short one with its own learning
  // rate and no decay, gradients scaled by 0.5 first (clipping); then their sums of squares together.
  const int64_t n2 = 5;
  const auto w2 = Normal(n2, 25), g2 = Normal(n2, 26);
  std::vector<float> w2t(n2), m2t(n2), v2t(n2);
  for (int64_t i = 0; i < n2; ++i) {
    const double g = 0.5 * double(g2[i]), mi = (1 - b1) * g, vi = (1 - b2) * g * g;
    m2t[i] = static_cast<float>(mi);
    v2t[i] = static_cast<float>(vi);
    w2t[i] = static_cast<float>(w2[i] - 2 * lr / (1 - std::pow(b1, step)) * mi /
                                            (std::sqrt(vi) / std::sqrt(1 - std::pow(b2, step)) + eps));
  }
  for (int64_t i = 0; i < n; ++i) {
    const double g = 0.5 * double(gr[i]);
    const double mi = b1 * m0[i] + (1 - b1) * g, vi = b2 * v0[i] + (1 - b2) * g * g;
    mt[i] = static_cast<float>(mi);
    vt[i] = static_cast<float>(vi);
    wt[i] = static_cast<float>(w0[i] * (1 - lr * wd) -
                               lr / (1 - std::pow(b1, step)) * mi / (std::sqrt(vi) / std::sqrt(1 - std::pow(b2, step)) + eps));
  }
  double squares = 0;
  for (float v : gr) squares += double(v) * v;
  for (float v : g2) squares += double(v) * v;
  double got_squares = 0;
  auto all = Run({w0, gr, m0, v0, w2, g2, std::vector<float>(n2), std::vector<float>(n2)}, {0, 2, 3, 4, 6, 7},
                 [&](Backend* be, auto& b) {
                   be->AdamWAll({{b[0], b[1], b[2], b[3], n, float(lr), float(wd)},
                                 {b[4], b[5], b[6], b[7], n2, float(2 * lr), 0.0f}},
                                0.5f, float(b1), float(b2), float(eps), step);
                   return be->SumSquaresAll({{b[1], n}, {b[5], n2}});
                 },
                 &got_squares);
  EXPECT_LT(RelError(all[0], wt), 2e-6) << "all at once: weights";
  EXPECT_LT(RelError(all[1], mt), 2e-6) << "all at once: first moments";
  EXPECT_LT(RelError(all[2], vt), 2e-6) << "all at once: second moments";
  EXPECT_LT(RelError(all[3], w2t), 2e-6) << "all at once: the short tensor's weights";
  EXPECT_LT(RelError(all[4], m2t), 2e-6) << "all at once: the short tensor's first moments";
  EXPECT_LT(RelError(all[5], v2t), 2e-6) << "all at once: the short tensor's second moments";
  EXPECT_NEAR(got_squares, squares, 1e-9 * squares);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::Values("cpu", "cuda"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

}  // namespace
}  // namespace jigsaw::train
