// The job a tool runs in: under mpirun (Open MPI's or a PMI launcher's environment) one MPI process per
// rank, MPI initialised here and finalised on destruction; otherwise one process alone.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace jigsaw::cli {

class MpiWorld {
 public:
  MpiWorld() {
    const bool under_mpi = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
    if (!under_mpi) {
      world_ = NewLocalCommunicator();
      return;
    }
    auto init = InitializeMpi();
    if (!init.ok()) {
      status_ = init.status();
      return;
    }
    finalize_ = *init;
    auto comm = NewMpiCommunicator();
    if (!comm.ok()) {
      status_ = comm.status();
      return;
    }
    world_ = std::move(*comm);
  }
  ~MpiWorld() {
    world_.reset();
    if (finalize_) FinalizeMpi();
  }
  const Status& status() const { return status_; }
  TensorCommunicator* get() const { return world_.get(); }
  TensorCommunicator* operator->() const { return world_.get(); }
  // "rank R: " before a failure's message in a job of several ranks.
  Status Annotate(const Status& s) const {
    return world_ && world_->size() > 1 ? s.Annotate("rank " + std::to_string(world_->rank())) : s;
  }

 private:
  std::unique_ptr<TensorCommunicator> world_;
  bool finalize_ = false;
  Status status_;
};

}  // namespace jigsaw::cli
