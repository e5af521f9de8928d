#include "storage/kvstore/s3/s3_kvstore.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <cstdlib>

#include "base/first_error.h"
#include "storage/kvstore/http/http_client.h"
#include "storage/kvstore/http/http_kvstore.h"
#include "storage/kvstore/s3/s3_xml.h"

namespace jigsaw {
namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

// " (AccessDenied: Access Denied)" from an S3 error body; "" when there is none.
std::string Detail(const std::string& body) {
  std::string code = s3::XmlText(body, "Code"), message = s3::XmlText(body, "Message");
  if (code.empty()) return "";
  return " (" + code + (message.empty() ? "" : ": " + message) + ")";
}

// "HTTP 403 (AccessDenied: Access Denied)", for messages.
std::string Describe(const HttpResponse& r, const std::string& body) {
  return "HTTP " + std::to_string(r.status) + Detail(body);
}

class S3KvStore : public KvStore {
 public:
  S3KvStore(std::string scheme, std::string bucket, std::string prefix, S3Options o, HttpClient* http)
      : scheme_(std::move(scheme)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        o_(std::move(o)),
        http_(http) {
    std::string endpoint = o_.endpoint;
    if (endpoint.empty()) endpoint = "https://s3." + o_.region + ".amazonaws.com";
    while (endpoint.ends_with('/')) endpoint.pop_back();
    size_t host_begin = endpoint.find("://") + 3;
    if (o_.path_style) {
      base_ = endpoint + "/" + bucket_;
      host_ = endpoint.substr(host_begin);
      path_base_ = "/" + UriEncode(bucket_, false);
    } else {
      base_ = endpoint.substr(0, host_begin) + bucket_ + "." + endpoint.substr(host_begin);
      host_ = bucket_ + "." + endpoint.substr(host_begin);
    }
    size_t slash = host_.find('/');
    if (slash != std::string::npos) host_.resize(slash);
  }

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    return ReadThroughReadInto(this, key, range);
  }

  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    RETURN_IF_ERROR(ValidateKey(key));
    Status st = ReadObject(key, range, value);
    if (st.code() == StatusCode::kNotFound) {
      value->clear();
      return false;
    }
    RETURN_IF_ERROR(st.Annotate(ObjectUrl(key)));
    return true;
  }

