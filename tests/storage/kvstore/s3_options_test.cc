// S3 configuration from the environment and from the AWS CLI's shared files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "storage/kvstore/s3/s3_kvstore.h"

namespace jigsaw {
namespace {

class S3OptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                          "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                          "AWS_NO_SIGN_REQUEST", "JIGSAW_S3_ANONYMOUS", "JIGSAW_S3_PART_SIZE"}) {
      if (const char* old = std::getenv(v)) saved_.emplace_back(v, old);
      ::unsetenv(v);
    }
    dir_ = std::filesystem::temp_directory_path() / ("jigsaw-aws-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "credentials")
        << "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=sdefault\n\n"
           "# a comment\n[work]\naws_access_key_id=AKIDWORK\n"
           "aws_secret_access_key = swork \naws_session_token = twork\n";
    std::ofstream(dir_ / "config") << "[default]\nregion = eu-west-1\n[profile work]\nregion=ap-south-1\n";
    ::setenv("AWS_SHARED_CREDENTIALS_FILE", (dir_ / "credentials").c_str(), 1);
    ::setenv("AWS_CONFIG_FILE", (dir_ / "config").c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    ::unsetenv("AWS_CONFIG_FILE");
    ::unsetenv("AWS_PROFILE");
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
    std::filesystem::remove_all(dir_);
  }
  std::vector<std::pair<std::string, std::string>> saved_;
  std::filesystem::path dir_;
};

TEST_F(S3OptionsTest, SharedFilesByProfile) {
  auto o = S3OptionsFromEnvironment();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->credentials.access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(o->credentials.secret_access_key, "sdefault");
  EXPECT_EQ(o->region, "eu-west-1");
  EXPECT_TRUE(o->endpoint.empty());
  EXPECT_FALSE(o->path_style);  // AWS itself: virtual-hosted buckets
  ::setenv("AWS_PROFILE", "work", 1);
  o = S3OptionsFromEnvironment();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->credentials.access_key_id, "AKIDWORK");
  EXPECT_EQ(o->credentials.secret_access_key, "swork");
  EXPECT_EQ(o->credentials.session_token, "twork");
  EXPECT_EQ(o->region, "ap-south-1");
}

TEST_F(S3OptionsTest, EnvironmentWins) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "senv", 1);
  ::setenv("AWS_REGION", "us-west-2", 1);
  ::setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", 1);
  auto o = S3OptionsFromEnvironment();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->credentials.access_key_id, "AKIDENV");
  EXPECT_EQ(o->credentials.session_token, "");
  EXPECT_EQ(o->region, "us-west-2");
  EXPECT_TRUE(o->path_style);
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_REGION");
  ::setenv("AWS_ENDPOINT_URL", "127.0.0.1:9000", 1);
  EXPECT_EQ(S3OptionsFromEnvironment().status().code(), StatusCode::kInvalidArgument);
  ::unsetenv("AWS_ENDPOINT_URL");
  ::setenv("JIGSAW_S3_PART_SIZE", "lots", 1);
  auto bad = S3OptionsFromEnvironment();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("JIGSAW_S3_PART_SIZE"), std::string::npos);
}

}  // namespace
}  // namespace jigsaw
