#include "storage/kvstore/http/http_kvstore.h"

#include <cstdlib>

#include "storage/kvstore/http/uri.h"

namespace jigsaw {
namespace {

// Parses "bytes 0-9/443" into the total size; -1 when absent or unknown.
int64_t TotalFromContentRange(std::string_view v) {
  size_t slash = v.rfind('/');
  if (slash == std::string_view::npos || v.substr(slash + 1) == "*") return -1;
  return std::atoll(std::string(v.substr(slash + 1)).c_str());
}

Status ReadEmptyRange(const SendFn& send, ByteRange range, std::string* value) {
  ASSIGN_OR_RETURN(auto r, send("HEAD", {}, value));
  value->clear();
  if (r.status == 404) return NotFoundError("missing");
  if (r.status != 200) return IoError("HEAD: HTTP " + std::to_string(r.status));
  ASSIGN_OR_RETURN(auto span, ResolveByteRange(range, std::atoll(r.header("content-length").c_str())));
  if (span.first != span.second) return InternalError("non-empty range taken for an empty one");
  return OkStatus();
}

class HttpKvStore : public KvStore {
 public:
  HttpKvStore(std::string base, HttpClient* http) : base_(std::move(base)), http_(http) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    return ReadThroughReadInto(this, key, range);
  }

  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string url = base_ + "/" + UriEncode(key, true);
    SendFn send = [&](const std::string& method, HttpHeaders headers, std::string* body) {
      HttpRequest request{method, url, std::move(headers), {}};
      return http_->Send(std::move(request), {}, body);
    };
    Status st = ReadObjectRange(send, range, value);
    if (st.code() == StatusCode::kNotFound) {
      value->clear();
      return false;
    }
    RETURN_IF_ERROR(st.Annotate(RedactUrl(url)));
    return true;
  }

  Status Write(std::string_view key, std::string_view, WriteOptions) override { return ReadOnly(key); }
  Status Delete(std::string_view key) override { return ReadOnly(key); }
  Result<std::vector<ListEntry>> List(std::string_view) override {
    return UnimplementedError(url() + ": an HTTP server cannot list keys (open the bucket as s3:// or gs:// instead)");
  }
  int io_threads() const override { return http_->options().max_in_flight; }
  std::string url() const override { return RedactUrl(base_); }

 private:
  Status ReadOnly(std::string_view key) {
    return UnimplementedError(url() + "/" + std::string(key) + ": HTTP stores are read-only (write to s3:// instead)");
  }

  const std::string base_;
  HttpClient* http_;
};

}  // namespace

Status ReadObjectRange(const SendFn& send, ByteRange range, std::string* value) {
  bool empty_span = range.suffix_length < 0 && range.exclusive_max >= 0 && range.exclusive_max == range.inclusive_min;
  if (range.suffix_length == 0 || empty_span) return ReadEmptyRange(send, range, value);
  HttpHeaders headers;
  if (!range.is_all()) headers.emplace_back("Range", range.ToString());
  ASSIGN_OR_RETURN(auto r, send("GET", headers, value));
  if (r.status == 404) return NotFoundError("missing");
  if (r.status == 416) return ReadEmptyRange(send, range, value);
  if (r.status == 200) {
    if (range.is_all()) return OkStatus();
    // The server ignored the Range header: cut the range out of the whole value.
    ASSIGN_OR_RETURN(auto span, ResolveByteRange(range, static_cast<int64_t>(value->size())));
    *value = value->substr(span.first, span.second - span.first);
    return OkStatus();
  }
  if (r.status == 206) {
    int64_t total = TotalFromContentRange(r.header("content-range"));
    if (total < 0) return DataLossError("206 response without a usable Content-Range");
    ASSIGN_OR_RETURN(auto span, ResolveByteRange(range, total));
    if (static_cast<int64_t>(value->size()) != span.second - span.first) {
      return DataLossError("asked for bytes [" + std::to_string(span.first) + ", " + std::to_string(span.second) +
                           ") and received " + std::to_string(value->size()));
    }
    return OkStatus();
  }
  return IoError("GET: HTTP " + std::to_string(r.status));
}

Result<std::unique_ptr<KvStore>> NewHttpKvStore(std::string_view url) {
  std::string base(url);
  while (base.ends_with('/')) base.pop_back();
  if (base.find("://") + 3 >= base.size()) return InvalidArgumentError("no host in store URL " + std::string(url));
  ASSIGN_OR_RETURN(HttpClient * http, SharedHttpClient());
  return std::unique_ptr<KvStore>(std::make_unique<HttpKvStore>(std::move(base), http));
}

}  // namespace jigsaw
