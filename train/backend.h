// The operations the trainer runs on tensor data, behind one interface so that a CUDA backend (cuBLAS +
// kernels) slots in beside the CPU one (OpenBLAS + loops). Every pointer is on the backend's device;
// every matrix is row-major and dense (leading dimension = columns). Operations are synchronous as far
// as the caller can tell: a following call on the same backend sees the result.
//
// Fused kernels exist where a separate pass would re-read memory: bias + GELU, LayerNorm in its
// distributed parts (sums along a mesh row happen between the calls), the loss with its gradient, AdamW.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "parallel/communicator.h"

namespace jigsaw::train {

enum class Device { kCpu, kCuda };
std::string DeviceName(Device d);

// An allocation the backend could not make: a std::bad_alloc that names the bytes asked for.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(size_t bytes)
      : text_("out of memory: " + std::to_string(bytes) + " bytes asked for (" + std::to_string(bytes >> 20) +
              " MiB)") {}
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- memory ----
  // n float32 elements, zeroed; freed with Free(p, n). Every byte a backend holds is counted here (its
  // internal scratch too), so that a run can show its peak beside what the model needs.
  float* Alloc(int64_t n) {
    Account(n * int64_t{4});
    return AllocFloats(n);
  }
  void Free(float* p, int64_t n) {
    FreeFloats(p);
    Account(-n * int64_t{4});
  }
  int64_t bytes_in_use() const { return in_use_; }
  int64_t peak_bytes() const { return peak_; }
  virtual void Upload(float* dst, const float* host, int64_t n) = 0;
  virtual void Download(float* host, const float* src, int64_t n) = 0;
  virtual void Copy(float* dst, const float* src, int64_t n) = 0;