  Status Write(std::string_view key, std::string_view value, WriteOptions options) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (o_.read_only) return UnimplementedError(ObjectUrl(key) + ": this store is read-only");
    if (options.if_absent) {
      // S3's conditional write: 412 when the key exists (AWS since 2024, MinIO, moto).
      std::string body;
      ASSIGN_OR_RETURN(auto r, Send("PUT", ObjectPath(key), {}, {{"If-None-Match", "*"}}, value, &body));
      if (r.status == 412) return FailedPreconditionError(ObjectUrl(key) + " already exists");
      if (r.status != 200) return IoError(ObjectUrl(key) + ": conditional write: " + Describe(r, body));
      return OkStatus();
    }
    Status st = static_cast<int64_t>(value.size()) >= o_.multipart_threshold ? WriteMultipart(key, value)
                                                                             : WriteSingle(key, value);
    return st.Annotate(ObjectUrl(key));
  }

  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (o_.read_only) return UnimplementedError(ObjectUrl(key) + ": this store is read-only");
    std::string body;
    ASSIGN_OR_RETURN(auto r, Send("DELETE", ObjectPath(key), {}, {}, "", &body));
    if (r.status != 204 && r.status != 200) return IoError(ObjectUrl(key) + ": delete: " + Describe(r, body));
    return OkStatus();
  }

  Result<std::vector<ListEntry>> List(std::string_view prefix) override {
    std::string full = FullKey(prefix);
    if (prefix.empty() && !prefix_.empty()) full += '/';
    std::vector<ListEntry> out;
    std::string token, body;
    do {
      Query q = {{"list-type", "2"}, {"prefix", full}};
      if (!token.empty()) q.emplace_back("continuation-token", token);
      if (o_.list_page > 0) q.emplace_back("max-keys", std::to_string(o_.list_page));
      ASSIGN_OR_RETURN(auto r, Send("GET", path_base_.empty() ? "/" : path_base_, q, {}, "", &body));
      if (r.status != 200) return IoError(url() + ": list \"" + std::string(prefix) + "\": " + Describe(r, body));
      ASSIGN_OR_RETURN(s3::ListPage page, s3::ParseListObjectsV2(body));
      for (auto& e : page.entries) {
        if (prefix_.empty()) {
          out.push_back(std::move(e));
        } else if (e.key.starts_with(prefix_ + "/")) {
          out.push_back({e.key.substr(prefix_.size() + 1), e.size});
        }
      }
      token = page.next_token;
    } while (!token.empty());
    std::sort(out.begin(), out.end(), [](const ListEntry& a, const ListEntry& b) { return a.key < b.key; });
    return out;
  }

  int io_threads() const override { return http_->options().max_in_flight; }

  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (o_.read_only) return UnimplementedError(ObjectUrl(key) + ": this store is read-only");
    return std::unique_ptr<KvWriter>(std::make_unique<Writer>(this, std::string(key)));
  }
  std::string url() const override { return scheme_ + "://" + bucket_ + (prefix_.empty() ? "" : "/" + prefix_); }

 private:
  std::string FullKey(std::string_view key) const {
    if (prefix_.empty()) return std::string(key);
    return key.empty() ? prefix_ : prefix_ + "/" + std::string(key);
  }
  std::string ObjectPath(std::string_view key) const { return path_base_ + "/" + UriEncode(FullKey(key), true); }
  std::string ObjectUrl(std::string_view key) const { return url() + "/" + std::string(key); }

  Result<HttpResponse> Send(std::string method, const std::string& path, const Query& query, HttpHeaders headers,
                            std::string_view payload, std::string* body) {
    HttpRequest request;
    request.method = method;
    std::string qs = s3::CanonicalQuery(query);
    // An empty-valued parameter goes on the wire as "?uploads", and is signed as "uploads=".
    request.url = base_ + path.substr(path_base_.size()) + (qs.empty() ? "" : "?" + qs);
    request.body = payload;
    request.headers = headers;
    HttpClient::Prepare sign;
    if (!o_.anonymous) {
      std::string payload_hash = payload.size() <= (1u << 20) ? s3::Sha256Hex(payload) : "UNSIGNED-PAYLOAD";
      sign = [this, method, path, query, headers, payload_hash](HttpRequest& r) {
        s3::SigningInput in{method,    host_, path.empty() ? "/" : path, query, headers, payload_hash,
                            o_.region, "s3",  s3::AmzDateNow()};
        r.headers = s3::Sign(in, o_.credentials);
      };
    }
    return http_->Send(std::move(request), sign, body);
  }

  Status ReadObject(std::string_view key, ByteRange range, std::string* value) {
    std::string path = ObjectPath(key);
    SendFn send = [&](const std::string& method, HttpHeaders headers, std::string* body) {
      return Send(method, path, {}, std::move(headers), "", body);
    };
    Status st = ReadObjectRange(send, range, value);
    if (st.code() == StatusCode::kNotFound && s3::XmlText(*value, "Code") == "NoSuchBucket") {
      return FailedPreconditionError("bucket \"" + bucket_ + "\" does not exist");
    }
    if (st.code() == StatusCode::kIo) return IoError("read: " + st.message() + Detail(*value));
    return st;
  }

  Status WriteSingle(std::string_view key, std::string_view value) {
    std::string body;
    ASSIGN_OR_RETURN(auto r, Send("PUT", ObjectPath(key), {}, {}, value, &body));
    if (r.status != 200) return IoError("write: " + Describe(r, body));
    return OkStatus();
  }

  // One multipart upload: Start(), parts (any order, in parallel), then Complete() or Abort().
  struct Upload {
    std::string path, id;
    std::vector<std::string> etags;  // by part number - 1
    int64_t bytes = 0;
  };

  Result<Upload> StartUpload(std::string_view key) {
    Upload u{ObjectPath(key), "", {}, 0};
    std::string body;
    ASSIGN_OR_RETURN(auto r, Send("POST", u.path, {{"uploads", ""}}, {}, "", &body));
    u.id = s3::XmlText(body, "UploadId");
    if (r.status != 200 || u.id.empty()) return IoError("start multipart upload: " + Describe(r, body));
    return u;
  }

  Result<std::string> UploadPart(const Upload& u, int64_t number, std::string_view bytes) {
    std::string body;
    ASSIGN_OR_RETURN(
        auto r, Send("PUT", u.path, {{"partNumber", std::to_string(number)}, {"uploadId", u.id}}, {}, bytes, &body));
    if (r.status != 200 || r.header("etag").empty()) {
      return IoError("upload part " + std::to_string(number) + ": " + Describe(r, body));
    }
    return r.header("etag");
  }

  Status CompleteUpload(const Upload& u) {
    std::string xml = "<CompleteMultipartUpload>", body;
    for (size_t i = 0; i < u.etags.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + u.etags[i] + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    ASSIGN_OR_RETURN(auto r, Send("POST", u.path, {{"uploadId", u.id}}, {}, xml, &body));
    if (r.status == 404 && s3::XmlText(body, "Code") == "NoSuchUpload") {
      // A retried completion whose first attempt succeeded but whose answer was lost: the object is there
      // if it has the size we sent.
      std::string head_body;
      auto h = Send("HEAD", u.path, {}, {}, "", &head_body);
      if (h.ok() && h->status == 200 && std::atoll(h->header("content-length").c_str()) == u.bytes) return OkStatus();
    }
    if (r.status != 200 || body.find("<Error>") != std::string::npos) {
      return IoError("complete multipart upload: " + Describe(r, body));
    }
    return OkStatus();
  }

  void AbortUpload(const Upload& u) {
    std::string body;
    (void)Send("DELETE", u.path, {{"uploadId", u.id}}, {}, "", &body);  // best effort
  }

  Status WriteMultipart(std::string_view key, std::string_view value) {
    ASSIGN_OR_RETURN(Upload u, StartUpload(key));
    const int64_t part = std::max<int64_t>(o_.part_size, 1);
    const int64_t parts = (static_cast<int64_t>(value.size()) + part - 1) / part;
    u.etags.resize(parts);
    u.bytes = static_cast<int64_t>(value.size());
    FirstError error;
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t i) {
      if (error.failed()) return;
      auto etag = UploadPart(u, i + 1, value.substr(i * part, part));
      if (!etag.ok()) return error.Set(etag.status());
      u.etags[i] = std::move(*etag);
    });
    Status st = error.Get();
    if (st.ok()) st = CompleteUpload(u);
    if (!st.ok()) AbortUpload(u);
    return st;
  }

  // Streams a value as a multipart upload, one part_size part at a time (a small value is one PUT on
  // Commit); dropped without Commit(), the upload is aborted and nothing appears.
  class Writer final : public KvWriter {
   public:
    Writer(S3KvStore* store, std::string key) : store_(store), key_(std::move(key)) {}
    ~Writer() override {
      if (upload_ && !done_) store_->AbortUpload(*upload_);
    }
    Status Append(std::string_view bytes) override {
      const size_t part = static_cast<size_t>(std::max<int64_t>(store_->o_.part_size, 1));
      while (!bytes.empty()) {
        size_t n = std::min(bytes.size(), part - buffer_.size());
        buffer_.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
        if (buffer_.size() == part) RETURN_IF_ERROR(Flush().Annotate(store_->ObjectUrl(key_)));
      }
      return OkStatus();
    }
    Status Commit() override {
      done_ = true;
      if (!upload_) return store_->Write(key_, buffer_, {});
      Status st = buffer_.empty() ? OkStatus() : Flush();
      if (st.ok()) st = store_->CompleteUpload(*upload_);
      if (!st.ok()) store_->AbortUpload(*upload_);
      return st.Annotate(store_->ObjectUrl(key_));
    }

   private:
    Status Flush() {
      if (!upload_) {
        ASSIGN_OR_RETURN(Upload u, store_->StartUpload(key_));
        upload_ = std::move(u);
      }
      ASSIGN_OR_RETURN(std::string etag,
                       store_->UploadPart(*upload_, static_cast<int64_t>(upload_->etags.size()) + 1, buffer_));
      upload_->etags.push_back(std::move(etag));
      upload_->bytes += static_cast<int64_t>(buffer_.size());
      buffer_.clear();
      return OkStatus();
    }

    S3KvStore* store_;
    const std::string key_;
    std::string buffer_;
    std::optional<Upload> upload_;
    bool done_ = false;
  };

  const std::string scheme_, bucket_, prefix_;
  const S3Options o_;
  HttpClient* http_;
  std::string base_;       // https://host[/bucket]
  std::string host_;       // host[:port] as signed
  std::string path_base_;  // "/bucket" (path style) or ""
};

