#include "train/gemm_rate.h"

#include <chrono>
#include <limits>

#include "train/tensor.h"

namespace jigsaw::train {

GemmRate MeasureGemmRate(Backend* be, const std::vector<GemmShape>& shapes, int repeats) {
  GemmRate best;
  best.seconds = std::numeric_limits<double>::infinity();
  for (const GemmShape& g : shapes) best.flops += 2.0 * g.m * g.n * g.k;
  for (int rep = 0; rep < repeats; ++rep) {
    double total = 0;
    for (const GemmShape& g : shapes) {
      Tensor a(be, g.m * g.k), b(be, g.k * g.n), c(be, g.m * g.n);
      float probe;
      const auto t0 = std::chrono::steady_clock::now();
      be->Gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, 1.0f, a.data(), b.data(), 0.0f, c.data());
      be->Download(&probe, c.data(), 1);  // waits for the GEMM
      total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    best.seconds = std::min(best.seconds, total);
  }
  return best;
}

}  // namespace jigsaw::train
