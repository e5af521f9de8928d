#include "parallel/communicator.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <sstream>
#include <vector>

#ifdef JIGSAW_HAVE_MPI
#include <dlfcn.h>
#include <mpi.h>
#endif

namespace jigsaw {
namespace {

// A transfer already finished when it was started.
class Done final : public TensorCommunicator::Pending {
 public:
  Status Wait() override { return OkStatus(); }
};

// A started transfer, then a blocking call that needs its result, at Wait (or when dropped).
class Then final : public TensorCommunicator::Pending {
 public:
  Then(std::unique_ptr<TensorCommunicator::Pending> first, std::function<Status()> then)
      : first_(std::move(first)), then_(std::move(then)) {}
  ~Then() override { (void)Wait(); }
  Status Wait() override {
    if (!then_) return OkStatus();
    auto then = std::move(then_);
    then_ = nullptr;
    RETURN_IF_ERROR(first_->Wait());
    return then();
  }

 private:
  std::unique_ptr<TensorCommunicator::Pending> first_;
  std::function<Status()> then_;
};

class LocalCommunicator final : public TensorCommunicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 1; }
  Result<std::vector<std::string>> Gather(const std::string& payload) override {
    return std::vector<std::string>{payload};
  }
  Status Broadcast(std::string*) override { return OkStatus(); }
  Status Barrier() override { return OkStatus(); }
  Status BroadcastData(float*, int64_t, int64_t root) override { return CheckRoot(root); }
  Status ReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    RETURN_IF_ERROR(CheckRoot(root));
    if (send != recv && n > 0) std::memcpy(recv, send, n * sizeof(float));
    return OkStatus();
  }
  Status AllReduceSum(float*, int64_t) override { return OkStatus(); }
  Status AllGather(const float* send, float* recv, int64_t n) override {
    if (send != recv && n > 0) std::memmove(recv, send, n * sizeof(float));
    return OkStatus();
  }
  Status ReduceScatterSum(const float* send, float* recv, int64_t n) override { return AllGather(send, recv, n); }
  Status Send(const float* data, int64_t n, int64_t to) override {
    RETURN_IF_ERROR(CheckRoot(to));
    queue_.emplace_back(data, data + n);
    return OkStatus();
  }
  Status Recv(float* data, int64_t n, int64_t from) override {
    RETURN_IF_ERROR(CheckRoot(from));
    if (queue_.empty()) return FailedPreconditionError("Recv on a 1-rank communicator with nothing sent to it");
    if (static_cast<int64_t>(queue_.front().size()) != n) {
      return InvalidArgumentError("Recv of " + std::to_string(n) + " elements; " +
                                  std::to_string(queue_.front().size()) + " were sent");
    }
    std::copy(queue_.front().begin(), queue_.front().end(), data);
    queue_.pop_front();
    return OkStatus();
  }
  Result<std::unique_ptr<TensorCommunicator>> Split(int64_t, int64_t) override {
    return std::unique_ptr<TensorCommunicator>(new LocalCommunicator());
  }

 private:
  static Status CheckRoot(int64_t root) {
    if (root != 0) return InvalidArgumentError("rank " + std::to_string(root) + " outside a communicator of 1 rank");
    return OkStatus();
  }
  std::deque<std::vector<float>> queue_;  // sent to itself, not yet received
};

#ifdef JIGSAW_HAVE_MPI
Status MpiStatus(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return OkStatus();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return IoError(std::string(what) + ": " + std::string(msg, len));
}

// Nonblocking MPI calls in flight; a request that failed to start is never added.
class Requests final : public TensorCommunicator::Pending {
 public:
  ~Requests() override { (void)Wait(); }
  Status Wait() override {
    if (requests.empty()) return OkStatus();
    const int rc = MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
    requests.clear();
    return MpiStatus(rc, "MPI_Waitall");
  }
  std::vector<MPI_Request> requests;
};

// MPI counts are int: larger payloads go in pieces of this many elements.
constexpr int64_t kMaxPiece = int64_t{1} << 30;

