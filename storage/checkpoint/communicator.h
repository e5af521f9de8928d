// How the ranks of a collective checkpoint save talk: gather to rank 0, broadcast, barrier. One process
// per rank under MPI, or a single process (size 1) that saves for every rank itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/status.h"

namespace jigsaw {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  // Rank 0 receives every rank's payload (in rank order); the others get an empty vector.
  virtual Result<std::vector<std::string>> Gather(const std::string& payload) = 0;
  // Rank 0's *value reaches every rank.
  virtual Status Broadcast(std::string* value) = 0;
  virtual Status Barrier() = 0;
};

// Collective: every rank learns whether every rank is ok. The first failure in rank order comes back on
// every rank, as "rank R: message" (a rank's own failure comes back as it is).
Status AllOk(Communicator* comm, const Status& local);

std::unique_ptr<Communicator> NewLocalCommunicator();
// MPI_COMM_WORLD; requires MPI to be initialised by the caller. kUnimplemented when built without MPI.
Result<std::unique_ptr<Communicator>> NewMpiCommunicator();

// For callers that cannot call MPI_Init themselves (the Python module): initialises MPI unless something in
// the process already did (mpi4py, the application); true when this call did, and the caller then calls
// FinalizeMpi() at exit. kUnimplemented when built without MPI.
Result<bool> InitializeMpi();
void FinalizeMpi();

}  // namespace jigsaw
