// The CPU backend: GEMMs through OpenBLAS (threads set once, at construction), everything else as plain
// loops the compiler vectorises, split over rows (or columns) between TBB's threads. Each output element
// is computed by one thread in a fixed order, so the same inputs give the same bits run to run, however
// the work is split.
#include <cblas.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "train/backend.h"
#include "train/elementwise.h"

extern "C" void openblas_set_num_threads(int);

namespace jigsaw::train {
namespace {

// Runs f(begin, end) over [0, n) in pieces of about `grain_elements / per_item` items.
template <typename F>
void ForRange(int64_t n, int64_t per_item, F&& f) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(per_item, 1));
  if (n <= grain) {
    if (n > 0) f(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); });
}

using elementwise::FastMath;
using elementwise::Gelu;
using elementwise::GeluGrad;
using elementwise::LibmMath;

// GELU and its derivative over x[0, n) (train/elementwise.h): glibc's erff and expf (one element per call) on
// any x86-64, and on machines with AVX2 and FMA (checked once, at run time) FastMath's straight-line erf and
// exp, which vectorise. In the portable build FastMath does not vectorise and loses to glibc (measured: the
// step 22.5 ms against 19 ms), hence the two paths.
void GeluPortable(const float* a, float* g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = Gelu<LibmMath>(a[i]);
}
void GeluGradPortable(const float* a, const float* dg, float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = dg[i] * GeluGrad<LibmMath>(a[i]);
}
__attribute__((target("avx2,fma"))) void GeluAvx2(const float* __restrict a, float* __restrict g, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = Gelu<FastMath>(a[i]);
}
__attribute__((target("avx2,fma"))) void GeluGradAvx2(const float* __restrict a, const float* dg, float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = dg[i] * GeluGrad<FastMath>(a[i]);
}
const bool kHaveAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");

