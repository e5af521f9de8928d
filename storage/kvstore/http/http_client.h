// HttpClient: the one place jigsaw talks HTTP (libcurl), shared by the HTTP, GCS and S3 kvstores.
//
// Contract:
// - Send() is blocking and safe to call from many threads; at most `max_in_flight` requests are on the
//   wire at once (the others wait). Connections are kept and reused (a pool of curl handles).
// - Transient failures are retried with exponential backoff and full jitter, up to `max_retries` times:
//   connection refused / reset, timeouts, a stalled transfer (no byte for `stall_timeout_s`), a body
//   shorter than its Content-Length, and HTTP 429, 500, 502, 503, 504. A short body is never returned.
// - Other HTTP statuses (404, 403, 416, ...) are returned to the caller, which knows what they mean.
// - `prepare` runs before every attempt (S3 signs there, with a fresh date).
// - Messages name the method and URL (user:password@ removed), never headers, so never credentials.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace jigsaw {

struct HttpOptions {
  int max_in_flight = 32;         // JIGSAW_HTTP_MAX_IN_FLIGHT
  int max_retries = 8;            // JIGSAW_HTTP_RETRIES
  double stall_timeout_s = 30;    // JIGSAW_HTTP_STALL_TIMEOUT: no byte received for this long fails an attempt
  double connect_timeout_s = 10;  // JIGSAW_HTTP_CONNECT_TIMEOUT
  double initial_backoff_s = 0.05;
  double max_backoff_s = 5;
};

// The defaults above, overridden by the environment variables named beside them.
Result<HttpOptions> HttpOptionsFromEnvironment();

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  HttpHeaders headers;
  std::string_view body;  // must outlive Send()
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;  // names in lower case
  std::string body;     // unless Send() was given a body buffer
  std::string header(std::string_view lower_name) const;
};

struct HttpStats {
  int64_t requests = 0;  // attempts, retries included
  int64_t retries = 0;
  int64_t bytes_received = 0;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  using Prepare = std::function<void(HttpRequest&)>;
  // With `body`, the response body goes there (its capacity reused) instead of into the response.
  virtual Result<HttpResponse> Send(HttpRequest request, const Prepare& prepare = {}, std::string* body = nullptr) = 0;
  virtual HttpStats stats() const = 0;
  virtual const HttpOptions& options() const = 0;
};

std::unique_ptr<HttpClient> NewHttpClient(HttpOptions options);

// One client per process, made on first use from HttpOptionsFromEnvironment() (an error names the bad
// variable).
Result<HttpClient*> SharedHttpClient();

// "http://user:pw@host/x" -> "http://host/x": what may appear in a message.
std::string RedactUrl(std::string_view url);

}  // namespace jigsaw
