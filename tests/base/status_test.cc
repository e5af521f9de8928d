#include "base/status.h"

#include <gtest/gtest.h>

namespace jigsaw {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgumentError(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = DataLossError("bad chunk").Annotate("file:///x: c/0");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "file:///x: c/0: bad chunk");
  EXPECT_EQ(s.ToString(), "DATA_LOSS: file:///x: c/0: bad chunk");
  EXPECT_TRUE(OkStatus().Annotate("ctx").ok());
}

TEST(Status, MacrosPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
}

TEST(Status, ErrnoMapping) {
  EXPECT_EQ(ErrnoToStatus(ENOENT, "open x").code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoToStatus(EIO, "read x").code(), StatusCode::kIo);
  EXPECT_NE(ErrnoToStatus(EIO, "read x").message().find("read x: "), std::string::npos);
}

}  // namespace
}  // namespace jigsaw
