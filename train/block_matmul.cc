#include "train/block_matmul.h"

#include <functional>

namespace jigsaw::train {
namespace {

int64_t Part(const Bounds& b, int64_t q) { return b[q + 1] - b[q]; }
constexpr int64_t kFloat = sizeof(float);

}  // namespace

BlockMatmul::~BlockMatmul() {
  for (int slot = 0; slot < 3; ++slot)
    if (scratch_[slot]) backend_->Free(scratch_[slot], scratch_size_[slot]);
}

float* BlockMatmul::Scratch(int slot, int64_t n) {
  if (scratch_size_[slot] < n) {
    if (scratch_[slot]) backend_->Free(scratch_[slot], scratch_size_[slot]);
    scratch_[slot] = backend_->Alloc(n);
    scratch_size_[slot] = n;
  }
  return scratch_[slot];
}

void BlockMatmul::Accumulate(float beta, const float* sum, float* c, int64_t n) {
  if (beta == 0.0f) {
    backend_->Copy(c, sum, n);
    return;
  }
  if (beta != 1.0f) backend_->Scale(c, n, beta);
  backend_->Axpy(1.0f, sum, c, n);
}

Status BlockMatmul::NN(const Bounds& m, const Bounds& k, const Bounds& n, const float* a, const float* b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, mi = Part(m, p.i), nj = Part(n, p.j);
  for (int64_t q = 0; q < s; ++q) {
    const int64_t kq = Part(k, q);
    const float* aq = a;
    const float* bq = b;
    if (s > 1) {
      // A_iq along the row from (i, q); B_qj down the column from (q, j).
      float* abuf = p.j == q ? const_cast<float*>(a) : Scratch(0, mi * kq);
      float* bbuf = p.i == q ? const_cast<float*>(b) : Scratch(1, kq * nj);
      RETURN_IF_ERROR(mesh_->row->BroadcastData(abuf, mi * kq, q));
      RETURN_IF_ERROR(mesh_->col->BroadcastData(bbuf, kq * nj, q));
      if (p.j == q) stats_.bytes_sent += (s - 1) * mi * kq * kFloat;
      if (p.i == q) stats_.bytes_sent += (s - 1) * kq * nj * kFloat;
      aq = abuf;
      bq = bbuf;
    }
    backend_->Gemm(false, false, mi, nj, kq, 1.0f, aq, bq, q == 0 ? beta : 1.0f, c);
    stats_.gemm_flops += 2 * mi * nj * kq;
  }
  return OkStatus();
}

Status BlockMatmul::BroadcastMultiplyReduce(TensorCommunicator* along, bool sends, const float* operand,
                                            int64_t operand_n,
                                            const std::function<void(const float*, float*)>& multiply,
                                            TensorCommunicator* sum_along, bool receives, int64_t root, int64_t out_n,
                                            float beta, float* c) {
  const int64_t s = mesh_->pos.s;
  float* buf = sends ? const_cast<float*>(operand) : Scratch(1, operand_n);
  RETURN_IF_ERROR(along->BroadcastData(buf, operand_n, root));
  if (sends) stats_.bytes_sent += (s - 1) * operand_n * kFloat;
  float* partial = Scratch(0, out_n);
  multiply(buf, partial);
  float* sum = Scratch(2, out_n);
  RETURN_IF_ERROR(sum_along->ReduceSum(partial, sum, out_n, root));
  if (receives) {
    Accumulate(beta, sum, c, out_n);
  } else {
    stats_.bytes_sent += out_n * kFloat;
  }
  return OkStatus();
}

Status BlockMatmul::NT(const Bounds& m, const Bounds& k, const Bounds& n, const float* a, const float* b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, mi = Part(m, p.i), kj = Part(k, p.j);
  if (s == 1) {
    backend_->Gemm(false, true, mi, Part(n, 0), kj, 1.0f, a, b, beta, c);
    stats_.gemm_flops += 2 * mi * Part(n, 0) * kj;
    return OkStatus();
  }
  for (int64_t l = 0; l < s; ++l) {
    // B_lj down column j from (l, j); A_ij B_lj^T summed along row i into C_il at (i, l).
    const int64_t nl = Part(n, l);
    auto multiply = [&](const float* bl, float* partial) {
      backend_->Gemm(false, true, mi, nl, kj, 1.0f, a, bl, 0.0f, partial);
      stats_.gemm_flops += 2 * mi * nl * kj;
    };
    RETURN_IF_ERROR(BroadcastMultiplyReduce(mesh_->col.get(), p.i == l, b, nl * kj, multiply, mesh_->row.get(),
                                            p.j == l, l, mi * nl, beta, c));
  }
  return OkStatus();
}

Status BlockMatmul::TN(const Bounds& m, const Bounds& k, const Bounds& n, const float* a, const float* b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, ki = Part(k, p.i), nj = Part(n, p.j);
  if (s == 1) {
    backend_->Gemm(true, false, Part(m, 0), nj, ki, 1.0f, a, b, beta, c);
    stats_.gemm_flops += 2 * Part(m, 0) * nj * ki;
    return OkStatus();
  }
  for (int64_t l = 0; l < s; ++l) {
    // A_il along row i from (i, l); A_il^T B_ij summed down column j into C_lj at (l, j).
    const int64_t ml = Part(m, l);
    auto multiply = [&](const float* al, float* partial) {
      backend_->Gemm(true, false, ml, nj, ki, 1.0f, al, b, 0.0f, partial);
      stats_.gemm_flops += 2 * ml * nj * ki;
    };
    RETURN_IF_ERROR(BroadcastMultiplyReduce(mesh_->row.get(), p.j == l, a, ki * ml, multiply, mesh_->col.get(),
                                            p.i == l, l, ml * nj, beta, c));
  }
  return OkStatus();
}

}  // namespace jigsaw::train
