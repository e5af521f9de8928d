// TensorCommunicator over NCCL (GPU buffers), for the CUDA backend's multi-GPU jobs. MPI (the control
// communicator) starts the job: its rank 0 makes the NCCL id and broadcasts it, every rank joins with its
// own GPU (current on the calling thread, picked by local rank before this is made). Data calls on device
// buffers run on this communicator's stream and are waited for before they return, as the interface
// promises; a stream made with cudaStreamCreate waits for the legacy default stream's earlier work (the
// CUDA backend's kernels) and that stream's later work waits for it. Host buffers (the trainer's scalar
// sums, validation's per-channel errors) go through the control communicator, as do the control calls.
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

class NcclCommunicator final : public TensorCommunicator {
 public:
  static Result<std::unique_ptr<TensorCommunicator>> Make(std::unique_ptr<TensorCommunicator> control) {
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
    std::unique_ptr<NcclCommunicator> c(new NcclCommunicator(std::move(control)));
    Status joined = OkStatus();
    cudaError_t e = cudaStreamCreate(&c->stream_);
    if (e != cudaSuccess) joined = CudaError(e, "cudaStreamCreate");
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
    if (stream_) cudaStreamDestroy(stream_);
  }

  int64_t rank() const override { return control_->rank(); }
  int64_t size() const override { return control_->size(); }
  Result<std::vector<std::string>> Gather(const std::string& payload) override { return control_->Gather(payload); }
  Status Broadcast(std::string* value) override { return control_->Broadcast(value); }
  Status Barrier() override { return control_->Barrier(); }

  Status BroadcastData(float* data, int64_t n, int64_t root) override {
    if (OnHost(data)) return control_->BroadcastData(data, n, root);
    NCCL_RETURN(ncclBroadcast(data, data, Count(n), ncclFloat, static_cast<int>(root), comm_, stream_));
    return Wait();
  }
  Status ReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    if (OnHost(send)) return control_->ReduceSum(send, recv, n, root);
    // NCCL writes recv on the root only; elsewhere it may be null, so pass send there.
    float* out = rank() == root ? recv : const_cast<float*>(send);
    NCCL_RETURN(ncclReduce(send, out, Count(n), ncclFloat, ncclSum, static_cast<int>(root), comm_, stream_));
    return Wait();
  }
  Status AllReduceSum(float* data, int64_t n) override {
    if (OnHost(data)) return control_->AllReduceSum(data, n);
    NCCL_RETURN(ncclAllReduce(data, data, Count(n), ncclFloat, ncclSum, comm_, stream_));
    return Wait();
  }
  Status AllGather(const float* send, float* recv, int64_t n) override {
    if (OnHost(send)) return control_->AllGather(send, recv, n);
    NCCL_RETURN(ncclAllGather(send, recv, Count(n), ncclFloat, comm_, stream_));
    return Wait();
  }
  Status ReduceScatterSum(const float* send, float* recv, int64_t n) override {
    if (OnHost(send)) return control_->ReduceScatterSum(send, recv, n);
    NCCL_RETURN(ncclReduceScatter(send, recv, Count(n), ncclFloat, ncclSum, comm_, stream_));
    return Wait();
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
    NCCL_RETURN(ncclSend(data, Count(n), ncclFloat, static_cast<int>(to), comm_, stream_));
    return Wait();
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
    NCCL_RETURN(ncclRecv(data, Count(n), ncclFloat, static_cast<int>(from), comm_, stream_));
    return Wait();
  }

  Result<std::unique_ptr<TensorCommunicator>> Split(int64_t color, int64_t key) override {
    ASSIGN_OR_RETURN(auto control, control_->Split(color, key));
    return Make(std::move(control));
  }

 private:
  explicit NcclCommunicator(std::unique_ptr<TensorCommunicator> control) : control_(std::move(control)) {}
  static size_t Count(int64_t n) { return static_cast<size_t>(n); }
  Status Wait() {
    CUDA_RETURN(cudaStreamSynchronize(stream_));
    return OkStatus();
  }

  std::unique_ptr<TensorCommunicator> control_;
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
  return NcclCommunicator::Make(std::move(control));
}

}  // namespace jigsaw