class MpiCommunicator final : public TensorCommunicator {
 public:
  // Takes ownership of `comm` unless it is MPI_COMM_WORLD.
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    int r, s;
    MPI_Comm_rank(comm_, &r);
    MPI_Comm_size(comm_, &s);
    rank_ = r;
    size_ = s;
  }
  ~MpiCommunicator() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (comm_ != MPI_COMM_WORLD && !finalised) MPI_Comm_free(&comm_);
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }

  Result<std::vector<std::string>> Gather(const std::string& payload) override {
    if (payload.size() > static_cast<size_t>(kMaxPiece)) return InvalidArgumentError("control message above 1 GiB");
    int n = static_cast<int>(payload.size());
    std::vector<int> sizes(size_), displs(size_);
    RETURN_IF_ERROR(MpiStatus(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm_), "MPI_Gather"));
    std::string all;
    if (rank_ == 0) {
      int64_t total = 0;
      for (int64_t i = 0; i < size_; ++i) {
        displs[i] = static_cast<int>(total);
        total += sizes[i];
      }
      if (total > kMaxPiece) return InvalidArgumentError("gathered control messages above 1 GiB");
      all.resize(total);
    }
    RETURN_IF_ERROR(
        MpiStatus(MPI_Gatherv(payload.data(), n, MPI_CHAR, all.data(), sizes.data(), displs.data(), MPI_CHAR, 0, comm_),
                  "MPI_Gatherv"));
    std::vector<std::string> out;
    if (rank_ == 0)
      for (int64_t i = 0; i < size_; ++i) out.push_back(all.substr(displs[i], sizes[i]));
    return out;
  }
  Status Broadcast(std::string* value) override {
    int64_t n = static_cast<int64_t>(value->size());
    RETURN_IF_ERROR(MpiStatus(MPI_Bcast(&n, 1, MPI_INT64_T, 0, comm_), "MPI_Bcast"));
    value->resize(n);
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      RETURN_IF_ERROR(MpiStatus(MPI_Bcast(value->data() + at, piece, MPI_CHAR, 0, comm_), "MPI_Bcast"));
    }
    return OkStatus();
  }
  Status Barrier() override { return MpiStatus(MPI_Barrier(comm_), "MPI_Barrier"); }

  Status BroadcastData(float* data, int64_t n, int64_t root) override {
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      RETURN_IF_ERROR(MpiStatus(MPI_Bcast(data + at, piece, MPI_FLOAT, static_cast<int>(root), comm_), "MPI_Bcast"));
    }
    return OkStatus();
  }
  Status ReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      const void* s = (send == recv && rank_ == root) ? MPI_IN_PLACE : static_cast<const void*>(send + at);
      RETURN_IF_ERROR(
          MpiStatus(MPI_Reduce(s, recv + at, piece, MPI_FLOAT, MPI_SUM, static_cast<int>(root), comm_), "MPI_Reduce"));
    }
    return OkStatus();
  }
  Status AllReduceSum(float* data, int64_t n) override {
    // Reduce then broadcast: every rank ends with rank 0's bits (MPI_Allreduce does not promise that).
    RETURN_IF_ERROR(ReduceSum(data, data, n, 0));
    return BroadcastData(data, n, 0);
  }
  Status AllGather(const float* send, float* recv, int64_t n) override {
    if (n > kMaxPiece) return InvalidArgumentError("AllGather of more than 2^30 elements per rank");
    const void* s = send == recv + rank_ * n ? MPI_IN_PLACE : static_cast<const void*>(send);
    return MpiStatus(MPI_Allgather(s, static_cast<int>(n), MPI_FLOAT, recv, static_cast<int>(n), MPI_FLOAT, comm_),
                     "MPI_Allgather");
  }
  Status ReduceScatterSum(const float* send, float* recv, int64_t n) override {
    if (n > kMaxPiece) return InvalidArgumentError("ReduceScatterSum of more than 2^30 elements per rank");
    return MpiStatus(MPI_Reduce_scatter_block(send, recv, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_),
                     "MPI_Reduce_scatter_block");
  }
  Status Send(const float* data, int64_t n, int64_t to) override {
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      RETURN_IF_ERROR(MpiStatus(MPI_Send(data + at, piece, MPI_FLOAT, static_cast<int>(to), 0, comm_), "MPI_Send"));
    }
    return OkStatus();
  }
  Status Recv(float* data, int64_t n, int64_t from) override {
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      RETURN_IF_ERROR(MpiStatus(
          MPI_Recv(data + at, piece, MPI_FLOAT, static_cast<int>(from), 0, comm_, MPI_STATUS_IGNORE), "MPI_Recv"));
    }
    return OkStatus();
  }
  // MPI_Ibcast / MPI_Ireduce, in pieces as above; the requests finish in MPI_Waitall.
  Result<std::unique_ptr<Pending>> StartBroadcastData(float* data, int64_t n, int64_t root) override {
    auto pending = std::make_unique<Requests>();
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      MPI_Request r;
      RETURN_IF_ERROR(
          MpiStatus(MPI_Ibcast(data + at, piece, MPI_FLOAT, static_cast<int>(root), comm_, &r), "MPI_Ibcast"));
      pending->requests.push_back(r);
    }
    return std::unique_ptr<Pending>(std::move(pending));
  }
  Result<std::unique_ptr<Pending>> StartReduceSum(const float* send, float* recv, int64_t n, int64_t root) override {
    auto pending = std::make_unique<Requests>();
    for (int64_t at = 0; at < n; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, n - at));
      const void* s = (send == recv && rank_ == root) ? MPI_IN_PLACE : static_cast<const void*>(send + at);
      MPI_Request r;
      RETURN_IF_ERROR(MpiStatus(MPI_Ireduce(s, recv + at, piece, MPI_FLOAT, MPI_SUM, static_cast<int>(root), comm_, &r),
                                "MPI_Ireduce"));
      pending->requests.push_back(r);
    }
    return std::unique_ptr<Pending>(std::move(pending));
  }

  // The reduce now; the broadcast, which needs the sum, at Wait.
  Result<std::unique_ptr<Pending>> StartAllReduceSum(float* data, int64_t n) override {
    ASSIGN_OR_RETURN(auto reduce, StartReduceSum(data, data, n, 0));
    return std::unique_ptr<Pending>(new Then(std::move(reduce), [this, data, n] { return BroadcastData(data, n, 0); }));
  }

  Result<std::unique_ptr<TensorCommunicator>> Split(int64_t color, int64_t key) override {
    MPI_Comm sub;
    RETURN_IF_ERROR(
        MpiStatus(MPI_Comm_split(comm_, static_cast<int>(color), static_cast<int>(key), &sub), "MPI_Comm_split"));
    return std::unique_ptr<TensorCommunicator>(new MpiCommunicator(sub));
  }

 private:
  MPI_Comm comm_;
  int64_t rank_ = 0, size_ = 1;
};
#endif

}  // namespace

