// The job a tool runs in: under mpirun (Open MPI's or a PMI launcher's environment) one MPI process per
// rank, MPI initialised here and finalised on destruction; otherwise one process alone.
#pragma once

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cli/common_flags.h"
#include "parallel/communicator.h"
#include "parallel/failure_report.h"

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
    failures_ = OpenFailureReport();
  }
  ~MpiWorld() {
    world_.reset();
    if (finalize_) FinalizeMpi();
  }
  const Status& status() const { return status_; }
  TensorCommunicator* get() const { return world_.get(); }
  TensorCommunicator* operator->() const { return world_.get(); }
  // Says a failure once for the job and returns the exit code (cli::Fail's). Alone, as cli::Fail. Under MPI,
  // when every rank fails within a few seconds of the others, rank 0 prints one line when they agree and a
  // line per message ("ranks 1, 3: ...") when not; a rank that fails alone (the others still working) prints
  // its own as "rank R: ..." and ends the process without finalising MPI, so that mpirun ends the job
  // instead of leaving the others waiting for it.
  int Fail(const char* tool, const Status& s, double wait_s = 3) const {
    if (!world_ || world_->size() == 1 || !failures_) {
      return cli::Fail(tool, world_ && world_->size() > 1 ? s.Annotate("rank " + std::to_string(world_->rank())) : s);
    }
    const int code = cli::Fail(tool, s, /*print=*/false);
    auto all = failures_->Gather(s.message(), wait_s);
    if (!all) {
      std::cout.flush();
      std::cerr << tool << ": rank " << world_->rank() << ": " << s.message() << "\n" << std::flush;
      std::_Exit(code);
    }
    if (world_->rank() == 0)
      for (const auto& line : FailureLines(*all)) std::cerr << tool << ": " << line << "\n";
    return code;
  }

 private:
  std::unique_ptr<TensorCommunicator> world_;
  std::unique_ptr<FailureReport> failures_;  // null alone (or without MPI)
  bool finalize_ = false;
  Status status_;
};

}  // namespace jigsaw::cli