  // ---- staging: batches uploaded beside the work (jobs/batch_prefetch.h) ----
  // n floats of host memory the device copies from fastest (page-locked under CUDA); freed with FreeHost.
  virtual float* AllocHost(int64_t n);
  virtual void FreeHost(float* p);
  // Copies host memory to this backend's device from a thread other than the backend's, beside the backend's
  // own work (under CUDA: on a stream of its own that does not wait for the default stream's kernels); each
  // call returns when its copy is done. The caller keeps the destination out of the backend's use meanwhile.
  // Work the backend queued before NewUploader (zeroing new buffers) is done before the uploader's first copy.
  class Uploader {
   public:
    virtual ~Uploader() = default;
    virtual void Upload(float* dst, const float* host, int64_t n) = 0;
  };
  virtual std::unique_ptr<Uploader> NewUploader();
  virtual void Fill(float* x, int64_t n, float value) = 0;
  // dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < cols (a block of rows, e.g. one
  // sample's tokens into their places among a batch's).
  virtual void CopyRows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
                        int64_t cols) = 0;

  // ---- GEMM: C[m, n] = alpha op(A) op(B) + beta C; op(A) is [m, k], A^T when trans_a ----
  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
            float beta, float* c) {
    GemmOperands(trans_a, trans_b, m, n, k, alpha, {a, false}, {b, false}, beta, c);
  }
  // Operands converted ahead. A backend whose products take bfloat16 operands (operand_bytes() 2: cuda:bf16,
  // cpu:bf16) converts each float32 operand of a Gemm first; one converted by ToOperand is used as it is, so
  // that a block sent to other ranks travels converted (half the bytes, converted once by its sender) and an
  // operand of several products is converted once. With float32 products an operand is its float32 self
  // (operand_bytes() 4; ToOperand copies). The result is the same bits either way.
  virtual int operand_bytes() const { return 4; }
  bool narrow_operands() const { return operand_bytes() < 4; }
  // Floats of memory that hold n operands (what Alloc takes for ToOperand's dst).
  int64_t operand_floats(int64_t n) const { return (n * operand_bytes() + 3) / 4; }
  // dst (n operand_bytes() bytes on this device) = src[0, n) as an operand.
  virtual void ToOperand(const float* src, void* dst, int64_t n) { Copy(static_cast<float*>(dst), src, n); }
  struct Operand {
    Operand(const float* x) : p(x), converted(false) {}  // NOLINT: a float32 operand is an operand
    Operand(const void* q, bool made_by_to_operand) : p(q), converted(made_by_to_operand) {}
    const void* p;
    bool converted;  // made by ToOperand; else float32
  };
  void GemmOperands(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, Operand a, Operand b,
                    float beta, float* c) {
    if (m == 0 || n == 0) return;
    if (k == 0) return Scale(c, m * n, beta);  // an empty sum: BLAS would refuse k = 0
    GemmNonEmpty(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
  }

  // ---- elementwise and reductions on x[m, n] ----
  virtual void Axpy(float alpha, const float* x, float* y, int64_t n) = 0;  // y += alpha x
  virtual void Scale(float* x, int64_t n, float alpha) = 0;
  // x[r, c] += col_bias[c] (col_bias may be null) + row_bias[r] (row_bias may be null).
  virtual void AddBias(float* x, int64_t m, int64_t n, const float* col_bias, const float* row_bias) = 0;
  // a += bias (as AddBias), then g = GELU(a) (erf form); a keeps the pre-activation for the backward.
  virtual void BiasGelu(float* a, float* g, int64_t m, int64_t n, const float* col_bias, const float* row_bias) = 0;
  // d = dg * GELU'(a), in place of dg allowed.
  virtual void GeluBackward(const float* a, const float* dg, float* d, int64_t n) = 0;
  virtual void ColSumsAdd(const float* x, int64_t m, int64_t n, float* out) = 0;  // out[c] += sum_r x[r, c]
  virtual void RowSumsAdd(const float* x, int64_t m, int64_t n, float* out) = 0;  // out[r] += sum_c x[r, c]
  virtual double SumSquares(const float* x, int64_t n) = 0;

  // ---- LayerNorm over the columns of a row split along a mesh row (global width `width`) ----
  // sums[r] = sum_c x[r, c]                                   (then summed along the mesh row)
  virtual void LayerNormSums(const float* x, int64_t m, int64_t n, float* sums) = 0;
  // sq[r] = sum_c (x[r, c] - mean_r)^2, mean_r = sums[r] / width (then summed along the mesh row)
  virtual void LayerNormCentredSquares(const float* x, int64_t m, int64_t n, const float* sums, int64_t width,
                                       float* sq) = 0;
  // xhat = (x - mean) rstd, y = xhat gamma + beta, rstd[r] = 1 / sqrt(sq[r] / width + eps)
  virtual void LayerNormApply(const float* x, int64_t m, int64_t n, const float* sums, const float* sq, int64_t width,
                              float eps, const float* gamma, const float* beta, float* xhat, float* rstd, float* y) = 0;
  // Backward, first half: sums[r] = sum_c dy gamma, sums[m + r] = sum_c dy gamma xhat (then summed along
  // the mesh row); dgamma[c] += sum_r dy xhat, dbeta[c] += sum_r dy.
  virtual void LayerNormBackwardSums(const float* dy, const float* xhat, const float* gamma, int64_t m, int64_t n,
                                     float* sums, float* dgamma, float* dbeta) = 0;
  // Second half: dx += rstd (dy gamma - sums[r] / width - xhat sums[m + r] / width).
  virtual void LayerNormBackwardApply(const float* dy, const float* xhat, const float* gamma, const float* rstd,
                                      const float* sums, int64_t m, int64_t n, int64_t width, float* dx) = 0;

  // ---- patches: a block [c, h, w] of a tile <-> tokens [(h/ph)(w/pw), c ph pw], tokens row-major, features
  // (c, py, px). The block's rows are `row_stride` apart, its channels `plane_stride` (w and h w for a
  // whole tile) ----
  struct Block {
    int64_t c, h, w, row_stride, plane_stride;
  };
  virtual void Patchify(const float* tile, const Block& b, int64_t ph, int64_t pw, float* tokens) = 0;
  virtual void Unpatchify(const float* tokens, const Block& b, int64_t ph, int64_t pw, float* tile) = 0;

  // ---- loss: the tile's share of sum w_lat[y] w_c[c] (x0 + tendency - x1)^2 * scale ----
  // Returns that share; writes d/d tendency into grad (same shape as the tile [c, h, w]).
  virtual double WeightedSquaredError(const float* x0, const float* tendency, const float* x1, const float* w_lat,
                                      const float* w_c, int64_t c, int64_t h, int64_t w, float scale, float* grad) = 0;

  // ---- AdamW (decoupled decay, PyTorch's update), fp32 moments; `step` counts from 1 ----
  // Every parameter tensor in one pass (one launch on a GPU), each with its own learning rate and decay;
  // the gradients are multiplied by grad_scale first (global-norm clipping's coefficient; 1 for none).
  struct AdamWTensor {
    float* w;
    const float* g;
    float* m;
    float* v;
    int64_t n;
    float lr, weight_decay;
  };
  virtual void AdamWAll(const std::vector<AdamWTensor>& tensors, float grad_scale, float beta1, float beta2,
                        float eps, int64_t step) = 0;
  // One tensor.
  void AdamW(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
             float weight_decay, int64_t step) {
    AdamWAll({{w, g, m, v, n, lr, weight_decay}}, 1.0f, beta1, beta2, eps, step);
  }
  // The sum over tensors of SumSquares (one wait for the result on a GPU).
  virtual double SumSquaresAll(const std::vector<std::pair<const float*, int64_t>>& tensors) {
    double s = 0;
    for (const auto& [x, n] : tensors) s += SumSquares(x, n);
    return s;
  }

 protected:
  // Throws OutOfMemory (a std::bad_alloc naming the bytes) when the memory is not there; the model's
  // entry points turn it into a Status.
  virtual float* AllocFloats(int64_t n) = 0;
  virtual void FreeFloats(float* p) = 0;
  void Account(int64_t bytes) {
    in_use_ += bytes;
    peak_ = std::max(peak_, in_use_);
  }
  // GemmOperands with m, n, k > 0.
  virtual void GemmNonEmpty(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, Operand a,
                            Operand b, float beta, float* c) = 0;

 private:
  int64_t in_use_ = 0, peak_ = 0;
};

