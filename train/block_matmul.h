// The Jigsaw block-matrix products (docs/parallelism.md): three balanced SUMMA kernels that
// do every product of the model, forward and backward, on an s x s mesh. Every operand is split into
// s x s blocks and rank (i, j) holds block (i, j); a dimension's split is given by its part bounds (s + 1
// numbers, see SplitBounds). In every kernel each rank runs s GEMMs and is the root of one broadcast per
// step along one mesh axis, so GEMM FLOPs and bytes sent are the same on every rank when the splits are
// even; both are counted (stats()).
//
//   NN  C[M, N] = A[M, K] B[K, N]     step k: A_ik along row i, B_kj along column j; C_ij += A_ik B_kj
//   NT  C[M, N] = A[M, K] B[N, K]^T   step l: B_lk along column k; A_ik B_lk^T summed along row i into C_il
//   TN  C[M, N] = A[K, M]^T B[K, N]   step l: A_kl along row k; A_kl^T B_kj summed along column j into C_lj
//
// C = beta C + product; beta is 0 or 1 in practice (1 accumulates gradients). On a 1x1 mesh each kernel
// is one GEMM straight into C. All ranks of the group must call the same kernels in the same order.
//
// Operands travel in the backend's GEMM operand format (Backend::operand_bytes): with bf16 products a block
// is converted once, by the rank that broadcasts it, and crosses the mesh in half the bytes; an operand a
// rank uses in all s steps is converted once per kernel. Partial sums travel in float32. The same bits as
// converting inside each GEMM.
//
// Overlap (on unless set_overlap(false)): step q + 1's broadcasts are started before step q multiplies,
// and step q's partial sums travel while step q + 1 multiplies, each into buffers of its own (twice the
// scratch); on GPUs the transfers run on the communicators' stream beside the GEMMs. The arithmetic is the
// same either way, bit for bit: only when the bytes move changes.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "train/backend.h"
#include "train/mesh.h"

namespace jigsaw::train {

using Bounds = std::vector<int64_t>;  // s + 1 part boundaries of one dimension

struct BlockMatmulStats {
  int64_t gemm_flops = 0;  // 2 m n k per local GEMM
  int64_t bytes_sent = 0;  // a broadcast root counts its payload once per receiver; a reduce sender its payload
  // Work done a second time to recompute activations (WeatherMixer::SetRecompute), kept out of the two
  // counts above so that they stay the model's own.
  int64_t recomputed_gemm_flops = 0, recomputed_bytes_sent = 0;
};

class BlockMatmul {
 public:
  BlockMatmul(Backend* backend, MeshComms* mesh) : backend_(backend), mesh_(mesh) {}
  ~BlockMatmul();
  BlockMatmul(const BlockMatmul&) = delete;
  BlockMatmul& operator=(const BlockMatmul&) = delete;

  // Operands in float32 (a float pointer), or already in the backend's operand format (Backend::ToOperand: a
  // weight's copy made once per pass), which is then neither converted again nor copied before it is sent.
  using Operand = Backend::Operand;
  Status NN(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta, float* c);
  Status NT(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta, float* c);
  Status TN(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta, float* c);


  void set_overlap(bool on) { overlap_ = on; }
  bool overlap() const { return overlap_; }

  const BlockMatmulStats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }
  // Moves what was counted since `before` into the recomputed_* counts.
  void CountAsRecomputed(const BlockMatmulStats& before) {
    stats_.recomputed_gemm_flops += stats_.gemm_flops - before.gemm_flops;
    stats_.recomputed_bytes_sent += stats_.bytes_sent - before.bytes_sent;
    stats_.gemm_flops = before.gemm_flops;
    stats_.bytes_sent = before.bytes_sent;
  }

 private:
  // Scratch buffers by use and by the parity of the step they serve (one parity without overlap). Grown
  // only before a kernel starts its first transfer.
  enum Use { kFirstOperand, kSecondOperand, kPartial, kSum, kLocalOperand, kUses };
  float* Buffer(Use use, int64_t step, int64_t n);
  // One step of NT or TN, as `StepOf(l)` describes it: the rank that `sends` broadcasts `operand` along
  // `along` (root l); every rank multiplies it into a partial product; the partials are summed along
  // `sum_along` into C at its root l (the rank that `receives`): C = beta C + sum.
  struct ReduceStep {
    bool sends;
    Operand operand;
    int64_t operand_n;
    bool receives;
    int64_t out_n;
  };
  Status BroadcastMultiplyReduce(TensorCommunicator* along, TensorCommunicator* sum_along,
                                 const std::function<ReduceStep(int64_t)>& step_of,
                                 const std::function<void(int64_t, Backend::Operand, float*)>& multiply, float beta,
                                 float* c);
  // The operand a rank multiplies in every step: converted once when the backend's operands are narrow.
  Operand LocalOperand(Operand x, int64_t n);
  // Starts step `step`'s broadcast along `along` (root: the rank `step`) of n operands, counting the root's
  // bytes. *operand is what the step multiplies once it has arrived: the root's x itself when it is in the
  // operand format already, else a buffer of `use` (the root converting x into it).
  Result<std::unique_ptr<TensorCommunicator::Pending>> Send(TensorCommunicator* along, bool root, Operand x, Use use,
                                                            int64_t step, int64_t n, Operand* operand);
  void Accumulate(float beta, const float* sum, float* c, int64_t n);

  Backend* backend_;
  MeshComms* mesh_;
  BlockMatmulStats stats_;
  bool overlap_ = true;
  float* scratch_[2 * kUses] = {};
  int64_t scratch_size_[2 * kUses] = {};
};

}  // namespace jigsaw::train
