// URL dispatch: the one place that knows every backend (kvstore.cc knows none of them).
#include "storage/kvstore/http/http_kvstore.h"
#include "storage/kvstore/kvstore.h"
#include "storage/kvstore/s3/s3_kvstore.h"

namespace jigsaw {

Result<std::unique_ptr<KvStore>> OpenKvStore(std::string_view url) {
  if (url.starts_with("memory://")) return NewMemoryKvStore(url.substr(9));
  if (url.starts_with("file://")) {
    std::string_view path = url.substr(7);
    if (path.empty() || path.front() != '/') {
      return InvalidArgumentError("file URL must be absolute (file:///path): " + std::string(url));
    }
    return NewFileKvStore(std::string(path));
  }
  if (url.starts_with("s3://")) {
    ASSIGN_OR_RETURN(auto options, S3OptionsFromEnvironment());
    return NewS3KvStore(url, std::move(options));
  }
  if (url.starts_with("gs://")) return NewGcsKvStore(url);
  if (url.starts_with("http://") || url.starts_with("https://")) return NewHttpKvStore(url);
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    return UnimplementedError("unsupported store URL scheme \"" + std::string(url.substr(0, scheme)) + "://\" in " +
                              std::string(url) + " (supported: paths, file://, s3://, gs://, http(s)://, memory://)");
  }
  if (url.empty()) return InvalidArgumentError("empty store path");
  return NewFileKvStore(std::string(url));
}

}  // namespace jigsaw