Status ReadEnvBytes(const char* name, int64_t* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return OkStatus();
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x <= 0)
    return InvalidArgumentError(std::string("environment variable ") + name + "=\"" + v +
                                "\": expected a positive byte count");
  *out = x;
  return OkStatus();
}

// The value of `key` in [section] of an INI file (the AWS CLI's credentials and config files); nullopt
// when the file, section or key is absent.
std::optional<std::string> IniValue(const std::string& path, const std::string& section, const std::string& key) {
  std::ifstream f(path);
  std::string line, current;
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(f, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      current = trim(line.substr(1, line.size() - 2));
      continue;
    }
    size_t eq = line.find('=');
    if (current == section && eq != std::string::npos && trim(line.substr(0, eq)) == key)
      return trim(line.substr(eq + 1));
  }
  return std::nullopt;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Splits "s3://bucket/a/b/" into ("bucket", "a/b").
Status SplitBucketUrl(std::string_view url, std::string_view scheme, std::string* bucket, std::string* prefix) {
  std::string_view rest = url.substr(scheme.size() + 3);
  size_t slash = rest.find('/');
  *bucket = std::string(rest.substr(0, slash));
  *prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  while (!prefix->empty() && prefix->back() == '/') prefix->pop_back();
  if (bucket->empty()) return InvalidArgumentError("no bucket in store URL " + std::string(url));
  if (!prefix->empty()) {
    Status st = ValidateKey(*prefix);
    if (!st.ok()) return InvalidArgumentError("bad path in store URL " + std::string(url) + ": " + st.message());
  }
  return OkStatus();
}

}  // namespace