Result<std::unique_ptr<TensorCommunicator::Pending>> TensorCommunicator::StartBroadcastData(float* data, int64_t n,
                                                                                             int64_t root) {
  RETURN_IF_ERROR(BroadcastData(data, n, root));
  return std::unique_ptr<Pending>(new Done());
}
Result<std::unique_ptr<TensorCommunicator::Pending>> TensorCommunicator::StartAllReduceSum(float* data, int64_t n) {
  RETURN_IF_ERROR(AllReduceSum(data, n));
  return std::unique_ptr<Pending>(new Done());
}
Result<std::unique_ptr<TensorCommunicator::Pending>> TensorCommunicator::StartReduceSum(const float* send, float* recv,
                                                                                         int64_t n, int64_t root) {
  RETURN_IF_ERROR(ReduceSum(send, recv, n, root));
  return std::unique_ptr<Pending>(new Done());
}

#ifndef JIGSAW_HAVE_NCCL
Result<std::unique_ptr<TensorCommunicator>> NewNcclCommunicator(std::unique_ptr<TensorCommunicator>) {
  return UnimplementedError("this build of jigsaw has no NCCL communicator (built without CUDA and NCCL)");
}
#endif

Result<HostPlace> PlaceOnHost(Communicator* comm) {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) std::snprintf(name, sizeof(name), "localhost");
  HostPlace place;
  place.host = name;
  ASSIGN_OR_RETURN(auto hosts, comm->Gather(place.host));
  // Rank 0 tells every rank its place as "local_rank local_ranks", one line per rank.
  std::string table;
  for (size_t r = 0; r < hosts.size(); ++r) {
    int64_t before = 0, same = 0;
    for (size_t q = 0; q < hosts.size(); ++q) {
      if (hosts[q] != hosts[r]) continue;
      ++same;
      if (q < r) ++before;
    }
    table += std::to_string(before) + " " + std::to_string(same) + "\n";
  }
  RETURN_IF_ERROR(comm->Broadcast(&table));
  std::istringstream lines(table);
  for (int64_t r = 0; r <= comm->rank(); ++r) {
    if (!(lines >> place.local_rank >> place.local_ranks)) return InternalError("PlaceOnHost: short table");
  }
  return place;
}

Status AllOk(Communicator* comm, const Status& local) {
  ASSIGN_OR_RETURN(auto messages, comm->Gather(local.ok() ? "" : local.message()));
  std::string verdict;
  for (size_t r = 0; r < messages.size() && verdict.empty(); ++r) {
    if (!messages[r].empty()) verdict = "rank " + std::to_string(r) + ": " + messages[r];
  }
  RETURN_IF_ERROR(comm->Broadcast(&verdict));
  if (!local.ok()) return local;
  if (verdict.empty()) return OkStatus();
  return Status(StatusCode::kFailedPrecondition, verdict);
}

std::unique_ptr<TensorCommunicator> NewLocalCommunicator() { return std::make_unique<LocalCommunicator>(); }

Result<std::unique_ptr<TensorCommunicator>> NewMpiCommunicator() {
#ifdef JIGSAW_HAVE_MPI
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return FailedPreconditionError("MPI is not initialised (call MPI_Init first)");
  return std::unique_ptr<TensorCommunicator>(new MpiCommunicator(MPI_COMM_WORLD));
#else
  return UnimplementedError("jigsaw was built without MPI");
#endif
}

Result<bool> InitializeMpi() {
#ifdef JIGSAW_HAVE_MPI
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (finalised) return FailedPreconditionError("MPI was already finalised in this process");
  if (initialised) return false;
  // Loaded from a Python extension, libmpi's symbols are local to it, and Open MPI's plugins (which it
  // loads with dlopen) could not resolve them: make them global first, as mpi4py does.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname) {
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
  int provided = 0;
  RETURN_IF_ERROR(MpiStatus(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
  return true;
#else
  return UnimplementedError("jigsaw was built without MPI");
#endif
}

void FinalizeMpi() {
#ifdef JIGSAW_HAVE_MPI
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
#endif
}

}  // namespace jigsaw
