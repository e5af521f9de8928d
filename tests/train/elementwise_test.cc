// The per-element maths both backends run (train/elementwise.h), against double-precision definitions:
// GELU and its derivative with either erf (glibc, FastMath), LayerNorm's output and input gradient, the
// loss's error and gradient, and AdamW against torch.optim.AdamW's update written out in double. Then the
// CPU backend's kernels against the same definitions, so that the loops around the bodies are checked too.
#include "train/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "train/backend.h"

namespace jigsaw::train {
namespace {

namespace ew = elementwise;

double GeluExact(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double GeluGradExact(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

// Points over [-12, 12] (GELU's tails included), dense near 0.
std::vector<float> Points() {
  std::vector<float> xs;
  for (int i = -12000; i <= 12000; ++i) xs.push_back(static_cast<float>(i) * 1e-3f);
  for (float x : {-100.0f, -30.0f, 30.0f, 100.0f, 1e-30f, -1e-30f, 0.0f}) xs.push_back(x);
  return xs;
}

TEST(Elementwise, GeluAndItsDerivativeWithEitherErf) {
  // Absolute error (GELU's values range over [-0.17, x]): glibc's erff within a few float ulps of x;
  // FastMath's erf within 4e-7 (its bound), so GELU within 4e-7 |x| / 2 plus rounding.
  double worst_libm = 0, worst_fast = 0, worst_dlibm = 0, worst_dfast = 0;
  for (float x : Points()) {
    const double scale = std::max(1.0, std::abs(static_cast<double>(x)));
    worst_libm = std::max(worst_libm, std::abs(ew::Gelu<ew::LibmMath>(x) - GeluExact(x)) / scale);
    worst_fast = std::max(worst_fast, std::abs(ew::Gelu<ew::FastMath>(x) - GeluExact(x)) / scale);
    worst_dlibm = std::max(worst_dlibm, std::abs(ew::GeluGrad<ew::LibmMath>(x) - GeluGradExact(x)));
    worst_dfast = std::max(worst_dfast, std::abs(ew::GeluGrad<ew::FastMath>(x) - GeluGradExact(x)));
  }
  EXPECT_LT(worst_libm, 3e-7);
  EXPECT_LT(worst_fast, 6e-7);
  EXPECT_LT(worst_dlibm, 3e-7);
  EXPECT_LT(worst_dfast, 6e-7);
  // The derivative is the derivative: central differences of the double GELU.
  for (double x : {-3.0, -0.5, 0.0, 0.7, 2.5}) {
    const double h = 1e-5, fd = (GeluExact(x + h) - GeluExact(x - h)) / (2 * h);
    EXPECT_NEAR(ew::GeluGrad<ew::LibmMath>(static_cast<float>(x)), fd, 1e-6) << x;
  }
  // Tails: GELU(x) -> x for large x, -> 0 (not NaN) for very negative x.
  EXPECT_EQ(ew::Gelu<ew::FastMath>(100.0f), 100.0f);
  EXPECT_EQ(ew::Gelu<ew::FastMath>(-100.0f), -0.0f);
  EXPECT_LT(std::abs(ew::GeluGrad<ew::FastMath>(-100.0f)), 1e-30f);
}

TEST(Elementwise, FastMathExpAndErf) {
  double worst_exp = 0, worst_erf = 0;
  for (int i = -8700; i <= 8800; ++i) {
    const float x = static_cast<float>(i) * 1e-2f;
    worst_exp = std::max(worst_exp, std::abs(ew::FastMath::Exp(x) / std::exp(static_cast<double>(x)) - 1.0));
  }
  for (float x : Points()) worst_erf = std::max(worst_erf, std::abs(ew::FastMath::Erf(x) - std::erf(double(x))));
  EXPECT_LT(worst_exp, 3e-7);
  EXPECT_LT(worst_erf, 5e-7);  // A&S's 1.5e-7, Exp's error and float rounding
  // NaN stays NaN (a NaN loss must be seen), and is never converted to an integer on the way (UBSan).
  EXPECT_TRUE(std::isnan(ew::FastMath::Exp(NAN)));
  EXPECT_TRUE(std::isnan(ew::FastMath::Erf(NAN)));
}

TEST(Elementwise, LayerNormOfARowAndItsInputGradient) {
  // One row of width 7, normalised from its sums as the backends do (mean and centred squares summed over
  // the mesh row first), against the definition in double; the input gradient against finite differences
  // of sum_c w_c y_c.
  const std::vector<double> x = {0.3, -1.2, 2.5, 0.0, 0.7, -0.4, 1.1}, gamma = {1.0, 0.5, 2.0, -1.0, 0.3, 1.5, 0.8},
                            beta = {0.1, 0.0, -0.2, 0.3, 0.0, 0.5, -0.1}, w = {0.2, -1.0, 0.4, 0.9, -0.3, 0.6, 1.3};
  const int n = 7;
  const float eps = 1e-5f;
  auto forward = [&](const std::vector<double>& in, std::vector<double>* xhat) {
    double mean = 0, sq = 0;
    for (double v : in) mean += v / n;
    for (double v : in) sq += (v - mean) * (v - mean);
    const double rstd = 1.0 / std::sqrt(sq / n + eps);
    std::vector<double> y(n);
    for (int c = 0; c < n; ++c) {
      if (xhat) (*xhat)[c] = (in[c] - mean) * rstd;
      y[c] = (in[c] - mean) * rstd * gamma[c] + beta[c];
    }
    return y;
  };
  float sum = 0, sq = 0;
  for (double v : x) sum += static_cast<float>(v);
  for (double v : x) sq += (static_cast<float>(v) - sum / n) * (static_cast<float>(v) - sum / n);
  const float rstd = ew::LayerNormRstd(sq, 1.0f / n, eps);
  std::vector<double> want_xhat(n);
  const std::vector<double> want = forward(x, &want_xhat);
  std::vector<float> xhat(n);
  for (int c = 0; c < n; ++c) {
    const float y = ew::LayerNormOut(static_cast<float>(x[c]), sum / n, rstd, static_cast<float>(gamma[c]),
                                     static_cast<float>(beta[c]), &xhat[c]);
    EXPECT_NEAR(y, want[c], 2e-6) << c;
    EXPECT_NEAR(xhat[c], want_xhat[c], 2e-6) << c;
  }
  // dy = w; the row means of dh = dy gamma and dh xhat.
  float mean_dh = 0, mean_dh_xhat = 0;
  for (int c = 0; c < n; ++c) {
    mean_dh += static_cast<float>(w[c] * gamma[c]) / n;
    mean_dh_xhat += static_cast<float>(w[c] * gamma[c]) * xhat[c] / n;
  }
  for (int c = 0; c < n; ++c) {
    std::vector<double> up = x, down = x;
    const double h = 1e-6;
    up[c] += h;
    down[c] -= h;
    double fd = 0;
    const auto yu = forward(up, nullptr), yd = forward(down, nullptr);
    for (int q = 0; q < n; ++q) fd += w[q] * (yu[q] - yd[q]) / (2 * h);
    const float got = ew::LayerNormInputGrad(static_cast<float>(w[c]), static_cast<float>(gamma[c]), xhat[c], rstd,
                                             mean_dh, mean_dh_xhat);
    EXPECT_NEAR(got, fd, 1e-4 * std::max(1.0, std::abs(fd))) << c;
  }
}

TEST(Elementwise, SquaredErrorAndItsGradient) {
  const float e = ew::PredictionError(1.5f, 0.25f, 1.0f);
  EXPECT_EQ(e, 0.75f);
  // d/dt of scale w (x0 + t - x1)^2 = 2 scale w e.
  EXPECT_FLOAT_EQ(ew::SquaredErrorGrad(e, 0.8f, 0.5f), 2 * 0.5f * 0.8f * 0.75f);
}

TEST(Elementwise, AdamWIsTorchsUpdate) {
  // torch.optim.AdamW, step t (from 1): w -= lr wd w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  // w -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps). Five steps in double beside float.
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  const std::vector<double> grads = {0.5, -0.2, 1e-6, 3.0, -0.7};
  double w = 0.8, m = 0, v = 0;
  float wf = 0.8f, mf = 0, vf = 0;
  for (int t = 1; t <= 5; ++t) {
    const double g = grads[t - 1];
    w -= lr * wd * w;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    w -= lr / (1 - std::pow(b1, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + eps);
    const auto k = ew::AdamWConstants::Of(float(lr), float(b1), float(b2), float(eps), float(wd), t);
    ew::AdamWUpdate(k, static_cast<float>(g), &wf, &mf, &vf);
    EXPECT_NEAR(wf, w, 1e-6) << "step " << t;
    EXPECT_NEAR(mf, m, 3e-7 * std::abs(m)) << "step " << t;
    EXPECT_NEAR(vf, v, 3e-7 * std::abs(v)) << "step " << t;
  }
}

// The CPU backend runs the bodies over whole tensors: its results equal the bodies' element by element
// (the loops and their splitting between threads add nothing), on sizes above the threads' grain. GELU to
// 1e-6: the backend's AVX2 loop may contract a product and a sum into one FMA where this file does not.
// Round to nearest, ties to even, on the bits: exact values stay, halfway cases go to the even neighbour,
// past the largest bfloat16 becomes infinity, NaN stays NaN, signs and subnormals are kept.
TEST(Elementwise, BFloat16RoundsToNearestEven) {
  using ew::FromBFloat16;
  using ew::ToBFloat16;
  auto bits = [](uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return ToBFloat16(x);
  };
  EXPECT_EQ(ToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(ToBFloat16(-2.5f), 0xc020);
  EXPECT_EQ(bits(0x3f808000u), 0x3f80);  // 1 + 2^-8: halfway, to the even 1
  EXPECT_EQ(bits(0x3f818000u), 0x3f82);  // 1 + 3 2^-8: halfway, to the even 1 + 2^-6
  EXPECT_EQ(bits(0x3f808001u), 0x3f81);  // just past halfway: up
  EXPECT_EQ(bits(0x3f807fffu), 0x3f80);  // just below: down
  EXPECT_EQ(bits(0x7f7fffffu), 0x7f80);  // FLT_MAX rounds to infinity
  EXPECT_EQ(ToBFloat16(INFINITY), 0x7f80);
  EXPECT_EQ(ToBFloat16(-0.0f), 0x8000);
  EXPECT_EQ(bits(0x00018000u), 0x0002);  // a subnormal, halfway: to even
  EXPECT_TRUE(std::isnan(FromBFloat16(ToBFloat16(NAN))));
  EXPECT_TRUE(std::isnan(FromBFloat16(bits(0x7f800001u))));  // a NaN whose payload sits in the low bits
  EXPECT_EQ(FromBFloat16(0x3f82), 1.015625f);
  // Every bfloat16 value round-trips.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float x = FromBFloat16(static_cast<uint16_t>(h));
    if (!std::isnan(x)) {
      ASSERT_EQ(ToBFloat16(x), h) << h;
    }
  }
}

TEST(Elementwise, TheCpuBackendRunsTheBodies) {
  auto be = NewCpuBackend(2);
  const int64_t m = 300, n = 257;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> a(m * n), dg(m * n);
  for (auto& v : a) v = normal(rng);
  for (auto& v : dg) v = normal(rng);
  std::vector<float> pre = a, g(m * n), d(m * n);
  be->BiasGelu(pre.data(), g.data(), m, n, nullptr, nullptr);
  be->GeluBackward(a.data(), dg.data(), d.data(), m * n);
  const bool fast = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  for (int64_t i = 0; i < m * n; ++i) {
    const float want_g = fast ? ew::Gelu<ew::FastMath>(a[i]) : ew::Gelu<ew::LibmMath>(a[i]);
    const float want_d = dg[i] * (fast ? ew::GeluGrad<ew::FastMath>(a[i]) : ew::GeluGrad<ew::LibmMath>(a[i]));
    ASSERT_NEAR(g[i], want_g, 1e-6f * std::max(1.0f, std::abs(want_g))) << i;
    ASSERT_NEAR(d[i], want_d, 1e-6f * std::max(1.0f, std::abs(want_d))) << i;
  }
  std::vector<float> w = a, mom(m * n, 0.1f), var(m * n, 0.2f);
  be->AdamW(w.data(), dg.data(), mom.data(), var.data(), m * n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
  const auto k = ew::AdamWConstants::Of(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
  for (int64_t i = 0; i < m * n; ++i) {
    float wi = a[i], mi = 0.1f, vi = 0.2f;
    ew::AdamWUpdate(k, dg[i], &wi, &mi, &vi);
    ASSERT_EQ(w[i], wi) << i;
    ASSERT_EQ(mom[i], mi) << i;
    ASSERT_EQ(var[i], vi) << i;
  }
}

}  // namespace
}  // namespace jigsaw::train
