// LayerNorm over the feature dimension D of token-major activations [tokens, D], with D split along the
// mesh row: each rank holds `n` of the `width` features of its `m` tokens, and the statistics are
// summed along the row (the reference code normalised each half on its own). Forward and backward side
// by side; the cache holds what the backward needs.
#pragma once

#include "parallel/communicator.h"
#include "train/backend.h"
#include "train/tensor.h"

namespace jigsaw::train {

struct LayerNormCache {
  Tensor xhat;  // [m, n]
  Tensor rstd;  // [m]
};

struct LayerNormShape {
  int64_t m, n, width;
  float eps;
};

// y = (x - mean) / sqrt(var + eps) gamma + beta. `scratch` holds 2 m floats.
Status LayerNormForward(Backend* be, TensorCommunicator* row, const LayerNormShape& s, const float* x,
                        const float* gamma, const float* beta, LayerNormCache* cache, float* y, float* scratch);

// dx += d/dx, dgamma += d/dgamma, dbeta += d/dbeta (the parameter sums are this rank's tokens only; the
// caller sums them along the mesh column). `scratch` holds 2 m floats.
Status LayerNormBackward(Backend* be, TensorCommunicator* row, const LayerNormShape& s, const float* dy,
                         const float* gamma, const LayerNormCache& cache, float* dx, float* dgamma, float* dbeta,
                         float* scratch);

}  // namespace jigsaw::train
