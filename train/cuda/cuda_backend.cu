// The CUDA backend: GEMMs through cuBLAS in float32 (no TF32, so that it checks against the oracle
// at the CPU's tolerance), everything else as kernels here. Every call returns with its work finished
// (the default stream, synchronised where a result comes back to the host), as the interface promises.
// Reductions run in a fixed order (no atomics), so results repeat bit for bit.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "train/backend.h"
#include "train/caching_allocator.h"
#include "train/elementwise.h"

#define CUDA_CHECK(x)                                                                          \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
#define CUBLAS_CHECK(x)                                                                       \
  do {                                                                                        \
    cublasStatus_t s_ = (x);                                                                  \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #x, int(s_)); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace jigsaw::train {
namespace {

constexpr int kThreads = 256;
int Blocks(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }

namespace ew = elementwise;  // the per-element maths, shared with the CPU backend

// Sum over a block of `v` (blockDim.x a multiple of 32, at most 1024); the result in every thread.
__device__ float BlockSum(float v) {
  __shared__ float part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) t += part[w];
  return t;
}

__global__ void ToBFloat16Kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}
__global__ void FillKernel(float* x, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = v;
}
__global__ void AxpyKernel(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += a * x[i];
}
__global__ void ScaleKernel(float* x, int64_t n, float a) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= a;
}
__global__ void BiasKernel(float* x, int64_t m, int64_t n, const float* cb, const float* rb, float* g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m * n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, c = i % n;
    const float v = x[i] + ((cb ? cb[c] : 0.0f) + (rb ? rb[r] : 0.0f));
    x[i] = v;
    if (g) g[i] = ew::Gelu<ew::LibmMath>(v);
  }
}
__global__ void GeluBackwardKernel(const float* a, const float* dg, float* d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    d[i] = dg[i] * ew::GeluGrad<ew::LibmMath>(a[i]);
}
// Column sums in two deterministic passes: partial[q, c] = sum over rows [q kChunk, (q+1) kChunk) of
// x[r, c] (times y[r, c] when y is given), then out[c] += the partials in order. One thread per column
// over all rows would leave the GPU mostly idle and latency-bound.
constexpr int64_t kChunk = 64;
__global__ void ColumnPartialsKernel(const float* x, const float* y, int64_t m, int64_t n, float* partial) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  const int64_t r0 = blockIdx.y * kChunk, r1 = min(m, r0 + kChunk);
  float s = 0;
  for (int64_t r = r0; r < r1; ++r) s += y ? x[r * n + c] * y[r * n + c] : x[r * n + c];
  partial[blockIdx.y * n + c] = s;
}
__global__ void ColumnFinishKernel(const float* partial, int64_t chunks, int64_t n, float* out) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  float s = 0;
  for (int64_t q = 0; q < chunks; ++q) s += partial[q * n + c];
  out[c] += s;
}
// One block per row.
__global__ void RowSumsKernel(const float* x, int64_t n, float* out, bool add) {
  const float* row = x + blockIdx.x * n;
  float s = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s += row[c];
  s = BlockSum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = add ? out[blockIdx.x] + s : s;
}
__global__ void CentredSquaresKernel(const float* x, int64_t n, const float* sums, float inv_width, float* sq) {
  const float* row = x + blockIdx.x * n;
  const float mean = sums[blockIdx.x] * inv_width;
  float s = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float d = row[c] - mean;
    s += d * d;
  }
  s = BlockSum(s);
  if (threadIdx.x == 0) sq[blockIdx.x] = s;
}
__global__ void LayerNormApplyKernel(const float* x, int64_t n, const float* sums, const float* sq, float inv_width,
                                     float eps, const float* gamma, const float* beta, float* xhat, float* rstd,
                                     float* y) {
  const int64_t r = blockIdx.x;
  const float mean = sums[r] * inv_width;
  const float rs = ew::LayerNormRstd(sq[r], inv_width, eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
    y[r * n + c] = ew::LayerNormOut(x[r * n + c], mean, rs, gamma[c], beta[c], &xhat[r * n + c]);
}
__global__ void LayerNormBackwardRowKernel(const float* dy, const float* xhat, const float* gamma, int64_t m, int64_t n,
                                           float* sums) {
  const int64_t r = blockIdx.x;
  float s1 = 0, s2 = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const float dh = dy[r * n + c] * gamma[c];
    s1 += dh;
    s2 += dh * xhat[r * n + c];
  }
  s1 = BlockSum(s1);
  s2 = BlockSum(s2);
  if (threadIdx.x == 0) {
    sums[r] = s1;
    sums[m + r] = s2;
  }
}
__global__ void LayerNormBackwardApplyKernel(const float* dy, const float* xhat, const float* gamma, const float* rstd,
                                             const float* sums, int64_t m, int64_t n, float inv_width, float* dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m * n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, c = i % n;
    dx[i] += ew::LayerNormInputGrad(dy[i], gamma[c], xhat[i], rstd[r], sums[r] * inv_width, sums[m + r] * inv_width);
  }
}
// One thread per token feature: (token, channel, py, px) <-> the tile pixel.
__global__ void PatchKernel(float* tile, Backend::Block b, int64_t ph, int64_t pw, float* tokens, bool to_tokens) {
  const int64_t gw = b.w / pw, f = b.c * ph * pw, n = (b.h / ph) * gw * f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / f, e = i % f;
    const int64_t k = e / (ph * pw), py = (e / pw) % ph, px = e % pw;
    const int64_t ty = t / gw, tx = t % gw;
    float* p = tile + k * b.plane_stride + (ty * ph + py) * b.row_stride + tx * pw + px;
    if (to_tokens)
      tokens[i] = *p;
    else
      *p = tokens[i];
  }
}
// One block per (channel, row): the row's weighted squared error, and the gradient.
__global__ void LossKernel(const float* x0, const float* tend, const float* x1, const float* wl, const float* wc,
                           int64_t h, int64_t w, float scale, float* grad, double* row_sums) {
  const int64_t kr = blockIdx.x, k = kr / h, y = kr % h;
  const float wt = wl[y] * wc[k];
  const int64_t base = kr * w;
  float s = 0;
  for (int64_t x = threadIdx.x; x < w; x += blockDim.x) {
    const float e = ew::PredictionError(x0[base + x], tend[base + x], x1[base + x]);
    s += e * e;
    grad[base + x] = ew::SquaredErrorGrad(e, wt, scale);
  }
  s = BlockSum(s);
  if (threadIdx.x == 0) row_sums[kr] = static_cast<double>(s) * wt;
}
// AdamW over many tensors in one launch: block q takes chunk q of the concatenated elements (chunks never
// straddle tensors); the tensors' descriptions sit in device memory.
struct AdamWChunk {
  float* w;
  const float* g;
  float* m;
  float* v;
  int64_t begin, end;
  ew::AdamWConstants k;
};
__global__ void AdamWAllKernel(const AdamWChunk* chunks, float grad_scale) {
  const AdamWChunk c = chunks[blockIdx.x];
  for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x)
    ew::AdamWUpdate(c.k, c.g[i] * grad_scale, c.w + i, c.m + i, c.v + i);
}
// Sums of squares of many tensors, one partial per chunk (as above), in double.
struct SquaresChunk {
  const float* x;
  int64_t begin, end;
};
__global__ void SumSquaresAllKernel(const SquaresChunk* chunks, double* partial) {
  const SquaresChunk c = chunks[blockIdx.x];
  double s = 0;
  for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) s += static_cast<double>(c.x[i]) * c.x[i];
  __shared__ double part[kThreads];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = part[0];
}
constexpr int64_t kChunkElements = 1 << 16;

