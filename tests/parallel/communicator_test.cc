// The communicator's data calls on one process (the MPI backend runs the same checks on 4 processes in
// communicator_mpi_test.cc).
#include "parallel/communicator.h"
#include "parallel/failure_report.h"

#include <gtest/gtest.h>

#include <vector>

namespace jigsaw {
namespace {

TEST(LocalCommunicator, DataCallsAreIdentitiesAndSendReachesTheNextRecv) {
  auto c = NewLocalCommunicator();
  std::vector<float> a{1, 2, 3}, b(3);
  ASSERT_TRUE(c->AllGather(a.data(), b.data(), 3).ok());
  EXPECT_EQ(b, a);
  std::fill(b.begin(), b.end(), 0);
  ASSERT_TRUE(c->ReduceScatterSum(a.data(), b.data(), 3).ok());
  EXPECT_EQ(b, a);
  ASSERT_TRUE(c->Send(a.data(), 3, 0).ok());
  std::vector<float> got(3);
  ASSERT_TRUE(c->Recv(got.data(), 3, 0).ok());
  EXPECT_EQ(got, a);
  EXPECT_EQ(c->Recv(got.data(), 3, 0).code(), StatusCode::kFailedPrecondition);  // nothing left
  EXPECT_EQ(c->Send(a.data(), 3, 1).code(), StatusCode::kInvalidArgument);       // no rank 1
  ASSERT_TRUE(c->Send(a.data(), 3, 0).ok());
  EXPECT_EQ(c->Recv(got.data(), 2, 0).code(), StatusCode::kInvalidArgument);  // sizes must match
}

TEST(FailureReport, LinesSayEachMessageOnceWithItsRanks) {
  using Lines = std::vector<std::string>;
  EXPECT_EQ(FailureLines({"bad flag", "bad flag", "bad flag"}), Lines{"bad flag"});
  EXPECT_EQ(FailureLines({"a", "b", "a", "c"}), (Lines{"ranks 0, 2: a", "rank 1: b", "rank 3: c"}));
  EXPECT_EQ(FailureLines({"x", "y"}), (Lines{"rank 0: x", "rank 1: y"}));
  EXPECT_TRUE(FailureLines({}).empty());
}

}  // namespace
}  // namespace jigsaw