// The CPU backend over OpenBLAS. `threads` BLAS threads, set once here (0: OpenBLAS's default).
// `bf16_products` (cpu:bf16): every GEMM operand rounded to bfloat16 first (float32 accumulation and output),
// the arithmetic of cuda:bf16 and of PyTorch's autocast, so that it can be checked on a CPU (slower than
// float32: the operands are rounded in a pass of their own).
std::unique_ptr<Backend> NewCpuBackend(int threads = 0, bool bf16_products = false);
// How the CUDA backend multiplies: float32 (CUDA cores), TF32 tensor cores on float32 data, or bfloat16
// operands with float32 accumulation and output (PyTorch autocast's arithmetic). With bfloat16 the model
// keeps a bfloat16 copy of each weight matrix beside its float32 master (made once per pass) and the
// activations only products read in bfloat16 (WeatherMixer); gradients, Adam moments, LayerNorm and GELU
// inputs and every sum stay float32.
enum class GemmPrecision { kFloat32, kTF32, kBF16 };
// The CUDA backend (cuBLAS + kernels) on GPU `device` (made current for the calling thread);
// kFailedPrecondition without a GPU or when `device` is not one of them.
Result<std::unique_ptr<Backend>> NewCudaBackend(GemmPrecision precision = GemmPrecision::kFloat32, int device = 0);
// The GPUs this process sees (0 in a build without the CUDA backend, or without a driver).
int CudaDeviceCount();
// By name: "cpu", "cpu:bf16", "cuda" (float32), "cuda:tf32" or "cuda:bf16"; kUnimplemented naming what this
// build lacks.
// `device`: the GPU, for the CUDA ones.
Result<std::unique_ptr<Backend>> NewBackend(std::string_view name, int cpu_threads = 0, int device = 0);

// The GPU of the rank that is `local_rank` of the `local_ranks` ranks on machine `host`, which shows it
// `devices` GPUs: one GPU per rank, numbered by local rank. Refused naming both counts when the machine runs
// more ranks than it has GPUs, except that a rank shown exactly one GPU (a launcher binding one GPU per rank
// through CUDA_VISIBLE_DEVICES, `bound`) uses it.
Result<int> PickCudaDevice(const std::string& host, int64_t local_rank, int64_t local_ranks, int devices, bool bound);
// Collective over `world`: NewBackend for this rank, its GPU picked by PickCudaDevice from its place among
// the ranks on its machine (every rank names the same backend).
Result<std::unique_ptr<Backend>> NewRankBackend(std::string_view name, int cpu_threads, Communicator* world);

}  // namespace jigsaw::train
