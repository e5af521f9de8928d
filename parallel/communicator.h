// How the ranks of a job talk. Two interfaces: Communicator, the small control one (gather, broadcast,
// barrier; checkpoint commits agree through it, and Python can supply one), and TensorCommunicator, which
// adds the data calls of tensor parallelism (broadcast, reduce, all-reduce, all-gather, reduce-scatter and
// send/receive of float32 tensors, sub-communicators per mesh axis). Backends: local (one process), MPI (one process
// per rank, CPU buffers) and NCCL (GPU buffers, MPI handing out the id; nccl_communicator.cc).
//
// Contract:
// - Every call is collective over the communicator: every rank calls it, in the same order, with the
//   same root and the same element count. A rank that skips a call leaves the others waiting.
// - The MPI backend uses MPI_COMM_WORLD (NewMpiCommunicator) or a communicator split from it (Split);
//   MPI must be initialised by the caller. Sizes are 64-bit; payloads above 2^30 elements go in pieces.
// - A communicator is used from one thread at a time (MPI is initialised FUNNELED).
// - Data calls take buffers on the communicator's device (host memory for local and MPI).
// - Sums are deterministic and give bit-identical results on every rank: AllReduceSum reduces to rank 0
//   in a fixed order and broadcasts, so replicated copies stay equal to the last bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace jigsaw {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;

  // ---- control: small host messages (checkpoint commits, agreement) ----
  // Rank 0 receives every rank's payload (in rank order); the others get an empty vector.
  virtual Result<std::vector<std::string>> Gather(const std::string& payload) = 0;
  // Rank 0's *value reaches every rank.
  virtual Status Broadcast(std::string* value) = 0;
  virtual Status Barrier() = 0;
};

class TensorCommunicator : public Communicator {
 public:
  // ---- data: float32 tensors on the communicator's device ----
  // `root`'s data[0, n) reaches every rank.
  virtual Status BroadcastData(float* data, int64_t n, int64_t root) = 0;
  // recv (on `root` only; ignored elsewhere) = the sum over ranks of send[0, n). send may equal recv.
  virtual Status ReduceSum(const float* send, float* recv, int64_t n, int64_t root) = 0;
  // data = the sum over ranks of data, identical on every rank.
  virtual Status AllReduceSum(float* data, int64_t n) = 0;
  // recv[r * n, (r + 1) * n) = rank r's send[0, n), on every rank (recv holds size() * n).
  virtual Status AllGather(const float* send, float* recv, int64_t n) = 0;
  // recv[0, n) on rank r = the sum over ranks of their send[r * n, (r + 1) * n) (send holds size() * n).
  virtual Status ReduceScatterSum(const float* send, float* recv, int64_t n) = 0;
  // Point to point, the one exception to "every rank calls it": a Send to rank `to` pairs with a Recv from
  // this rank there, in the same order; both block until the data is out of (into) the buffer. The local
  // backend queues a send to itself for its next receive.
  virtual Status Send(const float* data, int64_t n, int64_t to) = 0;
  virtual Status Recv(float* data, int64_t n, int64_t from) = 0;

  // The ranks with the same `color` form a new communicator, ordered by `key` (then by rank).
  virtual Result<std::unique_ptr<TensorCommunicator>> Split(int64_t color, int64_t key) = 0;

  // ---- started now, finished by Wait: a transfer beside the caller's work (the next block's operands
  // arriving while this block's GEMMs run). Collective and ordered like the blocking calls: every rank
  // starts the same calls in the same order. Until Wait returns the buffers belong to the transfer (not
  // read, not written, not freed). On a GPU, Wait orders the device's later work (the default stream)
  // after the transfer and returns without waiting on the host. A Pending dropped unwaited is waited for.
  // The default runs the blocking call at the start. Sums are as deterministic as ReduceSum's, though not
  // necessarily summed in its order: a caller that needs the same bits uses one of the two forms throughout.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual Status Wait() = 0;
  };
  virtual Result<std::unique_ptr<Pending>> StartBroadcastData(float* data, int64_t n, int64_t root);
  virtual Result<std::unique_ptr<Pending>> StartReduceSum(const float* send, float* recv, int64_t n, int64_t root);
  // AllReduceSum started: the same bits on every rank. MPI runs its reduce now and its broadcast at Wait.
  virtual Result<std::unique_ptr<Pending>> StartAllReduceSum(float* data, int64_t n);
};

// Collective: every rank learns whether every rank is ok. The first failure in rank order comes back on
// every rank, as "rank R: message" (a rank's own failure comes back as it is).
Status AllOk(Communicator* comm, const Status& local);

// Collective: where this rank sits among the ranks on its machine (same host name), counted in rank order.
// A GPU job gives each rank the GPU numbered by `local_rank`.
struct HostPlace {
  std::string host;
  int64_t local_rank = 0, local_ranks = 1;
};
Result<HostPlace> PlaceOnHost(Communicator* comm);

std::unique_ptr<TensorCommunicator> NewLocalCommunicator();
// MPI_COMM_WORLD; requires MPI to be initialised by the caller. kUnimplemented when built without MPI.
Result<std::unique_ptr<TensorCommunicator>> NewMpiCommunicator();

// NCCL over the GPUs of `control`'s ranks (one GPU per rank, made current on the calling thread before this
// is called): data calls on device buffers go through NCCL, ordered on the device like the CUDA backend's
// kernels: after the default stream's work queued before the call, before its work queued after (the host
// does not wait; a Download waits as for any kernel); data calls on host buffers (a trainer's scalar sums)
// and the control calls go through `control`, which Split splits alongside. Communicators split from one
// share a stream (their transfers run in the order started); each NewNcclCommunicator has a stream of its own. Collective over `control` (its rank 0 makes the NCCL id). NCCL does not buffer a Send:
// it returns once the peer's Recv has the data. kUnimplemented in a build without NCCL;
// kFailedPrecondition, on every rank, when a rank sees no GPU.
Result<std::unique_ptr<TensorCommunicator>> NewNcclCommunicator(std::unique_ptr<TensorCommunicator> control);

// For callers that cannot call MPI_Init themselves (the Python module): initialises MPI unless something in
// the process already did (mpi4py, the application); true when this call did, and the caller then calls
// FinalizeMpi() at exit. kUnimplemented when built without MPI.
Result<bool> InitializeMpi();
void FinalizeMpi();

}  // namespace jigsaw
