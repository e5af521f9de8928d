// AWS Signature Version 4 for S3 requests, and the SHA-256 / HMAC-SHA256 it is built on.
//
// Sign() adds x-amz-date, x-amz-content-sha256, x-amz-security-token (when a session token is given) and
// Authorization to a request described by method, host, path, query and headers. It is a pure function of
// its inputs (the time is a parameter), so it is unit-tested against AWS's published test vectors.
// Secrets never leave this file except inside the Authorization header's HMAC.
#pragma once

#include "storage/kvstore/http/uri.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jigsaw::s3 {

using Sha256Digest = std::array<uint8_t, 32>;
Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(std::string_view key, std::string_view data);
std::string HexLower(const uint8_t* data, size_t size);
inline std::string Sha256Hex(std::string_view data) {
  auto d = Sha256(data);
  return HexLower(d.data(), d.size());
}

using jigsaw::UriEncode;  // http/uri.h

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
};

struct SigningInput {
  std::string method;                                        // "GET"
  std::string host;                                          // "examplebucket.s3.amazonaws.com" (with :port)
  std::string path;                                          // already URI-encoded: "/test.txt"
  std::vector<std::pair<std::string, std::string>> query;    // decoded names and values, any order
  std::vector<std::pair<std::string, std::string>> headers;  // besides host and the x-amz-* ones added
  std::string payload_sha256;                                // hex, or "UNSIGNED-PAYLOAD"
  std::string region;                                        // "us-east-1"
  std::string service = "s3";
  std::string amz_date;  // "20130524T000000Z"
};

// The encoded query string (sorted, as sent on the wire and as signed).
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);

// Returns every header to send, Authorization included (host is left to the HTTP client but signed).
std::vector<std::pair<std::string, std::string>> Sign(const SigningInput& in, const Credentials& creds);

// "YYYYMMDDTHHMMSSZ" for the current UTC time.
std::string AmzDateNow();

}  // namespace jigsaw::s3
