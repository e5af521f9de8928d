#include "parallel/failure_report.h"

#include <chrono>
#include <thread>

#ifdef JIGSAW_HAVE_MPI
#include <mpi.h>
#endif

namespace jigsaw {

std::vector<std::string> FailureLines(const std::vector<std::string>& messages) {
  std::vector<std::string> lines;
  if (messages.empty()) return lines;
  bool same = true;
  for (const auto& m : messages) same &= m == messages.front();
  if (same) return {messages.front()};
  // Ranks with the same message on one line, in the order of each message's first rank.
  std::vector<bool> said(messages.size(), false);
  for (size_t r = 0; r < messages.size(); ++r) {
    if (said[r]) continue;
    std::string ranks;
    int count = 0;
    for (size_t q = r; q < messages.size(); ++q) {
      if (said[q] || messages[q] != messages[r]) continue;
      said[q] = true;
      ranks += (count++ ? ", " : "") + std::to_string(q);
    }
    lines.push_back((count == 1 ? "rank " : "ranks ") + ranks + ": " + messages[r]);
  }
  return lines;
}

#ifdef JIGSAW_HAVE_MPI
namespace {

class MpiFailureReport final : public FailureReport {
 public:
  explicit MpiFailureReport(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  // The communicator is not freed: a report left pending (a rank still working) must not be cancelled
  // under MPI, and the process exits right after a report anyway.

  // Polls a request until it completes or the deadline passes.
  static bool WaitUntil(MPI_Request* request, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      int done = 0;
      MPI_Test(request, &done, MPI_STATUS_IGNORE);
      if (done) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::optional<std::vector<std::string>> Gather(const std::string& message, double wait_s) override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                  std::chrono::duration<double>(wait_s));
    // An all-gather of the lengths completes on a rank only once every rank has called it: every rank then
    // knows that all failed, and that rank 0 will print.
    int length = static_cast<int>(message.size());
    std::vector<int> lengths(size_);
    MPI_Request request;
    MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &request);
    if (!WaitUntil(&request, deadline)) return std::nullopt;
    std::vector<int> offsets(size_, 0);
    for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    std::string all(static_cast<size_t>(offsets.back() + lengths.back()), '\0');
    MPI_Igatherv(message.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, comm_,
                 &request);
    // Every rank is in it now: this completes (the deadline only guards against a rank dying in between).
    if (!WaitUntil(&request, deadline + std::chrono::seconds(10))) return std::nullopt;
    std::vector<std::string> messages;
    if (rank_ == 0)
      for (int r = 0; r < size_; ++r) messages.push_back(all.substr(offsets[r], lengths[r]));
    return messages;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace
#endif

std::unique_ptr<FailureReport> OpenFailureReport() {
#ifdef JIGSAW_HAVE_MPI
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return nullptr;
  MPI_Comm comm;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &comm) != MPI_SUCCESS) return nullptr;
  return std::make_unique<MpiFailureReport>(comm);
#else
  return nullptr;
#endif
}

}  // namespace jigsaw