Result<S3Options> S3OptionsFromEnvironment() {
  S3Options o;
  o.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = Env("AWS_ENDPOINT_URL");
  if (!o.endpoint.empty() && o.endpoint.find("://") == std::string::npos) {
    return InvalidArgumentError("AWS_ENDPOINT_URL=\"" + o.endpoint + "\": expected http://host:port or https://host");
  }
  o.path_style = !o.endpoint.empty() && Env("JIGSAW_S3_VIRTUAL_HOSTS") != "1";
  // The environment first, then the shared files the AWS CLI writes (profile AWS_PROFILE, else "default").
  const std::string profile = Env("AWS_PROFILE").empty() ? "default" : Env("AWS_PROFILE");
  const std::string home = Env("HOME");
  const std::string credentials_file =
      !Env("AWS_SHARED_CREDENTIALS_FILE").empty() ? Env("AWS_SHARED_CREDENTIALS_FILE") : home + "/.aws/credentials";
  const std::string config_file = !Env("AWS_CONFIG_FILE").empty() ? Env("AWS_CONFIG_FILE") : home + "/.aws/config";
  if (!Env("AWS_REGION").empty())
    o.region = Env("AWS_REGION");
  else if (!Env("AWS_DEFAULT_REGION").empty())
    o.region = Env("AWS_DEFAULT_REGION");
  else if (auto r = IniValue(config_file, profile == "default" ? "default" : "profile " + profile, "region"))
    o.region = *r;
  o.credentials = {Env("AWS_ACCESS_KEY_ID"), Env("AWS_SECRET_ACCESS_KEY"), Env("AWS_SESSION_TOKEN")};
  if (o.credentials.access_key_id.empty() && o.credentials.secret_access_key.empty()) {
    o.credentials.access_key_id = IniValue(credentials_file, profile, "aws_access_key_id").value_or("");
    o.credentials.secret_access_key = IniValue(credentials_file, profile, "aws_secret_access_key").value_or("");
    o.credentials.session_token = IniValue(credentials_file, profile, "aws_session_token").value_or("");
  }
  o.anonymous =
      Env("JIGSAW_S3_ANONYMOUS") == "1" || Env("AWS_NO_SIGN_REQUEST") == "1" || Env("AWS_NO_SIGN_REQUEST") == "true";
  RETURN_IF_ERROR(ReadEnvBytes("JIGSAW_S3_MULTIPART_THRESHOLD", &o.multipart_threshold));
  RETURN_IF_ERROR(ReadEnvBytes("JIGSAW_S3_PART_SIZE", &o.part_size));
  RETURN_IF_ERROR(ReadEnvBytes("JIGSAW_S3_LIST_PAGE", &o.list_page));
  return o;
}

Result<std::unique_ptr<KvStore>> NewS3KvStore(std::string_view url, S3Options options) {
  std::string bucket, prefix;
  RETURN_IF_ERROR(SplitBucketUrl(url, "s3", &bucket, &prefix));
  // Checked up front: an endpoint of another scheme would otherwise be tried (and retried) by the HTTP client.
  if (!options.endpoint.empty() && !options.endpoint.starts_with("http://") &&
      !options.endpoint.starts_with("https://")) {
    return InvalidArgumentError(
        "S3 endpoint \"" + options.endpoint + "\" for " + std::string(url) +
        " is not an http:// or https:// URL (--s3-endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)");
  }
  if (!options.anonymous &&
      (options.credentials.access_key_id.empty() || options.credentials.secret_access_key.empty())) {
    return InvalidArgumentError(
        "no S3 credentials for " + std::string(url) +
        ": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_NO_SIGN_REQUEST=1 for a public bucket");
  }
  ASSIGN_OR_RETURN(HttpClient * http, SharedHttpClient());
  return std::unique_ptr<KvStore>(std::make_unique<S3KvStore>("s3", bucket, prefix, std::move(options), http));
}

Result<std::unique_ptr<KvStore>> NewGcsKvStore(std::string_view url) {
  std::string bucket, prefix;
  RETURN_IF_ERROR(SplitBucketUrl(url, "gs", &bucket, &prefix));
  S3Options o;
  o.endpoint = Env("JIGSAW_GCS_ENDPOINT").empty() ? "https://storage.googleapis.com" : Env("JIGSAW_GCS_ENDPOINT");
  o.path_style = true;
  o.anonymous = true;
  o.read_only = true;
  ASSIGN_OR_RETURN(HttpClient * http, SharedHttpClient());
  return std::unique_ptr<KvStore>(std::make_unique<S3KvStore>("gs", bucket, prefix, std::move(o), http));
}

}  // namespace jigsaw
