#include "storage/kvstore/http/http_client.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>
#include <semaphore>
#include <thread>

namespace jigsaw {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool RetriableStatus(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

bool RetriableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: return true;
    default: return false;
  }
}

struct Transfer {
  std::string* body;
  HttpHeaders headers;
  int64_t received = 0;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->body->append(data, size * n);
  t->received += static_cast<int64_t>(size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) t->headers.clear();  // a new response (after 100 Continue or a redirect)
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.remove_suffix(1);
    std::string name = Lower(line.substr(0, colon));
    if (name == "content-length") {
      int64_t length = std::atoll(std::string(value).c_str());
      if (length > 0 && length < (int64_t{1} << 40)) t->body->reserve(static_cast<size_t>(length));
    }
    t->headers.emplace_back(std::move(name), std::string(value));
  }
  return size * n;
}

class CurlHttpClient : public HttpClient {
 public:
  explicit CurlHttpClient(HttpOptions o) : o_(o), in_flight_(std::max(1, o.max_in_flight)) {}
  ~CurlHttpClient() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  Result<HttpResponse> Send(HttpRequest request, const Prepare& prepare, std::string* body) override {
    std::string own_body;
    std::string* sink = body ? body : &own_body;
    std::string what = request.method + " " + RedactUrl(request.url);
    double backoff = o_.initial_backoff_s;
    std::string last_error;
    for (int attempt = 0;; ++attempt) {
      HttpRequest r = request;
      if (prepare) prepare(r);
      sink->clear();
      HttpResponse response;
      CURLcode code = Perform(r, sink, &response);
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (code == CURLE_OK && !RetriableStatus(response.status)) {
        bytes_received_.fetch_add(static_cast<int64_t>(sink->size()), std::memory_order_relaxed);
        if (!body) response.body = std::move(own_body);
        return response;
      }
      if (code != CURLE_OK && !RetriableCurlError(code)) {
        return IoError(what + ": " + curl_easy_strerror(code));
      }
      last_error = code != CURLE_OK ? std::string(curl_easy_strerror(code))
                                    : "HTTP " + std::to_string(response.status) + ErrorCodeOf(*sink);
      if (attempt >= o_.max_retries) {
        return IoError(what + ": " + last_error + " (gave up after " + std::to_string(attempt + 1) + " attempts)");
      }
      retries_.fetch_add(1, std::memory_order_relaxed);
      // Full jitter: a uniform wait in [0, backoff), the bound doubling up to max_backoff_s.
      thread_local std::mt19937_64 rng(std::random_device{}());
      double wait = std::uniform_real_distribution<double>(0, backoff)(rng);
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      backoff = std::min(backoff * 2, o_.max_backoff_s);
    }
  }

  HttpStats stats() const override { return {requests_.load(), retries_.load(), bytes_received_.load()}; }
  const HttpOptions& options() const override { return o_; }

 private:
  // An S3-style <Code>SlowDown</Code> from an error body, for the message.
  static std::string ErrorCodeOf(const std::string& body) {
    size_t b = body.find("<Code>"), e = body.find("</Code>");
    if (b == std::string::npos || e == std::string::npos || e < b) return "";
    return " " + body.substr(b + 6, e - b - 6);
  }

  CURLcode Perform(const HttpRequest& r, std::string* sink, HttpResponse* response) {
    in_flight_.acquire();
    CURL* h = Acquire();
    Transfer t{sink, {}, 0};
    curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(o_.stall_timeout_s)));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (r.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (r.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      if (r.method == "PUT" || r.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
      }
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Expect:");
    if (r.method == "PUT" || r.method == "POST")
      headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    for (const auto& [k, v] : r.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    CURLcode code = curl_easy_perform(h);
    if (code == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response->status);
      // curl reports a body cut short of its Content-Length as CURLE_PARTIAL_FILE; check again, so that a
      // short body can never be returned as data.
      curl_off_t expected = -1;
      curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected);
      if (r.method != "HEAD" && expected >= 0 && expected != t.received) code = CURLE_PARTIAL_FILE;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_slist_free_all(headers);
    Release(h, code == CURLE_OK);
    in_flight_.release();
    response->headers = std::move(t.headers);
    return code;
  }

  CURL* Acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  // A handle keeps its connection for the next request, unless the transfer failed (then it is dropped,
  // so a reset or half-read connection is never reused).
  void Release(CURL* h, bool healthy) {
    if (!healthy) {
      curl_easy_cleanup(h);
      return;
    }
    curl_easy_reset(h);
    std::lock_guard lock(mu_);
    idle_.push_back(h);
  }

  const HttpOptions o_;
  std::counting_semaphore<4096> in_flight_;
  std::atomic<int64_t> requests_{0}, retries_{0}, bytes_received_{0};
  std::mutex mu_;  // guards idle_
  std::vector<CURL*> idle_;
};

Status ReadEnvNumber(const char* name, double min, double max, double* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return OkStatus();
  char* end = nullptr;
  double x = std::strtod(v, &end);
  if (*end != '\0' || !(x >= min && x <= max)) {
    return InvalidArgumentError(std::string("environment variable ") + name + "=\"" + v + "\": expected a number in [" +
                                std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  *out = x;
  return OkStatus();
}

}  // namespace

std::string HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return "";
}

Result<HttpOptions> HttpOptionsFromEnvironment() {
  HttpOptions o;
  double in_flight = o.max_in_flight, retries = o.max_retries;
  RETURN_IF_ERROR(ReadEnvNumber("JIGSAW_HTTP_MAX_IN_FLIGHT", 1, 4096, &in_flight));
  RETURN_IF_ERROR(ReadEnvNumber("JIGSAW_HTTP_RETRIES", 0, 100, &retries));
  RETURN_IF_ERROR(ReadEnvNumber("JIGSAW_HTTP_STALL_TIMEOUT", 1, 3600, &o.stall_timeout_s));
  RETURN_IF_ERROR(ReadEnvNumber("JIGSAW_HTTP_CONNECT_TIMEOUT", 0.1, 3600, &o.connect_timeout_s));
  o.max_in_flight = static_cast<int>(in_flight);
  o.max_retries = static_cast<int>(retries);
  return o;
}

std::unique_ptr<HttpClient> NewHttpClient(HttpOptions options) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<CurlHttpClient>(options);
}

Result<HttpClient*> SharedHttpClient() {
  static Result<HttpOptions> options = HttpOptionsFromEnvironment();
  RETURN_IF_ERROR(options.status());
  static std::unique_ptr<HttpClient> client = NewHttpClient(*options);
  return client.get();
}

std::string RedactUrl(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  size_t host = scheme + 3;
  size_t end = url.find_first_of("/?#", host);
  size_t at = url.substr(0, end).find('@', host);
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, host)) + std::string(url.substr(at + 1));
}

}  // namespace jigsaw
