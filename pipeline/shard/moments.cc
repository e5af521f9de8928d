// Hot loops of jigsaw-shard's statistics: compiled with -O3, and for AVX2 as well as the baseline where
// the compiler supports function multiversioning.
#include "pipeline/shard/moments.h"

#include <algorithm>

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

// Eight independent lanes so that the compiler can keep them in vector registers.
template <bool kDifference>
__attribute__((always_inline)) inline Sums Accumulate(const float* x, const float* y, int64_t count, double shift) {
  constexpr int W = 8;
  double s[W] = {}, ss[W] = {}, n[W] = {}, lo[W], hi[W];
  for (int k = 0; k < W; ++k) {
    lo[k] = INFINITY;
    hi[k] = -INFINITY;
  }
  int64_t i = 0;
  for (; i + W <= count; i += W) {
    for (int k = 0; k < W; ++k) {
      const double v = kDifference ? static_cast<double>(x[i + k]) - y[i + k] : x[i + k];
      const bool ok = v == v;
      const double d = ok ? v - shift : 0.0;
      s[k] += d;
      ss[k] += d * d;
      n[k] += ok ? 1.0 : 0.0;
      lo[k] = v < lo[k] ? v : lo[k];
      hi[k] = v > hi[k] ? v : hi[k];
    }
  }
  for (; i < count; ++i) {
    const double v = kDifference ? static_cast<double>(x[i]) - y[i] : x[i];
    const bool ok = v == v;
    const double d = ok ? v - shift : 0.0;
    s[0] += d;
    ss[0] += d * d;
    n[0] += ok ? 1.0 : 0.0;
    lo[0] = v < lo[0] ? v : lo[0];
    hi[0] = v > hi[0] ? v : hi[0];
  }
  Sums r;
  for (int k = 0; k < W; ++k) {
    r.s += s[k];
    r.ss += ss[k];
    r.n += n[k];
    r.lo = std::min(r.lo, lo[k]);
    r.hi = std::max(r.hi, hi[k]);
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
