// S3 (and S3-compatible servers, and GCS through its S3-compatible XML API) as a KvStore.
//
// "s3://bucket/prefix": keys live under prefix/ in the bucket. Reads are ranged GETs (404 = missing
// key), writes are single PUTs or, from `multipart_threshold` bytes on, multipart uploads with parts
// sent in parallel (aborted on failure, so nothing half-written becomes visible), List is
// ListObjectsV2 with pagination. Requests are signed with SigV4 unless anonymous. Every request goes
// through the shared HttpClient (bounded in flight, retries with backoff).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "storage/kvstore/kvstore.h"
#include "storage/kvstore/s3/sigv4.h"

namespace jigsaw {

struct S3Options {
  std::string endpoint;              // AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; "" = AWS itself
  std::string region = "us-east-1";  // AWS_REGION / AWS_DEFAULT_REGION / ~/.aws/config
  s3::Credentials credentials;       // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, else the
                                     // profile AWS_PROFILE (or default) of ~/.aws/credentials
                                     // (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE move the files)
  bool anonymous = false;            // JIGSAW_S3_ANONYMOUS=1 or AWS_NO_SIGN_REQUEST=1: unsigned requests
  bool path_style = true;            // endpoint/bucket/key (local servers); false: bucket.endpoint/key.
                                     // Default: path style with an endpoint, virtual hosts on AWS.
  bool read_only = false;
  int64_t multipart_threshold = int64_t{64} << 20;  // JIGSAW_S3_MULTIPART_THRESHOLD (bytes)
  int64_t part_size = int64_t{16} << 20;            // JIGSAW_S3_PART_SIZE (bytes, >= 5 MiB for AWS)
  int64_t list_page = 0;  // JIGSAW_S3_LIST_PAGE: keys per listing request (0: the server's default, 1000)
};

// The defaults above with the environment variables named beside them applied.
Result<S3Options> S3OptionsFromEnvironment();

// Opens "s3://bucket[/prefix]" with `options`.
Result<std::unique_ptr<KvStore>> NewS3KvStore(std::string_view url, S3Options options);

// Opens "gs://bucket[/prefix]": anonymous and read-only, through https://storage.googleapis.com (or
// JIGSAW_GCS_ENDPOINT), whose XML API speaks the S3 protocol for reads and listings.
Result<std::unique_ptr<KvStore>> NewGcsKvStore(std::string_view url);

}  // namespace jigsaw
