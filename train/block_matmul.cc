#include "train/block_matmul.h"

#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace jigsaw::train {
namespace {

int64_t Part(const Bounds& b, int64_t q) { return b[q + 1] - b[q]; }
constexpr int64_t kFloat = sizeof(float);
using Pending = TensorCommunicator::Pending;

// Waits for every transfer of a step and forgets them.
Status WaitAll(std::vector<std::unique_ptr<Pending>>* pending) {
  Status first = OkStatus();
  for (auto& p : *pending) {
    Status st = p->Wait();
    if (first.ok() && !st.ok()) first = std::move(st);
  }
  pending->clear();
  return first;
}

}  // namespace

BlockMatmul::~BlockMatmul() {
  for (int slot = 0; slot < 2 * kUses; ++slot)
    if (scratch_[slot]) backend_->Free(scratch_[slot], scratch_size_[slot]);
}

float* BlockMatmul::Buffer(Use use, int64_t step, int64_t n) {
  const int slot = 2 * use + (overlap_ ? static_cast<int>(step % 2) : 0);
  if (scratch_size_[slot] < n) {
    if (scratch_[slot]) backend_->Free(scratch_[slot], scratch_size_[slot]);
    scratch_[slot] = backend_->Alloc(n);
    scratch_size_[slot] = n;
  }
  return scratch_[slot];
}

Backend::Operand BlockMatmul::LocalOperand(Operand x, int64_t n) {
  if (!backend_->narrow_operands() || x.converted) return x;
  float* buf = Buffer(kLocalOperand, 0, backend_->operand_floats(n));
  backend_->ToOperand(static_cast<const float*>(x.p), buf, n);
  return {buf, true};
}

Result<std::unique_ptr<Pending>> BlockMatmul::Send(TensorCommunicator* along, bool root, Operand x, Use use,
                                                   int64_t step, int64_t n, Operand* operand) {
  const bool narrow = backend_->narrow_operands();
  if (root && (!narrow || x.converted)) {
    *operand = x;
  } else {
    float* buf = Buffer(use, step, backend_->operand_floats(n));
    if (root) backend_->ToOperand(static_cast<const float*>(x.p), buf, n);
    *operand = {buf, narrow};
  }
  if (root) stats_.bytes_sent += (mesh_->pos.s - 1) * n * backend_->operand_bytes();
  return along->StartBroadcastData(const_cast<float*>(static_cast<const float*>(operand->p)),
                                   backend_->operand_floats(n), step);
}

void BlockMatmul::Accumulate(float beta, const float* sum, float* c, int64_t n) {
  if (beta == 0.0f) {
    backend_->Copy(c, sum, n);
    return;
  }
  if (beta != 1.0f) backend_->Scale(c, n, beta);
  backend_->Axpy(1.0f, sum, c, n);
}

Status BlockMatmul::NN(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, mi = Part(m, p.i), nj = Part(n, p.j);
  if (s == 1) {
    backend_->GemmOperands(false, false, mi, nj, Part(k, 0), 1.0f, a, b, beta, c);
    stats_.gemm_flops += 2 * mi * nj * Part(k, 0);
    return OkStatus();
  }
  for (int64_t q = 0; q < s; ++q) {  // every buffer at its largest before the first transfer
    Buffer(kFirstOperand, q, backend_->operand_floats(mi * Part(k, q)));
    Buffer(kSecondOperand, q, backend_->operand_floats(Part(k, q) * nj));
  }
  // Step q's operands: A_iq along the row from (i, q), B_qj down the column from (q, j). Float32 blocks
  // travel from the caller's memory; narrow ones are converted by their sender into the step's buffer.
  Operand operands[2][2] = {{nullptr, nullptr}, {nullptr, nullptr}};
  std::vector<std::unique_ptr<Pending>> pending[2];
  auto start = [&](int64_t q) -> Status {
    const int64_t kq = Part(k, q);
    ASSIGN_OR_RETURN(auto along_row, Send(mesh_->row.get(), p.j == q, a, kFirstOperand, q, mi * kq, &operands[q % 2][0]));
    pending[q % 2].push_back(std::move(along_row));
    ASSIGN_OR_RETURN(auto down_column,
                     Send(mesh_->col.get(), p.i == q, b, kSecondOperand, q, kq * nj, &operands[q % 2][1]));
    pending[q % 2].push_back(std::move(down_column));
    return OkStatus();
  };
  RETURN_IF_ERROR(start(0));
  for (int64_t q = 0; q < s; ++q) {
    if (overlap_ && q + 1 < s) RETURN_IF_ERROR(start(q + 1));
    RETURN_IF_ERROR(WaitAll(&pending[q % 2]));
    const int64_t kq = Part(k, q);
    backend_->GemmOperands(false, false, mi, nj, kq, 1.0f, operands[q % 2][0], operands[q % 2][1],
                           q == 0 ? beta : 1.0f, c);
    stats_.gemm_flops += 2 * mi * nj * kq;
    if (!overlap_ && q + 1 < s) RETURN_IF_ERROR(start(q + 1));
  }
  return OkStatus();
}

