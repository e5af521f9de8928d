// TensorCommunicator over NCCL (GPU buffers), for the CUDA backend's multi-GPU jobs. MPI (the control
// communicator) starts the job: its rank 0 makes the NCCL id and broadcasts it, every rank joins with its
// own GPU (current on the calling thread, picked by local rank before this is made). Host buffers (the
// trainer's scalar sums, validation's per-channel errors) go through the control communicator, as do the
// control calls.
//
// Streams: every communicator split from the same first one (a mesh's row, column and group communicators)
// shares one non-blocking stream, so their transfers run one after another in the order they were started,
// which is the same on every rank (NCCL's advice for several communicators on one GPU). A transfer waits for
// the work the default stream (the CUDA backend's) had queued when it started, through an event; the
// default stream's later kernels run beside it until one needs its result: a blocking call makes the
// default stream wait for it at once, a started one (Start*) at Wait. Neither waits on the host, which
// keeps queueing kernels (a Download waits, as for any kernel). A second family (the data-parallel
// communicator, SplitMeshOn) has a stream of its own, so that gradient sums travel beside the mesh's
// transfers; NCCL kernels of two families then run concurrently, as a data-parallel sum beside a
// tensor-parallel exchange does in PyTorch's DDP, each using a few of the GPU's SMs.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace jigsaw {
namespace {

Status CudaError(cudaError_t e, const char* what) {
  return InternalError(std::string(what) + ": " + cudaGetErrorString(e));
}
Status NcclError(ncclResult_t r, const char* what) {
  return InternalError(std::string(what) + ": NCCL: " + ncclGetErrorString(r));
}
#define NCCL_RETURN(x)                                            \
  do {                                                            \
    ncclResult_t r_ = (x);                                        \
    if (r_ != ncclSuccess) return NcclError(r_, #x);              \
  } while (0)
#define CUDA_RETURN(x)                                            \
  do {                                                            \
    cudaError_t e_ = (x);                                         \
    if (e_ != cudaSuccess) return CudaError(e_, #x);              \
  } while (0)

// Whether p is host memory (pageable or pinned) rather than a device's.
bool OnHost(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return true;
  }
  return a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged;
}

// The stream the communicators of one family share (see the top).
struct SharedStream {
  cudaStream_t stream = nullptr;
  ~SharedStream() {
    if (stream) cudaStreamDestroy(stream);
  }
};

// A transfer on the shared stream; Wait makes the default stream wait for it.
class StreamPending final : public TensorCommunicator::Pending {
 public:
  explicit StreamPending(cudaEvent_t done) : done_(done) {}
  ~StreamPending() override { (void)Wait(); }
  Status Wait() override {
    if (!done_) return OkStatus();
    const cudaError_t e = cudaStreamWaitEvent(cudaStreamLegacy, done_, 0);
    cudaEventDestroy(done_);
    done_ = nullptr;
    CUDA_RETURN(e);
    return OkStatus();
  }

 private:
  cudaEvent_t done_;
};

class NcclCommunicator final : public TensorCommunicator {
 public:
  // `stream`: the family's stream (null for the first communicator of a family, which makes it).
  static Result<std::unique_ptr<TensorCommunicator>> Make(std::unique_ptr<TensorCommunicator> control,
                                                           std::shared_ptr<SharedStream> stream) {
    ncclUniqueId id;
    std::string id_bytes;
    Status made = OkStatus();
    if (control->rank() == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) made = NcclError(r, "ncclGetUniqueId");
      id_bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
    }
    RETURN_IF_ERROR(AllOk(control.get(), made));
    RETURN_IF_ERROR(control->Broadcast(&id_bytes));
    if (id_bytes.size() != sizeof(id)) return InternalError("the NCCL id arrived with the wrong size");
    std::memcpy(&id, id_bytes.data(), sizeof(id));
    std::unique_ptr<NcclCommunicator> c(new NcclCommunicator(std::move(control), std::move(stream)));
    Status joined = OkStatus();
    if (!c->shared_) {
      c->shared_ = std::make_shared<SharedStream>();
      const cudaError_t e = cudaStreamCreateWithFlags(&c->shared_->stream, cudaStreamNonBlocking);
      if (e != cudaSuccess) joined = CudaError(e, "cudaStreamCreateWithFlags");
    }
    c->stream_ = c->shared_->stream;
    if (joined.ok()) {
      const ncclResult_t r = ncclCommInitRank(&c->comm_, static_cast<int>(c->control_->size()), id,
                                              static_cast<int>(c->control_->rank()));
      if (r != ncclSuccess) joined = NcclError(r, "ncclCommInitRank");
    }
    RETURN_IF_ERROR(AllOk(c->control_.get(), joined));
    return std::unique_ptr<TensorCommunicator>(std::move(c));
  }
  ~NcclCommunicator() override {
    for (auto& [p, n] : to_self_) cudaFree(p);
    if (comm_) ncclCommDestroy(comm_);
  }

  int64_t rank() const override { return control_->rank(); }
  int64_t size() const override { return control_->size(); }
  Result<std::vector<std::string>> Gather(const std::string& payload) override { return control_->Gather(payload); }
  Status Broadcast(std::string* value) override { return control_->Broadcast(value); }
  Status Barrier() override { return control_->Barrier(); }

  Status BroadcastData(float* data, int64_t n, int64_t root) override {
    if (OnHost(data)) return control_->BroadcastData(data, n, root);
    return Blocking([&] { return ncclBroadcast(data, data, Count(n), ncclFloat, static_cast<int>(root), comm_, stream_); });
  }
  Status ReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    if (OnHost(send)) return control_->ReduceSum(send, recv, n, root);
    return Blocking([&] { return Reduce(send, recv, n, root); });
  }
  Status AllReduceSum(float* data, int64_t n) override {
    if (OnHost(data)) return control_->AllReduceSum(data, n);
    return Blocking([&] { return ncclAllReduce(data, data, Count(n), ncclFloat, ncclSum, comm_, stream_); });
  }
  Status AllGather(const float* send, float* recv, int64_t n) override {
    if (OnHost(send)) return control_->AllGather(send, recv, n);
    return Blocking([&] { return ncclAllGather(send, recv, Count(n), ncclFloat, comm_, stream_); });
  }
  Status ReduceScatterSum(const float* send, float* recv, int64_t n) override {
    if (OnHost(send)) return control_->ReduceScatterSum(send, recv, n);
    return Blocking([&] { return ncclReduceScatter(send, recv, Count(n), ncclFloat, ncclSum, comm_, stream_); });
  }
  // NCCL does not buffer: a Send returns once the peer's Recv has taken the data (MPI may return sooner),
  // so two ranks must not both Send to each other first. A send to this rank itself is kept on the device
  // for its next Recv, as the local communicator does.
  Status Send(const float* data, int64_t n, int64_t to) override {
    if (OnHost(data)) return control_->Send(data, n, to);
    if (to == rank()) {
      void* copy = nullptr;
      CUDA_RETURN(cudaMalloc(&copy, std::max<int64_t>(n, 1) * sizeof(float)));
      CUDA_RETURN(cudaMemcpy(copy, data, n * sizeof(float), cudaMemcpyDeviceToDevice));
      to_self_.emplace_back(copy, n);
      return OkStatus();
    }
    return Blocking([&] { return ncclSend(data, Count(n), ncclFloat, static_cast<int>(to), comm_, stream_); });
  }
  Status Recv(float* data, int64_t n, int64_t from) override {
    if (OnHost(data)) return control_->Recv(data, n, from);
    if (from == rank()) {
      if (to_self_.empty() || to_self_.front().second != n) {
        return FailedPreconditionError("Recv from this rank itself without a matching Send of " + std::to_string(n) +
                                       " elements");
      }
      auto [copy, count] = to_self_.front();
      to_self_.pop_front();
      const cudaError_t e = cudaMemcpy(data, copy, count * sizeof(float), cudaMemcpyDeviceToDevice);
      cudaFree(copy);
      CUDA_RETURN(e);
      return OkStatus();
    }
    return Blocking([&] { return ncclRecv(data, Count(n), ncclFloat, static_cast<int>(from), comm_, stream_); });
  }

