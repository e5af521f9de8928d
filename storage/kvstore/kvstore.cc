#include "storage/kvstore/kvstore.h"

#include <sys/mman.h>

#include <map>

namespace jigsaw {

std::string ByteRange::ToString() const {
  if (suffix_length >= 0) return "bytes=-" + std::to_string(suffix_length);
  std::string s = "bytes=" + std::to_string(inclusive_min) + "-";
  if (exclusive_max >= 0) s += std::to_string(exclusive_max - 1);
  return s;
}

namespace {

class BufferingWriter final : public KvWriter {
 public:
  BufferingWriter(KvStore* store, std::string key, WriteOptions options)
      : store_(store), key_(std::move(key)), options_(options) {}
  Status Append(std::string_view bytes) override {
    value_.append(bytes);
    return OkStatus();
  }
  Status Commit() override { return store_->Write(key_, value_, options_); }

 private:
  KvStore* store_;
  const std::string key_;
  const WriteOptions options_;
  std::string value_;
};

}  // namespace

Result<std::unique_ptr<KvWriter>> KvStore::OpenWriter(std::string_view key, WriteOptions options) {
  RETURN_IF_ERROR(ValidateKey(key));
  return std::unique_ptr<KvWriter>(std::make_unique<BufferingWriter>(this, std::string(key), options));
}

Result<bool> KvStore::IsEmpty() {
  ASSIGN_OR_RETURN(auto keys, List(""));
  return keys.empty();
}

Status RequireEmpty(KvStore* store) {
  auto empty = store->IsEmpty();
  if (empty.ok() && !*empty) {
    return FailedPreconditionError(store->url() + " is not empty; choose a new destination");
  }
  return OkStatus();
}

Result<ReadResult> ReadThroughReadInto(KvStore* store, std::string_view key, ByteRange range) {
  ReadResult r;
  ASSIGN_OR_RETURN(bool found, store->ReadInto(key, range, &r.value));
  r.missing = !found;
  return r;
}

MappedBytes::~MappedBytes() { ::munmap(base_, length_); }

Result<std::unique_ptr<MappedBytes>> KvStore::Map(std::string_view, ByteRange) {
  return std::unique_ptr<MappedBytes>();
}

Result<bool> KvStore::ReadInto(std::string_view key, ByteRange range, std::string* value) {
  ASSIGN_OR_RETURN(ReadResult r, Read(key, range));
  *value = std::move(r.value);
  return !r.missing;
}

Status ValidateKey(std::string_view key) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("invalid key \"" + std::string(key) + "\": " + std::string(why));
  };
  if (key.empty()) return bad("empty");
  if (key.front() == '/') return bad("absolute path");
  if (key.find('\\') != std::string_view::npos) return bad("backslash");
  if (key.find('\0') != std::string_view::npos) return bad("NUL byte");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty()) return bad("empty path segment");
    if (seg == "." || seg == "..") return bad("'.' or '..' segment");
    start = end + 1;
  }
  return OkStatus();
}

Result<std::pair<int64_t, int64_t>> ResolveByteRange(const ByteRange& r, int64_t size) {
  if (r.suffix_length >= 0) return std::make_pair(std::max<int64_t>(0, size - r.suffix_length), size);
  int64_t end = r.exclusive_max < 0 ? size : r.exclusive_max;
  if (r.inclusive_min < 0 || r.inclusive_min > end || end > size) {
    return OutOfRangeError("byte range " + r.ToString() + " outside a value of " + std::to_string(size) + " bytes");
  }
  return std::make_pair(r.inclusive_min, end);
}

std::string JoinKey(std::string_view a, std::string_view b) {
  while (!a.empty() && a.back() == '/') a.remove_suffix(1);
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  return std::string(a) + "/" + std::string(b);
}

}  // namespace jigsaw
