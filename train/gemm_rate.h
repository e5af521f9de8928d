// The GEMM rate a backend reaches at given shapes: the ceiling a training step's GEMM FLOP rate is measured
// against (`jigsaw-bench gemm`, bench/train/train_step).
#pragma once

#include <vector>

#include "train/backend.h"
#include "train/config.h"

namespace jigsaw::train {

struct GemmRate {
  double flops = 0;    // of one pass over the shapes
  double seconds = 0;  // the best of the repeats: a ceiling is what the GEMMs can reach
  double flop_per_s() const { return seconds > 0 ? flops / seconds : 0; }
};

// Each shape's GEMM timed alone on fresh operands (each waited for before the next), summed per pass; the
// best of `repeats` passes.
GemmRate MeasureGemmRate(Backend* backend, const std::vector<GemmShape>& shapes, int repeats = 3);

}  // namespace jigsaw::train
