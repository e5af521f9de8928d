// References the trainer's tests share: seeded uniform values and the matrix product by its definition.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace jigsaw::train::testing {

// n values uniform in [-1, 1) from `seed`.
inline std::vector<float> Random(int64_t n, int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// C[m, n] = op(A) op(B) by the definition, summed in double (A is [k, m] when ta, B [n, k] when tb).
inline std::vector<float> NaiveProduct(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const std::vector<float>& a,
                                       const std::vector<float>& b) {
  std::vector<float> c(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t l = 0; l < k; ++l)
        sum += double(ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j]);
      c[i * n + j] = static_cast<float>(sum);
    }
  return c;
}

}  // namespace jigsaw::train::testing