  Result<std::unique_ptr<Pending>> StartBroadcastData(float* data, int64_t n, int64_t root) override {
    if (OnHost(data)) return control_->StartBroadcastData(data, n, root);
    ASSIGN_OR_RETURN(cudaEvent_t done, Launch([&] {
                       return ncclBroadcast(data, data, Count(n), ncclFloat, static_cast<int>(root), comm_, stream_);
                     }));
    return std::unique_ptr<Pending>(new StreamPending(done));
  }
  Result<std::unique_ptr<Pending>> StartReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    if (OnHost(send)) return control_->StartReduceSum(send, recv, n, root);
    ASSIGN_OR_RETURN(cudaEvent_t done, Launch([&] { return Reduce(send, recv, n, root); }));
    return std::unique_ptr<Pending>(new StreamPending(done));
  }
  Result<std::unique_ptr<Pending>> StartAllReduceSum(float* data, int64_t n) override {
    if (OnHost(data)) return control_->StartAllReduceSum(data, n);
    ASSIGN_OR_RETURN(cudaEvent_t done, Launch([&] {
                       return ncclAllReduce(data, data, Count(n), ncclFloat, ncclSum, comm_, stream_);
                     }));
    return std::unique_ptr<Pending>(new StreamPending(done));
  }

  Result<std::unique_ptr<TensorCommunicator>> Split(int64_t color, int64_t key) override {
    ASSIGN_OR_RETURN(auto control, control_->Split(color, key));
    return Make(std::move(control), shared_);
  }

 private:
  NcclCommunicator(std::unique_ptr<TensorCommunicator> control, std::shared_ptr<SharedStream> shared)
      : control_(std::move(control)), shared_(std::move(shared)) {}
  static size_t Count(int64_t n) { return static_cast<size_t>(n); }
  ncclResult_t Reduce(const float* send, float* recv, int64_t n, int64_t root) {
    // NCCL writes recv on the root only; elsewhere it may be null, so pass send there.
    float* out = rank() == root ? recv : const_cast<float*>(send);
    return ncclReduce(send, out, Count(n), ncclFloat, ncclSum, static_cast<int>(root), comm_, stream_);
  }
  // Queues `nccl` on the shared stream after the default stream's work so far; returns an event recorded
  // after it.
  template <typename F>
  Result<cudaEvent_t> Launch(const F& nccl) {
    cudaEvent_t ready = nullptr, done = nullptr;
    CUDA_RETURN(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    cudaError_t e = cudaEventRecord(ready, cudaStreamLegacy);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(stream_, ready, 0);
    cudaEventDestroy(ready);  // released once recorded work passes it
    CUDA_RETURN(e);
    NCCL_RETURN(nccl());
    CUDA_RETURN(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    e = cudaEventRecord(done, stream_);
    if (e != cudaSuccess) {
      cudaEventDestroy(done);
      return CudaError(e, "cudaEventRecord");
    }
    return done;
  }
  // A blocking call: queued as Launch does, the default stream's later work after it.
  template <typename F>
  Status Blocking(const F& nccl) {
    ASSIGN_OR_RETURN(cudaEvent_t done, Launch(nccl));
    return StreamPending(done).Wait();
  }

  std::unique_ptr<TensorCommunicator> control_;
  std::shared_ptr<SharedStream> shared_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::deque<std::pair<void*, int64_t>> to_self_;
};

}  // namespace

Result<std::unique_ptr<TensorCommunicator>> NewNcclCommunicator(std::unique_ptr<TensorCommunicator> control) {
  int devices = 0;
  Status gpu = OkStatus();
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    gpu = FailedPreconditionError("NCCL needs a GPU and this process sees none");
  }
  RETURN_IF_ERROR(AllOk(control.get(), gpu));
  return NcclCommunicator::Make(std::move(control), nullptr);
}

}  // namespace jigsaw