// The sum over a row of x[c] (squared: of (x[c] - mean)^2), in double, in eight running sums that the
// compiler keeps in vector registers (one running sum waits on every add: a quarter of the speed).
template <bool kSquared>
double RowSum(const float* x, int64_t n, float mean) {
  double acc[8] = {};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) {
      const double d = static_cast<double>(x[c + k] - mean);
      acc[k] += kSquared ? d * d : d;
    }
  for (; c < n; ++c) {
    const double d = static_cast<double>(x[c] - mean);
    acc[0] += kSquared ? d * d : d;
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

class CpuBackend final : public Backend {
 public:
  // One pool of threads for everything: OpenBLAS runs single-threaded inside TBB tasks that split each
  // GEMM into `threads` blocks of rows (or columns), as the elementwise kernels split theirs. Two pools
  // (OpenBLAS's spinning threads beside TBB's) took turns on the cores and lost a third of the step.
  CpuBackend(int threads, bool bf16)
      : parts_(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency())), bf16_(bf16) {
    openblas_set_num_threads(1);
  }
  ~CpuBackend() override {
    for (auto& r : rounded_) Account(-static_cast<int64_t>(r.capacity() * sizeof(float)));
  }
  Device device() const override { return Device::kCpu; }

  int operand_bytes() const override { return bf16_ ? 2 : 4; }
  void ToOperand(const float* src, void* dst, int64_t n) override {
    if (!bf16_) return Copy(static_cast<float*>(dst), src, n);
    auto* h = static_cast<uint16_t*>(dst);
    ForRange(n, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) h[i] = elementwise::ToBFloat16(src[i]);
    });
  }

  float* AllocFloats(int64_t n) override {
    const size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw OutOfMemory(bytes);
    std::memset(p, 0, bytes);
    return static_cast<float*>(p);
  }
  void FreeFloats(float* p) override { std::free(p); }
  void Upload(float* dst, const float* host, int64_t n) override { Copy(dst, host, n); }
  void Download(float* host, const float* src, int64_t n) override { Copy(host, src, n); }
  void Copy(float* dst, const float* src, int64_t n) override {
    if (n > 0 && dst != src) std::memmove(dst, src, n * sizeof(float));
  }
  void Fill(float* x, int64_t n, float value) override {
    for (int64_t i = 0; i < n; ++i) x[i] = value;
  }
  void CopyRows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
                int64_t cols) override {
    ForRange(rows, cols, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, cols * sizeof(float));
    });
  }

  void GemmNonEmpty(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, Operand a_op, Operand b_op,
                    float beta, float* c) override {
    // bf16 products: each operand's values rounded to bfloat16 (exact in float32, as are their products),
    // then an sgemm: float32 accumulation, as on the GPU.
    const float* a = bf16_ ? Rounded(0, a_op, m * k) : static_cast<const float*>(a_op.p);
    const float* b = bf16_ ? Rounded(1, b_op, k * n) : static_cast<const float*>(b_op.p);
    const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n), ldc = static_cast<int>(n);
    auto block = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      // C[r0:r1, c0:c1] = op(A)[r0:r1, :] op(B)[:, c0:c1]
      const float* ab = ta ? a + r0 : a + r0 * k;
      const float* bb = tb ? b + c0 * k : b + c0;
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                  static_cast<int>(r1 - r0), static_cast<int>(c1 - c0), static_cast<int>(k), alpha, ab, lda, bb, ldb,
                  beta, c + r0 * n + c0, ldc);
    };
    const int64_t flops = 2 * m * n * k;
    const int64_t parts = flops < (int64_t{1} << 21) ? 1 : std::min<int64_t>(parts_, std::max(m, n) / 16 + 1);
    if (parts <= 1) return block(0, m, 0, n);
    const bool by_rows = m >= n;
    const int64_t extent = by_rows ? m : n;
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t q) {
      const int64_t lo = extent * q / parts, hi = extent * (q + 1) / parts;
      if (by_rows)
        block(lo, hi, 0, n);
      else
        block(0, m, lo, hi);
    });
  }

  void Axpy(float alpha, const float* x, float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }
  void Scale(float* x, int64_t n, float alpha) override {
    if (alpha == 0.0f) {
      Fill(x, n, 0.0f);  // beta = 0 must clear NaN, as BLAS does
      return;
    }
    for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
  }
  void AddBias(float* x, int64_t m, int64_t n, const float* col_bias, const float* row_bias) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) { BiasRows(x, r0, r1, n, col_bias, row_bias, nullptr); });
  }
  void BiasGelu(float* a, float* g, int64_t m, int64_t n, const float* col_bias, const float* row_bias) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) { BiasRows(a, r0, r1, n, col_bias, row_bias, g); });
  }
  void GeluBackward(const float* a, const float* dg, float* d, int64_t n) override {
    ForRange(n, 1, [&](int64_t i0, int64_t i1) {
      (kHaveAvx2 ? GeluGradAvx2 : GeluGradPortable)(a + i0, dg + i0, d + i0, i1 - i0);
    });
  }
  void ColSumsAdd(const float* x, int64_t m, int64_t n, float* out) override {
    // Split over columns: each column summed by one thread, rows in order.
    ForRange(n, m, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = c0; c < c1; ++c) out[c] += x[r * n + c];
    });
  }
  void RowSumsAdd(const float* x, int64_t m, int64_t n, float* out) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float s = 0.0f;
        for (int64_t c = 0; c < n; ++c) s += x[r * n + c];
        out[r] += s;
      }
    });
  }
  double SumSquares(const float* x, int64_t n) override {
    // Fixed pieces summed in order: the same bits whatever the threads.
    constexpr int64_t kPiece = 1 << 14;
    const int64_t pieces = (n + kPiece - 1) / kPiece;
    std::vector<double> part(pieces);
    ForRange(pieces, kPiece, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight lanes, so that the loop vectorises
        const int64_t lo = p * kPiece, hi = std::min(n, lo + kPiece);
        int64_t i = lo;
        for (; i + 8 <= hi; i += 8)
          for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(x[i + l]) * x[i + l];
        double s = 0;
        for (int l = 0; l < 8; ++l) s += lanes[l];
        for (; i < hi; ++i) s += static_cast<double>(x[i]) * x[i];
        part[p] = s;
      }
    });
    double s = 0;
    for (double v : part) s += v;
    return s;
  }

  void LayerNormSums(const float* x, int64_t m, int64_t n, float* sums) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) sums[r] = static_cast<float>(RowSum<false>(x + r * n, n, 0.0f));
    });
  }
  void LayerNormCentredSquares(const float* x, int64_t m, int64_t n, const float* sums, int64_t width,
                               float* sq) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        sq[r] = static_cast<float>(RowSum<true>(x + r * n, n, sums[r] / static_cast<float>(width)));
    });
  }
  void LayerNormApply(const float* x, int64_t m, int64_t n, const float* sums, const float* sq, int64_t width,
                      float eps, const float* gamma, const float* beta, float* xhat, float* rstd, float* y) override {
    const float inv = 1.0f / static_cast<float>(width);
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float mean = sums[r] * inv;
        const float rs = elementwise::LayerNormRstd(sq[r], inv, eps);
        rstd[r] = rs;
        for (int64_t c = 0; c < n; ++c)
          y[r * n + c] = elementwise::LayerNormOut(x[r * n + c], mean, rs, gamma[c], beta[c], &xhat[r * n + c]);
      }
    });
  }
  void LayerNormBackwardSums(const float* dy, const float* xhat, const float* gamma, int64_t m, int64_t n, float* sums,
                             float* dgamma, float* dbeta) override {
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float s1 = 0.0f, s2 = 0.0f;
        for (int64_t c = 0; c < n; ++c) {
          const float dh = dy[r * n + c] * gamma[c];
          s1 += dh;
          s2 += dh * xhat[r * n + c];
        }
        sums[r] = s1;
        sums[m + r] = s2;
      }
    });
    ForRange(n, m, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          dgamma[c] += dy[r * n + c] * xhat[r * n + c];
          dbeta[c] += dy[r * n + c];
        }
    });
  }
  void LayerNormBackwardApply(const float* dy, const float* xhat, const float* gamma, const float* rstd,
                              const float* sums, int64_t m, int64_t n, int64_t width, float* dx) override {
    const float inv = 1.0f / static_cast<float>(width);
    ForRange(m, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float a = sums[r] * inv, b = sums[m + r] * inv;
        for (int64_t c = 0; c < n; ++c)
          dx[r * n + c] += elementwise::LayerNormInputGrad(dy[r * n + c], gamma[c], xhat[r * n + c], rstd[r], a, b);
      }
    });
  }

  void Patchify(const float* tile, const Block& b, int64_t ph, int64_t pw, float* tokens) override {
    Patch(const_cast<float*>(tile), b, ph, pw, tokens, true);
  }
  void Unpatchify(const float* tokens, const Block& b, int64_t ph, int64_t pw, float* tile) override {
    Patch(tile, b, ph, pw, const_cast<float*>(tokens), false);
  }

  double WeightedSquaredError(const float* x0, const float* tendency, const float* x1, const float* w_lat,
                              const float* w_c, int64_t c, int64_t h, int64_t w, float scale, float* grad) override {
    double total = 0.0;
    for (int64_t k = 0; k < c; ++k)
      for (int64_t y = 0; y < h; ++y) {
        const float wt = w_lat[y] * w_c[k];
        const int64_t base = (k * h + y) * w;
        double row = 0.0;
        for (int64_t x = 0; x < w; ++x) {
          const float e = elementwise::PredictionError(x0[base + x], tendency[base + x], x1[base + x]);
          row += static_cast<double>(e) * e;
          grad[base + x] = elementwise::SquaredErrorGrad(e, wt, scale);
        }
        total += row * wt;
      }
    return total * scale;
  }

  void AdamWAll(const std::vector<AdamWTensor>& tensors, float grad_scale, float beta1, float beta2, float eps,
                int64_t step) override {
    for (const AdamWTensor& t : tensors) {
      const auto k = elementwise::AdamWConstants::Of(t.lr, beta1, beta2, eps, t.weight_decay, step);
      ForRange(t.n, 1, [&](int64_t i0, int64_t i1) {
        float* __restrict wr = t.w;
        float* __restrict mr = t.m;
        float* __restrict vr = t.v;
        const float* __restrict gr = t.g;
        // (g * 1 is g exactly: no clipping, the same bits.)
        for (int64_t i = i0; i < i1; ++i) elementwise::AdamWUpdate(k, gr[i] * grad_scale, wr + i, mr + i, vr + i);
      });
    }
  }

 private:
  // Operand `slot` (0: A, 1: B) of n elements as float32 values rounded to bfloat16: expanded from one
  // ToOperand made, or rounded from float32, into a buffer kept for the next product (and counted).
  const float* Rounded(int slot, Operand op, int64_t n) {
    std::vector<float>& r = rounded_[slot];
    if (static_cast<int64_t>(r.size()) < n) {
      const int64_t before = static_cast<int64_t>(r.capacity() * sizeof(float));
      r.resize(n);
      Account(static_cast<int64_t>(r.capacity() * sizeof(float)) - before);
    }
    float* out = r.data();
    ForRange(n, 1, [&](int64_t i0, int64_t i1) {
      if (op.converted) {
        const auto* h = static_cast<const uint16_t*>(op.p);
        for (int64_t i = i0; i < i1; ++i) out[i] = elementwise::FromBFloat16(h[i]);
      } else {
        const auto* x = static_cast<const float*>(op.p);
        for (int64_t i = i0; i < i1; ++i) out[i] = elementwise::FromBFloat16(elementwise::ToBFloat16(x[i]));
      }
    });
    return out;
  }

  int64_t parts_;
  bool bf16_;
  std::vector<float> rounded_[2];
  // Rows [r0, r1) of x[., n] += col_bias + row_bias; with g, also g = GELU(x).
  static void BiasRows(float* x, int64_t r0, int64_t r1, int64_t n, const float* col_bias, const float* row_bias,
                       float* g) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = x + r * n;
      const float rb = row_bias ? row_bias[r] : 0.0f;
      if (col_bias)
        for (int64_t c = 0; c < n; ++c) row[c] += col_bias[c] + rb;
      else
        for (int64_t c = 0; c < n; ++c) row[c] += rb;
      if (g) (kHaveAvx2 ? GeluAvx2 : GeluPortable)(row, g + r * n, n);
    }
  }

  // tile [c, h, w] <-> tokens; to_tokens picks the direction.
  static void Patch(float* tile, const Block& b, int64_t ph, int64_t pw, float* tokens, bool to_tokens) {
    const int64_t gw = b.w / pw, c = b.c, f = c * ph * pw;
    for (int64_t ty = 0; ty < b.h / ph; ++ty)
      for (int64_t tx = 0; tx < gw; ++tx) {
        float* tok = tokens + (ty * gw + tx) * f;
        for (int64_t k = 0; k < c; ++k)
          for (int64_t py = 0; py < ph; ++py) {
            float* px = tile + k * b.plane_stride + (ty * ph + py) * b.row_stride + tx * pw;
            float* t = tok + (k * ph + py) * pw;
            if (to_tokens)
              std::memcpy(t, px, pw * sizeof(float));
            else
              std::memcpy(px, t, pw * sizeof(float));
          }
      }
  }
};

}  // namespace

std::unique_ptr<Backend> NewCpuBackend(int threads, bool bf16_products) {
  return std::make_unique<CpuBackend>(threads, bf16_products);
}

}  // namespace jigsaw::train