int RowThreads(int64_t n) { return n >= 1024 ? 1024 : n >= 256 ? 256 : 64; }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(GemmPrecision precision)
      : precision_(precision),
        memory_(
            [](size_t bytes) -> void* {
              void* p = nullptr;
              if (cudaMalloc(&p, bytes) != cudaSuccess) {
                (void)cudaGetLastError();  // clear the out-of-memory error: the cache is released and tried again
                return nullptr;
              }
              return p;
            },
            [](void* p) { CUDA_CHECK(cudaFree(p)); }) {
    CUBLAS_CHECK(cublasCreate(&blas_));
    // The default math mode keeps sgemm in float32 (CUBLAS_PEDANTIC_MATH measured the same step time on an
    // H200); TF32 tensor cores only when asked for.
    CUBLAS_CHECK(
        cublasSetMathMode(blas_, precision == GemmPrecision::kTF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }
  ~CudaBackend() override {
    cudaDeviceSynchronize();
    cublasDestroy(blas_);
    for (Buffer* b : {&scratch_, &adam_chunks_, &square_chunks_, &bf16_[0], &bf16_[1]}) memory_.Free(b->p);
  }
  Device device() const override { return Device::kCuda; }

  // Through the caching allocator: a block freed by one step is the next step's, without cudaMalloc's
  // device-wide synchronisation. Blocks are reused only after the work queued on them: every call here
  // returns with its kernels ordered on the one stream, so the next user's kernels run after them.
  float* AllocFloats(int64_t n) override {
    const size_t bytes = std::max<int64_t>(n, 1) * sizeof(float);
    void* p = Allocate(bytes);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes));
    return static_cast<float*>(p);
  }
  void FreeFloats(float* p) override { memory_.Free(p); }
  void Upload(float* dst, const float* host, int64_t n) override {
    CUDA_CHECK(cudaMemcpy(dst, host, n * sizeof(float), cudaMemcpyHostToDevice));
  }
  void Download(float* host, const float* src, int64_t n) override {
    CUDA_CHECK(cudaMemcpy(host, src, n * sizeof(float), cudaMemcpyDeviceToHost));
  }
  float* AllocHost(int64_t n) override {
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, std::max<int64_t>(n, 1) * sizeof(float), cudaHostAllocDefault));
    return static_cast<float*>(p);
  }
  void FreeHost(float* p) override { CUDA_CHECK(cudaFreeHost(p)); }
  // On a non-blocking stream of its own (a blocking one would wait for the default stream's kernels and
  // they for it), on this backend's GPU whichever thread calls.
  class StreamUploader final : public Uploader {
   public:
    // The backend's work queued so far (the zeroing of the buffers this will fill, say) is done first: this
    // stream does not wait for the default stream.
    StreamUploader() {
      CUDA_CHECK(cudaGetDevice(&device_));
      CUDA_CHECK(cudaDeviceSynchronize());
    }
    ~StreamUploader() override {
      if (stream_) cudaStreamDestroy(stream_);
    }
    void Upload(float* dst, const float* host, int64_t n) override {
      if (n <= 0) return;
      CUDA_CHECK(cudaSetDevice(device_));
      if (!stream_) CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }

   private:
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
  };
  std::unique_ptr<Uploader> NewUploader() override { return std::make_unique<StreamUploader>(); }

  void Copy(float* dst, const float* src, int64_t n) override {
    if (n > 0 && dst != src) CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice));
  }
  void CopyRows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
                int64_t cols) override {
    if (rows > 0 && cols > 0)
      CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_stride * sizeof(float), src, src_stride * sizeof(float),
                                   cols * sizeof(float), rows, cudaMemcpyDeviceToDevice, 0));
  }
  void Fill(float* x, int64_t n, float v) override {
    if (n > 0) FillKernel<<<Blocks(n), kThreads>>>(x, n, v);
  }

  int operand_bytes() const override { return precision_ == GemmPrecision::kBF16 ? 2 : 4; }
  void ToOperand(const float* src, void* dst, int64_t n) override {
    if (precision_ != GemmPrecision::kBF16) return Copy(static_cast<float*>(dst), src, n);
    if (n > 0) ToBFloat16Kernel<<<Blocks(n), kThreads>>>(src, static_cast<__nv_bfloat16*>(dst), n);
  }

  void GemmNonEmpty(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, Operand a_op, Operand b_op,
                    float beta, float* c) override {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (precision_ != GemmPrecision::kBF16) {
      const auto* a = static_cast<const float*>(a_op.p);
      const auto* b = static_cast<const float*>(b_op.p);
      CUBLAS_CHECK(cublasSgemm(blas_, op_b, op_a, int(n), int(m), int(k), &alpha, b, int(tb ? k : n), a,
                               int(ta ? m : k), &beta, c, int(n)));
      return;
    }
    // bfloat16 operands (converted here unless ToOperand made them), float32 accumulation and output (what
    // PyTorch's autocast does per product).
    const void* a16 = a_op.converted ? a_op.p : BFloat16Copy(0, static_cast<const float*>(a_op.p), m * k);
    const void* b16 = b_op.converted ? b_op.p : BFloat16Copy(1, static_cast<const float*>(b_op.p), k * n);
    CUBLAS_CHECK(cublasGemmEx(blas_, op_b, op_a, int(n), int(m), int(k), &alpha, b16, CUDA_R_16BF, int(tb ? k : n), a16,
                              CUDA_R_16BF, int(ta ? m : k), &beta, c, CUDA_R_32F, int(n), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  }

  void Axpy(float alpha, const float* x, float* y, int64_t n) override {
    if (n > 0) AxpyKernel<<<Blocks(n), kThreads>>>(alpha, x, y, n);
  }
  void Scale(float* x, int64_t n, float alpha) override {
    if (n == 0) return;
    if (alpha == 0.0f)
      Fill(x, n, 0.0f);
    else
      ScaleKernel<<<Blocks(n), kThreads>>>(x, n, alpha);
  }
  void AddBias(float* x, int64_t m, int64_t n, const float* cb, const float* rb) override {
    if (m * n > 0) BiasKernel<<<Blocks(m * n), kThreads>>>(x, m, n, cb, rb, nullptr);
  }
  void BiasGelu(float* a, float* g, int64_t m, int64_t n, const float* cb, const float* rb) override {
    if (m * n > 0) BiasKernel<<<Blocks(m * n), kThreads>>>(a, m, n, cb, rb, g);
  }
  void GeluBackward(const float* a, const float* dg, float* d, int64_t n) override {
    if (n > 0) GeluBackwardKernel<<<Blocks(n), kThreads>>>(a, dg, d, n);
  }
  void ColSumsAdd(const float* x, int64_t m, int64_t n, float* out) override { ColumnSums(x, nullptr, m, n, out); }
  void RowSumsAdd(const float* x, int64_t m, int64_t n, float* out) override {
    if (m > 0) RowSumsKernel<<<int(m), RowThreads(n)>>>(x, n, out, true);
  }
  double SumSquares(const float* x, int64_t n) override { return SumSquaresAll({{x, n}}); }

  void LayerNormSums(const float* x, int64_t m, int64_t n, float* sums) override {
    if (m > 0) RowSumsKernel<<<int(m), RowThreads(n)>>>(x, n, sums, false);
  }
  void LayerNormCentredSquares(const float* x, int64_t m, int64_t n, const float* sums, int64_t width,
                               float* sq) override {
    if (m > 0) CentredSquaresKernel<<<int(m), RowThreads(n)>>>(x, n, sums, 1.0f / float(width), sq);
  }
  void LayerNormApply(const float* x, int64_t m, int64_t n, const float* sums, const float* sq, int64_t width,
                      float eps, const float* gamma, const float* beta, float* xhat, float* rstd, float* y) override {
    if (m > 0)
      LayerNormApplyKernel<<<int(m), RowThreads(n)>>>(x, n, sums, sq, 1.0f / float(width), eps, gamma, beta, xhat, rstd,
                                                      y);
  }
  void LayerNormBackwardSums(const float* dy, const float* xhat, const float* gamma, int64_t m, int64_t n, float* sums,
                             float* dgamma, float* dbeta) override {
    if (m == 0) return;
    LayerNormBackwardRowKernel<<<int(m), RowThreads(n)>>>(dy, xhat, gamma, m, n, sums);
    ColumnSums(dy, xhat, m, n, dgamma);
    ColumnSums(dy, nullptr, m, n, dbeta);
  }
  void LayerNormBackwardApply(const float* dy, const float* xhat, const float* gamma, const float* rstd,
                              const float* sums, int64_t m, int64_t n, int64_t width, float* dx) override {
    if (m * n > 0)
      LayerNormBackwardApplyKernel<<<Blocks(m * n), kThreads>>>(dy, xhat, gamma, rstd, sums, m, n, 1.0f / float(width),
                                                                dx);
  }

  void Patchify(const float* tile, const Block& b, int64_t ph, int64_t pw, float* tokens) override {
    const int64_t n = b.c * b.h * b.w;
    if (n > 0) PatchKernel<<<Blocks(n), kThreads>>>(const_cast<float*>(tile), b, ph, pw, tokens, true);
  }
  void Unpatchify(const float* tokens, const Block& b, int64_t ph, int64_t pw, float* tile) override {
    const int64_t n = b.c * b.h * b.w;
    if (n > 0) PatchKernel<<<Blocks(n), kThreads>>>(tile, b, ph, pw, const_cast<float*>(tokens), false);
  }

  double WeightedSquaredError(const float* x0, const float* tendency, const float* x1, const float* w_lat,
                              const float* w_c, int64_t c, int64_t h, int64_t w, float scale, float* grad) override {
    const int64_t rows = c * h;
    if (rows == 0) return 0;
    double* sums = Scratch<double>(rows);
    LossKernel<<<int(rows), RowThreads(w)>>>(x0, tendency, x1, w_lat, w_c, h, w, scale, grad, sums);
    std::vector<double> host(rows);
    CUDA_CHECK(cudaMemcpy(host.data(), sums, rows * sizeof(double), cudaMemcpyDeviceToHost));
    double total = 0;
    for (double s : host) total += s;
    return total * scale;
  }

  void AdamWAll(const std::vector<AdamWTensor>& tensors, float grad_scale, float beta1, float beta2, float eps,
                int64_t step) override {
    std::vector<AdamWChunk> chunks;
    for (const AdamWTensor& t : tensors) {
      const auto k = ew::AdamWConstants::Of(t.lr, beta1, beta2, eps, t.weight_decay, step);
      for (int64_t b = 0; b < t.n; b += kChunkElements)
        chunks.push_back({t.w, t.g, t.m, t.v, b, std::min(t.n, b + kChunkElements), k});
    }
    if (chunks.empty()) return;
    AdamWChunk* dev = UploadChunks(chunks, &adam_chunks_);
    AdamWAllKernel<<<static_cast<unsigned>(chunks.size()), kThreads>>>(dev, grad_scale);
  }
  double SumSquaresAll(const std::vector<std::pair<const float*, int64_t>>& tensors) override {
    std::vector<SquaresChunk> chunks;
    for (const auto& [x, n] : tensors)
      for (int64_t b = 0; b < n; b += kChunkElements) chunks.push_back({x, b, std::min(n, b + kChunkElements)});
    if (chunks.empty()) return 0;
    SquaresChunk* dev = UploadChunks(chunks, &square_chunks_);
    double* partial = Scratch<double>(static_cast<int64_t>(chunks.size()));
    SumSquaresAllKernel<<<static_cast<unsigned>(chunks.size()), kThreads>>>(dev, partial);
    std::vector<double> host(chunks.size());
    CUDA_CHECK(cudaMemcpy(host.data(), partial, host.size() * sizeof(double), cudaMemcpyDeviceToHost));
    double s = 0;
    for (double p : host) s += p;
    return s;
  }

 private:
  // A device block from the caching allocator; out of memory even with the cache given back is fatal.
  void* Allocate(size_t bytes) {
    void* p = memory_.Allocate(bytes);
    if (!p) {
      std::fprintf(stderr, "jigsaw: the GPU is out of memory: %zu bytes asked for, %zu in use, %zu reserved\n", bytes,
                   memory_.stats().bytes_in_use, memory_.stats().bytes_reserved);
      std::abort();
    }
    return p;
  }
  // A buffer of the backend's own (scratch, bf16 operand copies, chunk lists), grown to at least `bytes`
  // when needed (its contents not kept) and counted like every other byte the backend holds.
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
  };
  void* Grow(Buffer* b, size_t bytes) {
    if (bytes > b->bytes) {
      memory_.Free(b->p);
      b->p = Allocate(bytes);
      Account(static_cast<int64_t>(bytes - b->bytes));
      b->bytes = bytes;
    }
    return b->p;
  }

  // x as bf16 operands in a buffer of slot `slot` (0: A, 1: B), kept for the next product.
  void* BFloat16Copy(int slot, const float* x, int64_t n) {
    void* y = Grow(&bf16_[slot], n * sizeof(__nv_bfloat16));
    ToOperand(x, y, n);
    return y;
  }

  // The chunk list into device memory (a buffer kept for the next call), after the work queued before it:
  // the copy is ordered on the default stream, so a kernel still reading the previous list is done first.
  template <typename Chunk>
  Chunk* UploadChunks(const std::vector<Chunk>& chunks, Buffer* buffer) {
    const size_t bytes = chunks.size() * sizeof(Chunk);
    void* p = Grow(buffer, bytes);
    CUDA_CHECK(cudaMemcpy(p, chunks.data(), bytes, cudaMemcpyHostToDevice));
    return static_cast<Chunk*>(p);
  }

  // out[c] += sum_r x[r, c] (y: of x y).
  void ColumnSums(const float* x, const float* y, int64_t m, int64_t n, float* out) {
    if (m == 0 || n == 0) return;
    const int64_t chunks = (m + kChunk - 1) / kChunk;
    float* partial = Scratch<float>(chunks * n);
    const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
    ColumnPartialsKernel<<<grid, kThreads>>>(x, y, m, n, partial);
    ColumnFinishKernel<<<Blocks(n), kThreads>>>(partial, chunks, n, out);
  }

  template <typename T>
  T* Scratch(int64_t n) {
    return static_cast<T*>(Grow(&scratch_, n * sizeof(T)));
  }

  GemmPrecision precision_;
  CachingAllocator memory_;  // every device byte this backend holds
  cublasHandle_t blas_ = nullptr;
  Buffer bf16_[2], scratch_, adam_chunks_, square_chunks_;
};

}  // namespace

int CudaDeviceCount() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess ? devices : 0;
}

Result<std::unique_ptr<Backend>> NewCudaBackend(GemmPrecision precision, int device) {
  const int devices = CudaDeviceCount();
  if (devices == 0) return FailedPreconditionError("no CUDA device is visible to this process");
  if (device < 0 || device >= devices) {
    return FailedPreconditionError("GPU " + std::to_string(device) + " asked for; this process sees " +
                                   std::to_string(devices));
  }
  if (cudaSetDevice(device) != cudaSuccess) return InternalError("cudaSetDevice(" + std::to_string(device) + ") failed");
  return std::unique_ptr<Backend>(new CudaBackend(precision));
}

}  // namespace jigsaw::train
