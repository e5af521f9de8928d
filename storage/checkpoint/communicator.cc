#include "storage/checkpoint/communicator.h"

#ifdef JIGSAW_HAVE_MPI
#include <dlfcn.h>
#include <mpi.h>
#endif

namespace jigsaw {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 1; }
  Result<std::vector<std::string>> Gather(const std::string& payload) override { return std::vector<std::string>{payload}; }
  Status Broadcast(std::string*) override { return OkStatus(); }
  Status Barrier() override { return OkStatus(); }
};

#ifdef JIGSAW_HAVE_MPI
Status MpiStatus(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return OkStatus();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return IoError(std::string(what) + ": " + std::string(msg, len));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int r, s;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    rank_ = r;
    size_ = s;
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  Result<std::vector<std::string>> Gather(const std::string& payload) override {
    int n = static_cast<int>(payload.size());
    std::vector<int> sizes(size_), displs(size_);
    RETURN_IF_ERROR(MpiStatus(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather"));
    std::string all;
    if (rank_ == 0) {
      int total = 0;
      for (int64_t i = 0; i < size_; ++i) {
        displs[i] = total;
        total += sizes[i];
      }
      all.resize(total);
    }
    RETURN_IF_ERROR(MpiStatus(MPI_Gatherv(payload.data(), n, MPI_CHAR, all.data(), sizes.data(), displs.data(), MPI_CHAR, 0,
                                          MPI_COMM_WORLD),
                              "MPI_Gatherv"));
    std::vector<std::string> out;
    if (rank_ == 0)
      for (int64_t i = 0; i < size_; ++i) out.push_back(all.substr(displs[i], sizes[i]));
    return out;
  }
  Status Broadcast(std::string* value) override {
    int n = static_cast<int>(value->size());
    RETURN_IF_ERROR(MpiStatus(MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast"));
    value->resize(n);
    return MpiStatus(MPI_Bcast(value->data(), n, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
  Status Barrier() override { return MpiStatus(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 private:
  int64_t rank_ = 0, size_ = 1;
};
#endif

}  // namespace

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

std::unique_ptr<Communicator> NewLocalCommunicator() { return std::make_unique<LocalCommunicator>(); }

Result<std::unique_ptr<Communicator>> NewMpiCommunicator() {
#ifdef JIGSAW_HAVE_MPI
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return FailedPreconditionError("MPI is not initialised (call MPI_Init first)");
  return std::unique_ptr<Communicator>(new MpiCommunicator());
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
