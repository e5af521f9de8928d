// Hot loops of jigsaw-shard's statistics: compiled with -O3, and for AVX2 as well as the baseline where
// the compiler supports function multiversioning.
#include "pipeline/shard/moments.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define JIGSAW_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define JIGSAW_MULTIVERSION
#endif

namespace jigsaw {
namespace {

struct Sums {
  double s = 0, ss = 0, n = 0, lo = INFINITY, hi = -INFINITY;
};

// Four vectors of four doubles (GCC/Clang vector extensions, so that the AVX2 clone really uses ymm
// registers: the compiler left the scalar form unvectorised) over 16 values per step.
#pragma GCC diagnostic ignored "-Wpsabi"  // Load4 is always inlined: no vector crosses a call
typedef double V4 __attribute__((vector_size(32)));
typedef int64_t M4 __attribute__((vector_size(32)));
typedef float F4 __attribute__((vector_size(16)));

__attribute__((always_inline)) inline V4 Load4(const float* p) {
  F4 f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, V4);
}

template <bool kDifference>
__attribute__((always_inline)) inline Sums Accumulate(const float* x, const float* y, int64_t count, double shift) {
  constexpr int L = 4;  // independent accumulators, to hide the adds' latency
  const V4 vshift = {shift, shift, shift, shift}, zero = {0, 0, 0, 0};
  const V4 inf = {INFINITY, INFINITY, INFINITY, INFINITY};
  V4 s[L], ss[L], lo[L], hi[L];
  M4 n[L];
  for (int k = 0; k < L; ++k) {
    s[k] = ss[k] = zero;
    lo[k] = inf;
    hi[k] = -inf;
    n[k] = M4{0, 0, 0, 0};
  }
  int64_t i = 0;
  for (; i + 4 * L <= count; i += 4 * L) {
    for (int k = 0; k < L; ++k) {
      V4 v = Load4(x + i + 4 * k);
      if constexpr (kDifference) v -= Load4(y + i + 4 * k);
      const M4 ok = v == v;  // all ones where not NaN
      const V4 d = ok ? v - vshift : zero;
      s[k] += d;
      ss[k] += d * d;
      n[k] -= ok;
      lo[k] = v < lo[k] ? v : lo[k];  // false for NaN: NaN never becomes the minimum
      hi[k] = v > hi[k] ? v : hi[k];
    }
  }
  Sums r;
  for (int k = 0; k < L; ++k)
    for (int j = 0; j < 4; ++j) {
      r.s += s[k][j];
      r.ss += ss[k][j];
      r.n += static_cast<double>(n[k][j]);
      r.lo = std::min(r.lo, lo[k][j]);
      r.hi = std::max(r.hi, hi[k][j]);
    }
  for (; i < count; ++i) {
    const double v = kDifference ? static_cast<double>(x[i]) - y[i] : x[i];
    if (v != v) continue;
    const double d = v - shift;
    r.s += d;
    r.ss += d * d;
    r.n += 1;
    r.lo = std::min(r.lo, v);
    r.hi = std::max(r.hi, v);
  }
  return r;
}

JIGSAW_MULTIVERSION Sums AccumulateValues(const float* x, int64_t count, double shift) {
  return Accumulate<false>(x, nullptr, count, shift);
}

JIGSAW_MULTIVERSION Sums AccumulateDifferences(const float* x, const float* y, int64_t count, double shift) {
  return Accumulate<true>(x, y, count, shift);
}

Moments FromSums(const Sums& r, double shift) {
  Moments m;
  if (r.n == 0) return m;
  m.n = r.n;
  m.mean = shift + r.s / r.n;
  m.m2 = std::max(0.0, r.ss - r.s * r.s / r.n);
  m.min = r.lo;
  m.max = r.hi;
  return m;
}

}  // namespace

void Moments::Add(const Moments& o) {
  if (o.n == 0) return;
  const double total = n + o.n, delta = o.mean - mean;
  mean += delta * o.n / total;
  m2 += o.m2 + delta * delta * n * o.n / total;
  n = total;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

Moments Moments::Of(const float* x, int64_t count) {
  int64_t f = 0;
  while (f < count && std::isnan(x[f])) ++f;
  if (f == count) return {};
  return FromSums(AccumulateValues(x, count, x[f]), x[f]);
}

Moments Moments::OfDifference(const float* x, const float* y, int64_t count) {
  int64_t f = 0;
  while (f < count && std::isnan(static_cast<double>(x[f]) - y[f])) ++f;
  if (f == count) return {};
  const double shift = static_cast<double>(x[f]) - y[f];
  return FromSums(AccumulateDifferences(x, y, count, shift), shift);
}

}  // namespace jigsaw
