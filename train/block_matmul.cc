#include "train/block_matmul.h"

namespace jigsaw::train {
namespace {

int64_t Part(const Bounds& b, int64_t q) { return b[q + 1] - b[q]; }
constexpr int64_t kFloat = sizeof(float);

}  // namespace

BlockMatmul::~BlockMatmul() {
  for (float* p : scratch_)
    if (p) backend_->Free(p);
}

float* BlockMatmul::Scratch(int slot, int64_t n) {
  if (scratch_size_[slot] < n) {
    if (scratch_[slot]) backend_->Free(scratch_[slot]);
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
    const int64_t nl = Part(n, l);
    // B_lj down column j from (l, j); A_ij B_lj^T summed along row i into C_il at (i, l).
    float* bbuf = p.i == l ? const_cast<float*>(b) : Scratch(1, nl * kj);
    RETURN_IF_ERROR(mesh_->col->BroadcastData(bbuf, nl * kj, l));
    if (p.i == l) stats_.bytes_sent += (s - 1) * nl * kj * kFloat;
    float* partial = Scratch(0, mi * nl);
    backend_->Gemm(false, true, mi, nl, kj, 1.0f, a, bbuf, 0.0f, partial);
    stats_.gemm_flops += 2 * mi * nl * kj;
    float* sum = Scratch(2, mi * nl);
    RETURN_IF_ERROR(mesh_->row->ReduceSum(partial, sum, mi * nl, l));
    if (p.j == l) {
      Accumulate(beta, sum, c, mi * nl);
    } else {
      stats_.bytes_sent += mi * nl * kFloat;
    }
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
    const int64_t ml = Part(m, l);
    // A_il along row i from (i, l); A_il^T B_ij summed down column j into C_lj at (l, j).
    float* abuf = p.j == l ? const_cast<float*>(a) : Scratch(1, ki * ml);
    RETURN_IF_ERROR(mesh_->row->BroadcastData(abuf, ki * ml, l));
    if (p.j == l) stats_.bytes_sent += (s - 1) * ki * ml * kFloat;
    float* partial = Scratch(0, ml * nj);
    backend_->Gemm(true, false, ml, nj, ki, 1.0f, abuf, b, 0.0f, partial);
    stats_.gemm_flops += 2 * ml * nj * ki;
    float* sum = Scratch(2, ml * nj);
    RETURN_IF_ERROR(mesh_->col->ReduceSum(partial, sum, ml * nj, l));
    if (p.i == l) {
      Accumulate(beta, sum, c, ml * nj);
    } else {
      stats_.bytes_sent += ml * nj * kFloat;
    }
  }
  return OkStatus();
}

}  // namespace jigsaw::train
