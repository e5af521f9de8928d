// The object-store backends against real servers, started by tests/tools/servers.py (moto's S3 server,
// nginx) with the fault-injecting proxy in front where the test says so. Run through ctest; run by hand:
//   .venv/bin/python tests/tools/servers.py --moto --nginx /tmp/www -- build/tests/remote_kvstore_tests
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "storage/kvstore/http/http_client.h"
#include "storage/kvstore/s3/s3_kvstore.h"
#include "tests/storage/kvstore/kvstore_conformance.h"

namespace jigsaw {
namespace {

std::string RequireEnv(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    ADD_FAILURE() << name << " is not set: run this test through tests/tools/servers.py (ctest does)";
    return "";
  }
  return v;
}

std::string FreshS3Url() {
  static std::atomic<int> n{0};
  return "s3://" + RequireEnv("JIGSAW_TEST_BUCKET") + "/run-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

std::unique_ptr<KvStore> OpenOrDie(const std::string& url) {
  auto store = OpenKvStore(url);
  EXPECT_TRUE(store.ok()) << url << ": " << store.status().ToString();
  return store.ok() ? std::move(*store) : NewMemoryKvStore();
}

// A proxied S3 store: the endpoint is the fault proxy (JIGSAW_TEST_PROXY_URL) instead of moto.
std::unique_ptr<KvStore> OpenThroughProxy(const std::string& url) {
  auto o = S3OptionsFromEnvironment();
  EXPECT_TRUE(o.ok());
  o->endpoint = RequireEnv("JIGSAW_TEST_PROXY_URL");
  auto store = NewS3KvStore(url, *o);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : NewMemoryKvStore();
}

INSTANTIATE_TEST_SUITE_P(Remote, KvStoreConformance,
                         ::testing::Values(Backend{"s3", [] { return OpenOrDie(FreshS3Url()); }},
                                           Backend{"s3_with_faults", [] { return OpenThroughProxy(FreshS3Url()); }}),
                         [](const auto& info) { return info.param.name; });

TEST(S3KvStore, PrefixesAreIsolatedAndUrlsRoundTrip) {
  std::string url = FreshS3Url();
  auto a = OpenOrDie(url + "/a");
  auto ab = OpenOrDie(url + "/ab");
  ASSERT_TRUE(a->Write("k", "1").ok());
  ASSERT_TRUE(ab->Write("k", "2").ok());
  EXPECT_EQ(a->List("")->size(), 1u);
  EXPECT_EQ(a->Read("k")->value, "1");
  EXPECT_EQ(a->url(), url + "/a");
  // Keys with characters that need escaping in paths and in signatures.
  ASSERT_TRUE(a->Write("odd name/with+plus=and%percent", "x").ok());
  EXPECT_EQ(a->Read("odd name/with+plus=and%percent")->value, "x");
  EXPECT_EQ((*a->List("odd"))[0].key, "odd name/with+plus=and%percent");
}

TEST(S3KvStore, MissingBucketAndMissingCredentialsAreNamed) {
  auto store = OpenOrDie("s3://no-such-bucket-jigsaw/x");
  auto r = store->Read("k");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no-such-bucket-jigsaw"), std::string::npos) << r.status().ToString();
  S3Options o;  // no credentials, not anonymous
  auto refused = NewS3KvStore("s3://b/x", o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_FALSE(OpenKvStore("s3:///x").ok());
}

TEST(S3KvStore, SecretsNeverAppearInErrors) {
  auto o = S3OptionsFromEnvironment();
  ASSERT_TRUE(o.ok());
  o->credentials = {"AKIDSHOULDNOTLEAK", "SECRETSHOULDNOTLEAK", "TOKENSHOULDNOTLEAK"};
  o->endpoint = "http://127.0.0.1:1";  // nothing listens there
  auto store = NewS3KvStore("s3://b/x", *o);
  ASSERT_TRUE(store.ok());
  for (Status st : {(*store)->Read("k").status(), (*store)->Write("k", "v"), (*store)->List("").status()}) {
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.message().find("SHOULDNOTLEAK"), std::string::npos) << st.message();
    EXPECT_EQ(st.code(), StatusCode::kIo) << st.ToString();
  }
}

TEST(S3KvStore, ServerGoneFailsAfterBoundedRetries) {
  auto client = NewHttpClient({.max_in_flight = 4, .max_retries = 3, .initial_backoff_s = 0.01});
  auto t0 = std::chrono::steady_clock::now();
  auto r = client->Send({"GET", "http://127.0.0.1:1/x", {}, {}});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gave up after 4 attempts"), std::string::npos) << r.status().ToString();
  EXPECT_LT(seconds, 5);
  EXPECT_EQ(client->stats().retries, 3);
}

TEST(GcsKvStore, ReadsAndListsAnonymouslyAndRefusesWrites) {
  // gs:// goes to JIGSAW_GCS_ENDPOINT (here: moto, which speaks the same XML protocol as GCS).
  std::string url = "s3://" + RequireEnv("JIGSAW_TEST_PUBLIC_BUCKET") + "/gcs-" + std::to_string(getpid());
  auto s3 = OpenOrDie(url);
  ASSERT_TRUE(s3->Write("g/zarr.json", "{}").ok());
  ::setenv("JIGSAW_GCS_ENDPOINT", RequireEnv("AWS_ENDPOINT_URL").c_str(), 1);
  auto gs = OpenOrDie("gs://" + url.substr(5));
  auto r = gs->Read("g/zarr.json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "{}");
  EXPECT_TRUE(gs->Read("g/none")->missing);
  EXPECT_EQ(gs->List("g/")->size(), 1u);
  EXPECT_EQ(gs->Write("g/x", "y").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(gs->url(), "gs://" + url.substr(5));
}

class HttpKvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = RequireEnv("JIGSAW_TEST_HTTP_ROOT") + "/t" + std::to_string(getpid());
    std::filesystem::create_directories(root_ + "/dir");
    std::ofstream(root_ + "/dir/k") << "0123456789";
    url_ = RequireEnv("JIGSAW_TEST_HTTP_URL") + "/t" + std::to_string(getpid());
  }
  std::string root_, url_;
};

TEST_F(HttpKvStoreTest, RangesMissingKeysAndReadOnly) {
  auto store = OpenOrDie(url_);
  EXPECT_EQ(store->Read("dir/k")->value, "0123456789");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Span(2, 5))->value, "234");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Span(7, -1))->value, "789");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Suffix(3))->value, "789");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Suffix(30))->value, "0123456789");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Span(10, 10))->value, "");
  EXPECT_EQ(store->Read("dir/k", ByteRange::Span(5, 11)).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(store->Read("dir/k", ByteRange::Span(11, -1)).status().code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(store->Read("dir/missing")->missing);
  EXPECT_TRUE(store->Read("dir/missing", ByteRange::Span(0, 2))->missing);
  EXPECT_EQ(store->Write("dir/k", "x").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(store->Delete("dir/k").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(store->List("").status().code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(store->Read("../etc/passwd").ok());
}

TEST_F(HttpKvStoreTest, FaultsNeverReachTheCaller) {
  // Through the proxy (10% of requests faulted): every read returns the exact bytes.
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  std::ofstream(root_ + "/dir/big", std::ios::binary) << big;
  std::string proxied = RequireEnv("JIGSAW_TEST_HTTP_PROXY_URL") + "/t" + std::to_string(getpid());
  auto store = OpenOrDie(proxied);
  for (int i = 0; i < 60; ++i) {
    auto r = store->Read("dir/big", ByteRange::Span(i * 1000, i * 1000 + 50000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->value == big.substr(i * 1000, 50000)) << i;
  }
  auto* http = *SharedHttpClient();
  EXPECT_GT(http->stats().retries, 0);
}

}  // namespace
}  // namespace jigsaw
