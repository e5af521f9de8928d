// SHA-256, HMAC-SHA256 and SigV4 against published vectors: FIPS 180-2 examples, RFC 4231 test case 2,
// the AWS SigV4 test suite (get-vanilla, get-vanilla-query-order-key-case, post-vanilla, get-utf8) and the
// S3 documentation's "GET Object" example.
#include <gtest/gtest.h>

#include "storage/kvstore/s3/sigv4.h"

namespace jigsaw::s3 {
namespace {

std::string Hex(const Sha256Digest& d) { return HexLower(d.data(), d.size()); }

TEST(Sha256, PublishedVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, MessageFillingAWholeBlock) {
  // 64 bytes: the padding needs a second block.
  EXPECT_EQ(Sha256Hex(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(HmacSha256, Rfc4231) {
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block is hashed first.
  EXPECT_EQ(Hex(HmacSha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

SigningInput SuiteRequest(std::string method, std::string path,
                          std::vector<std::pair<std::string, std::string>> query) {
  SigningInput in;
  in.method = std::move(method);
  in.host = "example.amazonaws.com";
  in.path = std::move(path);
  in.query = std::move(query);
  in.payload_sha256 = Sha256Hex("");
  in.region = "us-east-1";
  in.service = "service";
  in.amz_date = "20150830T123600Z";
  return in;
}

std::string Authorization(const SigningInput& in, const Credentials& c) {
  for (const auto& [k, v] : Sign(in, c)) {
    if (k == "Authorization") return v;
  }
  return "";
}

TEST(SigV4, AwsTestSuite) {
  Credentials c{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  std::string prefix =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=";
  EXPECT_EQ(Authorization(SuiteRequest("GET", "/", {}), c),
            prefix + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(Authorization(SuiteRequest("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}), c),
            prefix + "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  EXPECT_EQ(Authorization(SuiteRequest("POST", "/", {}), c),
            prefix + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  EXPECT_EQ(Authorization(SuiteRequest("GET", UriEncode("/\xe1\x88\xb4", true), {}), c),
            prefix + "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST(SigV4, S3GetObjectExample) {
  Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  SigningInput in;
  in.method = "GET";
  in.host = "examplebucket.s3.amazonaws.com";
  in.path = "/test.txt";
  in.headers = {{"Range", "bytes=0-9"}};
  in.payload_sha256 = Sha256Hex("");
  in.region = "us-east-1";
  in.amz_date = "20130524T000000Z";
  EXPECT_EQ(Authorization(in, c),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, SessionTokenIsSentAndSigned) {
  Credentials c{"AKID", "secret", "token/with+chars"};
  SigningInput in = SuiteRequest("GET", "/", {});
  auto headers = Sign(in, c);
  bool token = false;
  for (const auto& [k, v] : headers) token |= (k == "x-amz-security-token" && v == c.session_token);
  EXPECT_TRUE(token);
  EXPECT_NE(Authorization(in, c).find("x-amz-security-token"), std::string::npos);
  // The secret itself never appears in what is sent.
  for (const auto& [k, v] : headers) EXPECT_EQ(v.find("secret"), std::string::npos) << k;
}

TEST(SigV4, UriEncodingAndQueryOrder) {
  EXPECT_EQ(UriEncode("a b/c~d_e.f-g+h", true), "a%20b/c~d_e.f-g%2Bh");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(CanonicalQuery({{"prefix", "x/y z"}, {"list-type", "2"}, {"uploads", ""}}),
            "list-type=2&prefix=x%2Fy%20z&uploads=");
}

}  // namespace
}  // namespace jigsaw::s3
