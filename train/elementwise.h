// The per-element maths of the trainer's fused kernels, written once for both backends: the CPU backend's
// loops and the CUDA backend's kernels call these same functions on each element (nvcc compiles them for
// the device, the host compiler for the CPU), so the CPU tests (tests/train/elementwise_test.cc) check the
// arithmetic the GPU runs, and the GPU test (cuda_backend_test.cc) checks only the kernels' indexing and
// reductions around it.
//
// GELU takes its erf and exp from a Math policy: the CUDA backend uses the device's erff / expf, the CPU
// backend glibc's or, with AVX2, the vectorisable FastMath below (within 4e-7 of erf).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define JIGSAW_HD __host__ __device__ __forceinline__
#else
#define JIGSAW_HD inline __attribute__((always_inline))
#endif

namespace jigsaw::train::elementwise {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// ---- GELU, erf form: GELU(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 ----
template <class Math>
JIGSAW_HD float Gelu(float x) {
  return 0.5f * x * (1.0f + Math::Erf(x * kInvSqrt2));
}
// d GELU / dx = Phi(x) + x phi(x), phi the standard normal density.
template <class Math>
JIGSAW_HD float GeluGrad(float x) {
  return 0.5f * (1.0f + Math::Erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * Math::Exp(-0.5f * x * x);
}

// The C library's functions (the device's erff / expf under nvcc).
struct LibmMath {
  JIGSAW_HD static float Erf(float x) { return erff(x); }
  JIGSAW_HD static float Exp(float x) { return expf(x); }
};

// exp and erf as straight-line arithmetic, so that a loop over them vectorises: Exp within 2.3e-7 relative
// of exp (range reduction by ln 2 in two parts, degree-6 polynomial), Erf within 4e-7 of erf (Abramowitz &
// Stegun 7.1.26 on that Exp). Below the float32 rounding of the products a GELU feeds.
struct FastMath {
  JIGSAW_HD static float Exp(float x) {
    const float in = x;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // (fminf and fmaxf are calls on the host: no vectors)
    x = x == x ? x : 0.0f;  // NaN: worked as 0 (its conversion to int below is undefined), returned as NaN
    const float shifter = 12582912.0f;                  // 1.5 * 2^23: adding it rounds to the nearest integer
    const float n = (x * 1.44269504088896341f + shifter) - shifter;
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;  // x - n ln 2
    float p = 1.0f / 720;                                                          // e^r, |r| <= ln 2 / 2
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, 4);
    return in == in ? p * scale : in;
  }
  JIGSAW_HD static float Erf(float x) {
    const float a = x < 0.0f ? -x : x;
    const float t = 1.0f / (0.3275911f * a + 1.0f);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float y = 1.0f - p * t * Exp(-a * a);
    return x < 0.0f ? -y : y;
  }
};

// ---- LayerNorm over a row whose mean and centred sum of squares are known (sums over the mesh row) ----
JIGSAW_HD float LayerNormRstd(float centred_squares, float inv_width, float eps) {
  return 1.0f / sqrtf(centred_squares * inv_width + eps);
}
// y = xhat gamma + beta, xhat = (x - mean) rstd (kept for the backward).
JIGSAW_HD float LayerNormOut(float x, float mean, float rstd, float gamma, float beta, float* xhat) {
  const float h = (x - mean) * rstd;
  *xhat = h;
  return h * gamma + beta;
}
// The input's gradient: rstd (dy gamma - mean_r(dy gamma) - xhat mean_r(dy gamma xhat)), with the two row
// means (`mean_dh`, `mean_dh_xhat`) summed over the mesh row first.
JIGSAW_HD float LayerNormInputGrad(float dy, float gamma, float xhat, float rstd, float mean_dh, float mean_dh_xhat) {
  return rstd * (dy * gamma - mean_dh - xhat * mean_dh_xhat);
}

// ---- the weighted squared error of one pixel: e = x0 + tendency - x1; the loss adds w e^2 scale ----
JIGSAW_HD float PredictionError(float x0, float tendency, float x1) { return x0 + tendency - x1; }
// d (scale w e^2) / d tendency.
JIGSAW_HD float SquaredErrorGrad(float e, float weight, float scale) { return 2.0f * scale * weight * e; }

// ---- AdamW as PyTorch's torch.optim.AdamW (decoupled decay, bias corrections) ----
struct AdamWConstants {
  float beta1, beta2, eps;
  float decay;      // 1 - lr weight_decay
  float step_size;  // lr / (1 - beta1^step)
  float bc2_sqrt;   // sqrt(1 - beta2^step)
  // `step` counts from 1.
  static AdamWConstants Of(float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step) {
    const float bc1 = 1.0f - static_cast<float>(std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    const float bc2 = 1.0f - static_cast<float>(std::pow(static_cast<double>(beta2), static_cast<double>(step)));
    return {beta1, beta2, eps, 1.0f - lr * weight_decay, lr / bc1, std::sqrt(bc2)};
  }
};
// One weight with its gradient g and moments m, v.
JIGSAW_HD void AdamWUpdate(const AdamWConstants& k, float g, float* w, float* m, float* v) {
  const float mi = k.beta1 * *m + (1.0f - k.beta1) * g;
  const float vi = k.beta2 * *v + (1.0f - k.beta2) * g * g;
  *m = mi;
  *v = vi;
  *w = *w * k.decay - k.step_size * mi / (sqrtf(vi) / k.bc2_sqrt + k.eps);
}

// ---- bfloat16: a float32's top 16 bits, rounded to nearest, ties to even (as __float2bfloat16_rn and
// PyTorch's .to(torch.bfloat16) round); a NaN stays a quiet NaN, a finite value past the largest bfloat16
// becomes infinity ----
JIGSAW_HD uint16_t ToBFloat16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
JIGSAW_HD float FromBFloat16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

}  // namespace jigsaw::train::elementwise
