// The NCCL communicator's calls on device buffers against values each rank computes by itself (GPU test):
// broadcast, reduce, all-reduce (bit-identical on every rank), all-gather, reduce-scatter, a send to this
// rank itself, started (asynchronous) broadcast and reduce against the default stream's work, host buffers
// through the control communicator, and a split. One process (the local
// communicator as control: what a one-GPU machine runs) or, built with MPI, mpirun -np N with N GPUs.
// Exits 77 (CTest's skip) when there is no GPU, saying so.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#ifdef JIGSAW_HAVE_MPI
#include <mpi.h>
#endif

#include "parallel/communicator.h"

using namespace jigsaw;

namespace {

int failures = 0;
int64_t me = 0;
#define CHECK(cond)                                                                                     \
  do {                                                                                                  \
    if (!(cond)) {                                                                                      \
      std::fprintf(stderr, "rank %lld: %s:%d: check failed: %s\n", (long long)me, __FILE__, __LINE__, #cond); \
      ++failures;                                                                                       \
    }                                                                                                   \
  } while (0)

std::vector<float> Values(int64_t r, int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(r * 1000 + i) * 0.5f;
  return v;
}

// A device copy of host values, and back.
struct DeviceBuffer {
  float* p = nullptr;
  int64_t n = 0;
  explicit DeviceBuffer(const std::vector<float>& host) : n(static_cast<int64_t>(host.size())) {
    cudaMalloc(&p, std::max<int64_t>(n, 1) * sizeof(float));
    cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  }
  ~DeviceBuffer() { cudaFree(p); }
  std::vector<float> Host() const {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
  }
};

void CheckAll(TensorCommunicator* c) {
  const int64_t n = 1037, size = c->size(), r = c->rank();
  {
    DeviceBuffer b(r == size - 1 ? Values(7, n) : std::vector<float>(n, -1.0f));
    CHECK(c->BroadcastData(b.p, n, size - 1).ok());
    CHECK(b.Host() == Values(7, n));
  }
  std::vector<float> sum(n, 0.0f);
  for (int64_t q = 0; q < size; ++q)
    for (int64_t i = 0; i < n; ++i) sum[i] += Values(q, n)[i];
  {
    DeviceBuffer send(Values(r, n)), recv(std::vector<float>(n, 0.0f));
    CHECK(c->ReduceSum(send.p, recv.p, n, 0).ok());
    if (r == 0) CHECK(recv.Host() == sum);
  }
  {
    DeviceBuffer b(Values(r, n));
    CHECK(c->AllReduceSum(b.p, n).ok());
    CHECK(b.Host() == sum);
    // Bit-identical on every rank: rank 0's result reaches the others and is compared there.
    DeviceBuffer zero(b.Host());
    CHECK(c->BroadcastData(zero.p, n, 0).ok());
    CHECK(zero.Host() == b.Host());
  }
  {
    DeviceBuffer send(Values(r, n)), recv(std::vector<float>(size * n, 0.0f));
    CHECK(c->AllGather(send.p, recv.p, n).ok());
    std::vector<float> want;
    for (int64_t q = 0; q < size; ++q) {
      const auto v = Values(q, n);
      want.insert(want.end(), v.begin(), v.end());
    }
    CHECK(recv.Host() == want);
  }
  {
    std::vector<float> mine;
    for (int64_t q = 0; q < size; ++q) {
      const auto v = Values(r + q, n);
      mine.insert(mine.end(), v.begin(), v.end());
    }
    DeviceBuffer send(mine), recv(std::vector<float>(n, 0.0f));
    CHECK(c->ReduceScatterSum(send.p, recv.p, n).ok());
    std::vector<float> want(n, 0.0f);
    for (int64_t q = 0; q < size; ++q)
      for (int64_t i = 0; i < n; ++i) want[i] += Values(q + r, n)[i];
    CHECK(recv.Host() == want);
  }
  {
    DeviceBuffer send(Values(r, n)), recv(std::vector<float>(n, 0.0f));
    CHECK(c->Send(send.p, n, r).ok());
    CHECK(c->Recv(recv.p, n, r).ok());
    CHECK(recv.Host() == Values(r, n));
    CHECK(!c->Recv(recv.p, n, r).ok());  // nothing left from this rank
  }
  {
    // Started transfers, ordered against the default stream both ways: the producer (a copy queued on the
    // default stream just before) is done before the transfer reads, and the consumer (queued after Wait)
    // sees its result; two in flight at once, waited for in order.
    DeviceBuffer src(Values(r, n)), send(std::vector<float>(n, 0.0f)), recv(std::vector<float>(n, 0.0f)),
        out(std::vector<float>(n, 0.0f)), b(std::vector<float>(n, -1.0f)), b_src(Values(5, n));
    CHECK(cudaMemcpyAsync(send.p, src.p, n * sizeof(float), cudaMemcpyDeviceToDevice, cudaStreamLegacy) == cudaSuccess);
    if (r == 0)
      CHECK(cudaMemcpyAsync(b.p, b_src.p, n * sizeof(float), cudaMemcpyDeviceToDevice, cudaStreamLegacy) ==
            cudaSuccess);
    DeviceBuffer all(Values(r, n));
    auto reduce = c->StartReduceSum(send.p, recv.p, n, 0);
    auto bcast = c->StartBroadcastData(b.p, n, 0);
    auto sum_all = c->StartAllReduceSum(all.p, n);
    CHECK(reduce.ok() && bcast.ok() && sum_all.ok());
    if (reduce.ok() && bcast.ok() && sum_all.ok()) {
      CHECK((*sum_all)->Wait().ok());
      CHECK(all.Host() == sum);
      CHECK((*reduce)->Wait().ok());
      CHECK(cudaMemcpyAsync(out.p, recv.p, n * sizeof(float), cudaMemcpyDeviceToDevice, cudaStreamLegacy) ==
            cudaSuccess);
      CHECK((*bcast)->Wait().ok());
      if (r == 0) CHECK(out.Host() == sum);
      CHECK(b.Host() == Values(5, n));
    }
  }
  {
    // Host buffers (the trainer's scalars) go through the control communicator.
    float total = static_cast<float>(r + 1);
    CHECK(c->AllReduceSum(&total, 1).ok());
    CHECK(total == static_cast<float>(size * (size + 1) / 2));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: GPU test, and this machine shows no GPU\n");
    return 77;
  }
  std::unique_ptr<TensorCommunicator> control;
#ifdef JIGSAW_HAVE_MPI
  MPI_Init(&argc, &argv);
  auto world = NewMpiCommunicator();
  if (!world.ok()) return 1;
  control = std::move(*world);
#else
  (void)argc;
  (void)argv;
  control = NewLocalCommunicator();
#endif
  me = control->rank();
  const int64_t size = control->size();
  {
    auto place = PlaceOnHost(control.get());
    CHECK(place.ok());
    if (place->local_ranks > devices) {
      std::printf("skipped: %lld ranks on a machine with %d GPUs\n", (long long)place->local_ranks, devices);
#ifdef JIGSAW_HAVE_MPI
      MPI_Finalize();
#endif
      return 77;
    }
    cudaSetDevice(static_cast<int>(place->local_rank));
    auto nccl = NewNcclCommunicator(std::move(control));
    if (!nccl.ok()) {
      std::fprintf(stderr, "rank %lld: %s\n", (long long)me, nccl.status().ToString().c_str());
      return 1;
    }
    CheckAll(nccl->get());
    // Two halves (or the whole, on one rank).
    auto half = (*nccl)->Split(me % 2, me);
    CHECK(half.ok());
    if (half.ok()) {
      CHECK((*half)->size() == (size + 1 - me % 2) / 2);
      CheckAll(half->get());
    }
  }
#ifdef JIGSAW_HAVE_MPI
  MPI_Finalize();
#endif
  if (failures == 0 && me == 0) std::printf("NCCL communicator checks passed on %lld rank(s)\n", (long long)size);
  return failures == 0 ? 0 : 1;
}
