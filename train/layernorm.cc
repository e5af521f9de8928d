#include "train/layernorm.h"

namespace jigsaw::train {

Status LayerNormForward(Backend* be, TensorCommunicator* row, const LayerNormShape& s, const float* x,
                        const float* gamma, const float* beta, LayerNormCache* cache, float* y, float* scratch) {
  float* sums = scratch;
  float* sq = scratch + s.m;
  // Two passes (mean, then centred squares) rather than E[x^2] - mean^2, which cancels badly.
  be->LayerNormSums(x, s.m, s.n, sums);
  RETURN_IF_ERROR(row->AllReduceSum(sums, s.m));
  be->LayerNormCentredSquares(x, s.m, s.n, sums, s.width, sq);
  RETURN_IF_ERROR(row->AllReduceSum(sq, s.m));
  be->LayerNormApply(x, s.m, s.n, sums, sq, s.width, s.eps, gamma, beta, cache->xhat.data(), cache->rstd.data(), y);
  return OkStatus();
}

Status LayerNormBackward(Backend* be, TensorCommunicator* row, const LayerNormShape& s, const float* dy,
                         const float* gamma, const LayerNormCache& cache, float* dx, float* dgamma, float* dbeta,
                         float* scratch) {
  be->LayerNormBackwardSums(dy, cache.xhat.data(), gamma, s.m, s.n, scratch, dgamma, dbeta);
  RETURN_IF_ERROR(row->AllReduceSum(scratch, 2 * s.m));
  be->LayerNormBackwardApply(dy, cache.xhat.data(), gamma, cache.rstd.data(), scratch, s.m, s.n, s.width, dx);
  return OkStatus();
}

}  // namespace jigsaw::train
