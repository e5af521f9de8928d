// One readable error from a job of many processes. When every rank fails alike (a bad flag, a missing
// store: every rank checks the same thing), rank 0 says it once instead of N interleaved copies; when
// ranks fail differently each message gets a line of its own. A rank that fails while the others still
// work (an I/O error on its tile) says its own after a short wait, as it would alone.
//
// The exchange runs on a communicator of its own, duplicated from MPI_COMM_WORLD at start, so that it
// never matches a collective call of the job's other communicators.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace jigsaw {

class FailureReport {
 public:
  virtual ~FailureReport() = default;
  // Every rank's message, in rank order, when every rank calls this within `wait_s` of the first (on every
  // rank: each then knows that rank 0 will print); nullopt when some rank did not (it is still working, or
  // has died), and then the exchange is left pending: the caller exits without finalising MPI.
  virtual std::optional<std::vector<std::string>> Gather(const std::string& message, double wait_s) = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
};

// Collective over MPI_COMM_WORLD (MPI initialised by the caller); null when built without MPI.
std::unique_ptr<FailureReport> OpenFailureReport();

// The lines a failure's report prints ("rank 2: ..." prefixes, ranks with one message grouped): one line
// without a prefix when every rank has the same message.
std::vector<std::string> FailureLines(const std::vector<std::string>& messages);

}  // namespace jigsaw
