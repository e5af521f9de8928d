// The Jigsaw block products on an s x s mesh of MPI processes (mpirun -np s^2) against the definition,
// with each product's exchanges overlapped with its GEMMs and not, under three timings of when a started
// transfer's bytes move:
//   mpi       as MPI moves them;
//   at-start  all at once when started: a kernel that starts the next step's transfer into a buffer this
//             step still reads sees that buffer overwritten before its GEMM;
//   at-wait   only at Wait, the destination NaN until then: a kernel that reads a block before waiting for
//             it, or reuses a partial product before its sum is done, gets NaN or a wrong sum.
// The two schedules must also give the same bits and the same counts of FLOPs and bytes. Each on the float32
// CPU backend and on cpu:bf16, whose blocks cross the mesh as bfloat16 (converted by their sender): its
// products must be those of the operands' bfloat16 values (rounded once, exactly), and its bytes half.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/split.h"
#include "train/backend.h"
#include "train/block_matmul.h"
#include "train/elementwise.h"
#include "train/mesh.h"
#include "tests/train/reference.h"

using namespace jigsaw;
using namespace jigsaw::train;

namespace {

int world_rank = 0;

#define CHECK(cond, what)                                                                                     \
  do {                                                                                                        \
    if (!(cond)) {                                                                                            \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s (%s)\n", world_rank, __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                                                \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                           \
    }                                                                                                         \
  } while (0)

enum class Timing { kMpi, kAtStart, kAtWait };
const char* TimingName(Timing t) { return t == Timing::kMpi ? "mpi" : t == Timing::kAtStart ? "at-start" : "at-wait"; }

// A started transfer run later, by Wait or when dropped.
class Deferred final : public TensorCommunicator::Pending {
 public:
  explicit Deferred(std::function<Status()> run) : run_(std::move(run)) {}
  ~Deferred() override { (void)Wait(); }
  Status Wait() override {
    if (!run_) return OkStatus();
    auto run = std::move(run_);
    run_ = nullptr;
    return run();
  }

 private:
  std::function<Status()> run_;
};

class Done final : public TensorCommunicator::Pending {
 public:
  Status Wait() override { return OkStatus(); }
};

// The MPI communicator with its started transfers moved at the chosen time (every other call passes through).
class Timed final : public TensorCommunicator {
 public:
  Timed(std::unique_ptr<TensorCommunicator> inner, Timing timing) : inner_(std::move(inner)), timing_(timing) {}
  int64_t rank() const override { return inner_->rank(); }
  int64_t size() const override { return inner_->size(); }
  Result<std::vector<std::string>> Gather(const std::string& p) override { return inner_->Gather(p); }
  Status Broadcast(std::string* v) override { return inner_->Broadcast(v); }
  Status Barrier() override { return inner_->Barrier(); }
  Status BroadcastData(float* d, int64_t n, int64_t root) override { return inner_->BroadcastData(d, n, root); }
  Status ReduceSum(const float* s, float* r, int64_t n, int64_t root) override {
    return inner_->ReduceSum(s, r, n, root);
  }
  Status AllReduceSum(float* d, int64_t n) override { return inner_->AllReduceSum(d, n); }
  Status AllGather(const float* s, float* r, int64_t n) override { return inner_->AllGather(s, r, n); }
  Status ReduceScatterSum(const float* s, float* r, int64_t n) override { return inner_->ReduceScatterSum(s, r, n); }
  Status Send(const float* d, int64_t n, int64_t to) override { return inner_->Send(d, n, to); }
  Status Recv(float* d, int64_t n, int64_t from) override { return inner_->Recv(d, n, from); }
  Result<std::unique_ptr<TensorCommunicator>> Split(int64_t color, int64_t key) override {
    ASSIGN_OR_RETURN(auto sub, inner_->Split(color, key));
    return std::unique_ptr<TensorCommunicator>(new Timed(std::move(sub), timing_));
  }

  // The nonblocking calls under test (kMpi) or the blocking ones at the chosen time. The blocking and
  // nonblocking reduces may sum in different orders, so bits are compared only within one timing.
  Result<std::unique_ptr<Pending>> StartBroadcastData(float* d, int64_t n, int64_t root) override {
    if (timing_ == Timing::kMpi) return inner_->StartBroadcastData(d, n, root);
    if (timing_ == Timing::kAtStart) {
      RETURN_IF_ERROR(inner_->BroadcastData(d, n, root));
      return std::unique_ptr<Pending>(new Done());
    }
    if (rank() != root) Poison(d, n);
    TensorCommunicator* in = inner_.get();
    return std::unique_ptr<Pending>(new Deferred([=] { return in->BroadcastData(d, n, root); }));
  }
  Result<std::unique_ptr<Pending>> StartReduceSum(const float* s, float* r, int64_t n, int64_t root) override {
    if (timing_ == Timing::kMpi) return inner_->StartReduceSum(s, r, n, root);
    if (timing_ == Timing::kAtStart) {
      RETURN_IF_ERROR(inner_->ReduceSum(s, r, n, root));
      return std::unique_ptr<Pending>(new Done());
    }
    if (rank() == root && r != s) Poison(r, n);
    TensorCommunicator* in = inner_.get();
    return std::unique_ptr<Pending>(new Deferred([=] { return in->ReduceSum(s, r, n, root); }));
  }

 private:
  static void Poison(float* d, int64_t n) {
    for (int64_t i = 0; i < n; ++i) d[i] = std::numeric_limits<float>::quiet_NaN();
  }
  std::unique_ptr<TensorCommunicator> inner_;
  Timing timing_;
};

using testing::NaiveProduct;
using testing::Random;

int64_t Part(int64_t n, int64_t s, int64_t q) {
  const auto [b, e] = SplitPart(n, s, q);
  return e - b;
}

// Block (i, j) of a [rows, cols] matrix split s x s.
std::vector<float> Cut(const std::vector<float>& x, int64_t rows, int64_t cols, int64_t s, int64_t i, int64_t j) {
  const auto [r0, r1] = SplitPart(rows, s, i);
  const auto [c0, c1] = SplitPart(cols, s, j);
  std::vector<float> out;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) out.push_back(x[r * cols + c]);
  return out;
}


struct Outcome {
  std::vector<float> c;
  BlockMatmulStats stats;
};

// One kernel ('N' NN, 'n' NT, 't' TN) of C = A B (as the kernel reads them) + 0.5 on this rank's blocks;
// checked against the definition, returned for comparison between schedules.
// `ahead`: both operands handed over already converted (Backend::ToOperand), as the model hands its weights.
Outcome RunKernel(char kind, int64_t m, int64_t k, int64_t n, MeshComms* mesh, Backend* backend, bool overlap,
                  const std::string& label, bool ahead = false) {
  const MeshPosition& p = mesh->pos;
  const int64_t s = p.s;
  const bool ta = kind == 't', tb = kind == 'n';
  // The global operands as stored: A [m, k] or [k, m], B [k, n] or [n, k].
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  const std::vector<float> a = Random(a_rows * a_cols, 7), b = Random(b_rows * b_cols, 8);
  std::vector<float> ab = Cut(a, a_rows, a_cols, s, p.i, p.j), bb = Cut(b, b_rows, b_cols, s, p.i, p.j);
  std::vector<float> c = Cut(std::vector<float>(m * n, 0.5f), m, n, s, p.i, p.j);
  const std::vector<float> a_copy = ab, b_copy = bb;

  BlockMatmul mm(backend, mesh);
  mm.set_overlap(overlap);
  const Bounds M = SplitBounds(m, s), K = SplitBounds(k, s), N = SplitBounds(n, s);
  std::vector<float> a16(backend->operand_floats(static_cast<int64_t>(ab.size()))),
      b16(backend->operand_floats(static_cast<int64_t>(bb.size())));
  backend->ToOperand(ab.data(), a16.data(), static_cast<int64_t>(ab.size()));
  backend->ToOperand(bb.data(), b16.data(), static_cast<int64_t>(bb.size()));
  const BlockMatmul::Operand oa = ahead ? BlockMatmul::Operand{a16.data(), true} : BlockMatmul::Operand{ab.data()};
  const BlockMatmul::Operand obb = ahead ? BlockMatmul::Operand{b16.data(), true} : BlockMatmul::Operand{bb.data()};
  const Status st = kind == 'N'   ? mm.NN(M, K, N, oa, obb, 1.0f, c.data())
                    : kind == 'n' ? mm.NT(M, K, N, oa, obb, 1.0f, c.data())
                                  : mm.TN(M, K, N, oa, obb, 1.0f, c.data());
  CHECK(st.ok(), label + ": " + st.ToString());
  CHECK(ab == a_copy && bb == b_copy, label + ": an operand was written");
  // bfloat16 products: the operands' bfloat16 values multiplied exactly and summed in float32.
  auto rounded = [&](std::vector<float> x) {
    if (backend->operand_bytes() == 2)
      for (float& v : x) v = elementwise::FromBFloat16(elementwise::ToBFloat16(v));
    return x;
  };
  const std::vector<float> want = Cut(NaiveProduct(ta, tb, m, n, k, rounded(a), rounded(b)), m, n, s, p.i, p.j);
  for (size_t e = 0; e < c.size(); ++e) {
    CHECK(std::abs(c[e] - (want[e] + 0.5f)) <= 1e-5f * (1.0f + std::abs(want[e])),
          label + ": element " + std::to_string(e) + " is " + std::to_string(c[e]) + ", want " +
              std::to_string(want[e] + 0.5f));
  }
  return {c, mm.stats()};
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int64_t s = static_cast<int64_t>(std::lround(std::sqrt(size)));
  CHECK(s * s == size, "run on a square number of ranks");
  int checked = 0;
  for (bool bf16 : {false, true})
  for (Timing timing : {Timing::kMpi, Timing::kAtStart, Timing::kAtWait}) {
    auto backend = NewCpuBackend(1, bf16);
    auto world = NewMpiCommunicator();
    CHECK(world.ok(), world.status().ToString());
    Timed timed(std::move(*world), timing);
    auto mesh = SplitMesh(&timed, s);
    CHECK(mesh.ok(), mesh.status().ToString());
    // Small and uneven parts; then blocks above MPI's eager sizes (tens of KiB).
    struct Shape {
      int64_t m, k, n;
    };
    for (Shape sh : {Shape{11, 7, 5}, Shape{200, 130, 90}}) {
      for (char kind : {'N', 'n', 't'}) {
        const std::string label = std::string(bf16 ? "cpu:bf16 " : "cpu ") + TimingName(timing) + " " + kind + " " +
                                  std::to_string(sh.m) + "x" +
                                  std::to_string(sh.k) + "x" + std::to_string(sh.n);
        Outcome overlapped = RunKernel(kind, sh.m, sh.k, sh.n, &*mesh, backend.get(), true, label + " overlapped");
        Outcome waited = RunKernel(kind, sh.m, sh.k, sh.n, &*mesh, backend.get(), false, label + " waited");
        CHECK(std::memcmp(overlapped.c.data(), waited.c.data(), overlapped.c.size() * sizeof(float)) == 0,
              label + ": overlapped and waited differ in bits");
        Outcome ahead = RunKernel(kind, sh.m, sh.k, sh.n, &*mesh, backend.get(), true, label + " converted ahead", true);
        CHECK(std::memcmp(overlapped.c.data(), ahead.c.data(), overlapped.c.size() * sizeof(float)) == 0,
              label + ": operands converted ahead differ in bits");
        CHECK(ahead.stats.bytes_sent == overlapped.stats.bytes_sent, label + ": converted ahead, other bytes");
        CHECK(overlapped.stats.gemm_flops == waited.stats.gemm_flops &&
                  overlapped.stats.bytes_sent == waited.stats.bytes_sent,
              label + ": overlapped and waited count differently");
        // Bytes: broadcast blocks in the operand format, partial sums in float32 (NT, TN).
        const int64_t ob = backend->operand_bytes(), mi = Part(sh.m, s, mesh->pos.i), nj = Part(sh.n, s, mesh->pos.j);
        int64_t bytes = 0;
        for (int64_t q = 0; q < s; ++q) {
          const int64_t kq = Part(sh.k, s, q), mq = Part(sh.m, s, q), nq = Part(sh.n, s, q);
          const int64_t ki = Part(sh.k, s, mesh->pos.i), kj = Part(sh.k, s, mesh->pos.j);
          if (kind == 'N') {
            if (mesh->pos.j == q) bytes += (s - 1) * mi * kq * ob;
            if (mesh->pos.i == q) bytes += (s - 1) * kq * nj * ob;
          } else if (kind == 'n') {  // B_qj down the column; A B^T partials along the row to (i, q)
            if (mesh->pos.i == q) bytes += (s - 1) * nq * kj * ob;
            if (mesh->pos.j != q) bytes += mi * nq * 4;
          } else {  // A_iq along the row; A^T B partials down the column to (q, j)
            if (mesh->pos.j == q) bytes += (s - 1) * ki * mq * ob;
            if (mesh->pos.i != q) bytes += mq * nj * 4;
          }
        }
        CHECK(overlapped.stats.bytes_sent == bytes, label + ": " + std::to_string(overlapped.stats.bytes_sent) +
                                                        " bytes sent, want " + std::to_string(bytes));
        checked += 3;
      }
    }
  }
  if (world_rank == 0) std::printf("block products checked: %d kernels on a %lldx%lld mesh\n", checked, (long long)s, (long long)s);
  MPI_Finalize();
  return 0;
}
