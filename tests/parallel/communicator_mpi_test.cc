// The MPI communicator's data calls on N processes (mpirun -np N), against values each rank computes by
// itself: broadcast, reduce, all-reduce (bit-identical on every rank), all-gather, reduce-scatter,
// send/receive round a ring, and the same on the sub-communicators of a 2 x (N/2) mesh.
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/failure_report.h"

using namespace jigsaw;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", rank, __FILE__, __LINE__, #cond); \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                \
    }                                                                                              \
  } while (0)

namespace {

// What rank r holds: n values that differ by rank and index.
std::vector<float> Values(int64_t r, int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(r * 1000 + i) * 0.5f;
  return v;
}

void CheckAll(TensorCommunicator* c, int rank) {
  const int64_t R = c->size(), me = c->rank(), n = 5;
  // AllGather: every rank's values in rank order.
  std::vector<float> all(R * n);
  CHECK(c->AllGather(Values(me, n).data(), all.data(), n).ok());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < n; ++i) CHECK(all[r * n + i] == Values(r, n)[i]);
  // ReduceScatterSum: rank r gets the sum over ranks of their part r.
  std::vector<float> send(R * n), part(n);
  for (int64_t k = 0; k < R * n; ++k) send[k] = static_cast<float>(me + 1) * (k + 1);
  CHECK(c->ReduceScatterSum(send.data(), part.data(), n).ok());
  const float ranks_sum = static_cast<float>(R * (R + 1) / 2);
  for (int64_t i = 0; i < n; ++i) CHECK(part[i] == ranks_sum * static_cast<float>(me * n + i + 1));
  // AllReduceSum: the same bits everywhere.
  std::vector<float> x = Values(me, n);
  CHECK(c->AllReduceSum(x.data(), n).ok());
  for (int64_t i = 0; i < n; ++i) {
    float want = 0;
    for (int64_t r = 0; r < R; ++r) want += Values(r, n)[i];
    CHECK(x[i] == want);
  }
  // Started: an all-reduce and a broadcast in flight together, waited for in order: the blocking calls' results
  // (the all-reduce's bits equal on every rank, as above).
  {
    std::vector<float> y = Values(me, n), z = me == 0 ? Values(9, n) : std::vector<float>(n, 0.0f);
    auto sum = c->StartAllReduceSum(y.data(), n);
    auto bcast = c->StartBroadcastData(z.data(), n, 0);
    CHECK(sum.ok() && bcast.ok());
    CHECK((*sum)->Wait().ok());
    CHECK((*bcast)->Wait().ok());
    CHECK(y == x);
    CHECK(z == Values(9, n));
    std::vector<float> send = Values(me, n), got(n, -1.0f);
    auto reduce = c->StartReduceSum(send.data(), got.data(), n, R - 1);
    CHECK(reduce.ok());
    CHECK((*reduce)->Wait().ok());
    if (me == R - 1) CHECK(got == x);
  }
  // BroadcastData from the last rank; ReduceSum to it.
  std::vector<float> b = Values(me, n);
  CHECK(c->BroadcastData(b.data(), n, R - 1).ok());
  CHECK(b == Values(R - 1, n));
  // Send/Recv round a ring: each rank sends to the next and receives from the one before.
  std::vector<float> from_prev(n);
  const int64_t next = (me + 1) % R, prev = (me + R - 1) % R;
  if (me % 2 == 0) {
    CHECK(c->Send(Values(me, n).data(), n, next).ok());
    CHECK(c->Recv(from_prev.data(), n, prev).ok());
  } else {
    CHECK(c->Recv(from_prev.data(), n, prev).ok());
    CHECK(c->Send(Values(me, n).data(), n, next).ok());
  }
  CHECK(from_prev == Values(prev, n));
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  {
    auto world = NewMpiCommunicator();
    CHECK(world.ok());
    CheckAll(world->get(), rank);
    // Sub-communicators of a 2 x (N/2) mesh: rows and columns.
    const int64_t cols = (*world)->size() / 2;
    auto row = (*world)->Split(rank / cols, rank % cols);
    auto col = (*world)->Split(rank % cols, rank / cols);
    CHECK(row.ok() && col.ok());
    CHECK((*row)->size() == cols && (*col)->size() == 2);
    CheckAll(row->get(), rank);
    CheckAll(col->get(), rank);
    // NCCL where there is no GPU (or no NCCL in the build): refused on every rank alike, none left waiting
    // for the others (on a GPU machine it is made).
    auto copy = (*world)->Split(0, rank);
    CHECK(copy.ok());
    auto nccl = NewNcclCommunicator(std::move(*copy));
    CHECK(nccl.ok() || nccl.status().code() == StatusCode::kFailedPrecondition ||
          nccl.status().code() == StatusCode::kUnimplemented);
    CHECK((*world)->Barrier().ok());
    // Every rank of this test runs on this machine: local ranks 0..N-1 of N, in rank order.
    auto place = PlaceOnHost(world->get());
    CHECK(place.ok());
    CHECK(place->local_rank == rank && place->local_ranks == (*world)->size());
  }
  // A failure report: every rank's message at rank 0 when all fail; one line when they agree, grouped when not.
  {
    auto report = OpenFailureReport();
    CHECK(report != nullptr);
    auto same = report->Gather("no such store", 60);
    CHECK(same.has_value());
    if (rank == 0) CHECK(FailureLines(*same) == std::vector<std::string>{"no such store"} && same->size() == 4);
    if (rank != 0) CHECK(same->empty());
    auto differ = report->Gather(rank % 2 ? "odd" : "even", 60);
    CHECK(differ.has_value());
    if (rank == 0) CHECK((FailureLines(*differ) == std::vector<std::string>{"ranks 0, 2: even", "ranks 1, 3: odd"}));
  }
  if (rank == 0) std::printf("communicator checks passed\n");
  MPI_Finalize();
  return 0;
}