Status BlockMatmul::BroadcastMultiplyReduce(TensorCommunicator* along, TensorCommunicator* sum_along,
                                            const std::function<ReduceStep(int64_t)>& step_of,
                                            const std::function<void(int64_t, Backend::Operand, float*)>& multiply,
                                            float beta, float* c) {
  const int64_t s = mesh_->pos.s;
  for (int64_t l = 0; l < s; ++l) {  // every buffer at its largest before the first transfer
    const ReduceStep st = step_of(l);
    Buffer(kFirstOperand, l, backend_->operand_floats(st.operand_n));
    Buffer(kPartial, l, st.out_n);
    Buffer(kSum, l, st.out_n);
  }
  Operand operand[2] = {nullptr, nullptr};
  std::unique_ptr<Pending> arriving[2], summing[2];
  auto start_broadcast = [&](int64_t l) -> Status {
    const ReduceStep st = step_of(l);
    ASSIGN_OR_RETURN(arriving[l % 2], Send(along, st.sends, st.operand, kFirstOperand, l, st.operand_n, &operand[l % 2]));
    return OkStatus();
  };
  auto finish_sum = [&](int64_t l) -> Status {
    const ReduceStep st = step_of(l);
    RETURN_IF_ERROR(summing[l % 2]->Wait());
    summing[l % 2].reset();
    if (st.receives) Accumulate(beta, Buffer(kSum, l, st.out_n), c, st.out_n);
    return OkStatus();
  };
  RETURN_IF_ERROR(start_broadcast(0));
  for (int64_t l = 0; l < s; ++l) {
    if (overlap_ && l + 1 < s) RETURN_IF_ERROR(start_broadcast(l + 1));
    RETURN_IF_ERROR(arriving[l % 2]->Wait());
    arriving[l % 2].reset();
    const ReduceStep st = step_of(l);
    float* partial = Buffer(kPartial, l, st.out_n);
    multiply(l, operand[l % 2], partial);
    ASSIGN_OR_RETURN(summing[l % 2], sum_along->StartReduceSum(partial, Buffer(kSum, l, st.out_n), st.out_n, l));
    if (!st.receives) stats_.bytes_sent += st.out_n * kFloat;
    if (overlap_) {
      if (l > 0) RETURN_IF_ERROR(finish_sum(l - 1));
    } else {
      RETURN_IF_ERROR(finish_sum(l));
      if (l + 1 < s) RETURN_IF_ERROR(start_broadcast(l + 1));
    }
  }
  if (overlap_) RETURN_IF_ERROR(finish_sum(s - 1));
  return OkStatus();
}

Status BlockMatmul::NT(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, mi = Part(m, p.i), kj = Part(k, p.j);
  if (s == 1) {
    backend_->GemmOperands(false, true, mi, Part(n, 0), kj, 1.0f, a, b, beta, c);
    stats_.gemm_flops += 2 * mi * Part(n, 0) * kj;
    return OkStatus();
  }
  // Step l: B_lj down column j from (l, j); A_ij B_lj^T summed along row i into C_il at (i, l).
  auto step_of = [&](int64_t l) {
    return ReduceStep{p.i == l, b, Part(n, l) * kj, p.j == l, mi * Part(n, l)};
  };
  const Backend::Operand aij = LocalOperand(a, mi * kj);
  auto multiply = [&](int64_t l, Backend::Operand bl, float* partial) {
    backend_->GemmOperands(false, true, mi, Part(n, l), kj, 1.0f, aij, bl, 0.0f, partial);
    stats_.gemm_flops += 2 * mi * Part(n, l) * kj;
  };
  return BroadcastMultiplyReduce(mesh_->col.get(), mesh_->row.get(), step_of, multiply, beta, c);
}

Status BlockMatmul::TN(const Bounds& m, const Bounds& k, const Bounds& n, Operand a, Operand b, float beta,
                       float* c) {
  const auto& p = mesh_->pos;
  const int64_t s = p.s, ki = Part(k, p.i), nj = Part(n, p.j);
  if (s == 1) {
    backend_->GemmOperands(true, false, Part(m, 0), nj, ki, 1.0f, a, b, beta, c);
    stats_.gemm_flops += 2 * Part(m, 0) * nj * ki;
    return OkStatus();
  }
  // Step l: A_il along row i from (i, l); A_il^T B_ij summed down column j into C_lj at (l, j).
  auto step_of = [&](int64_t l) {
    return ReduceStep{p.j == l, a, ki * Part(m, l), p.i == l, Part(m, l) * nj};
  };
  const Backend::Operand bij = LocalOperand(b, ki * nj);
  auto multiply = [&](int64_t l, Backend::Operand al, float* partial) {
    backend_->GemmOperands(true, false, Part(m, l), nj, ki, 1.0f, al, bij, 0.0f, partial);
    stats_.gemm_flops += 2 * Part(m, l) * nj * ki;
  };
  return BroadcastMultiplyReduce(mesh_->row.get(), mesh_->col.get(), step_of, multiply, beta, c);
}

}  // namespace jigsaw::train
