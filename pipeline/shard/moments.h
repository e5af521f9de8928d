// Running moments (count, mean, M2, min, max) in float64, merged across pieces with Chan et al.'s
// parallel update; the per-piece kernels skip NaN and take sums about a shift so that they do not cancel.
#pragma once

#include <cmath>
#include <cstdint>

namespace jigsaw {

struct Moments {
  double n = 0, mean = 0, m2 = 0, min = INFINITY, max = -INFINITY;

  void Add(const Moments& o);
  double population_std() const { return n ? std::sqrt(m2 / n) : NAN; }

  // Of the values x[0..count).
  static Moments Of(const float* x, int64_t count);
  // Of the differences x[i] - y[i] (in float64).
  static Moments OfDifference(const float* x, const float* y, int64_t count);
};

}  // namespace jigsaw
