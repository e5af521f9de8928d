// The reference kvstore: a sorted map under a mutex. Every other backend must behave like this one
// (tests/storage/kvstore/kvstore_conformance_test.cc runs the same checks against each).
#include <map>
#include <mutex>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {
namespace {

struct MemoryData {
  std::mutex mu;
  std::map<std::string, std::string, std::less<>> values;  // guarded by mu
};

class MemoryKvStore final : public KvStore {
 public:
  MemoryKvStore(std::string name, std::shared_ptr<MemoryData> data) : name_(std::move(name)), data_(std::move(data)) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(data_->mu);
    auto it = data_->values.find(key);
    if (it == data_->values.end()) return ReadResult{true, {}};
    auto span = ResolveByteRange(range, it->second.size());
    if (!span.ok()) return span.status().Annotate(url() + "/" + std::string(key));
    return ReadResult{false, it->second.substr(span->first, span->second - span->first)};
  }

  Status Write(std::string_view key, std::string_view value, WriteOptions options) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(data_->mu);
    if (options.if_absent && data_->values.count(std::string(key)))
      return FailedPreconditionError(url() + "/" + std::string(key) + " already exists");
    data_->values.insert_or_assign(std::string(key), std::string(value));
    return OkStatus();
  }

  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::lock_guard lock(data_->mu);
    auto it = data_->values.find(key);
    if (it != data_->values.end()) data_->values.erase(it);
    return OkStatus();
  }

  Result<std::vector<ListEntry>> List(std::string_view prefix) override {
    std::lock_guard lock(data_->mu);
    std::vector<ListEntry> out;
    for (auto it = data_->values.lower_bound(prefix); it != data_->values.end(); ++it) {
      if (!it->first.starts_with(prefix)) break;
      out.push_back({it->first, static_cast<int64_t>(it->second.size())});
    }
    return out;
  }

  std::string url() const override { return "memory://" + name_; }

 private:
  std::string name_;
  std::shared_ptr<MemoryData> data_;
};

}  // namespace

std::unique_ptr<KvStore> NewMemoryKvStore(std::string_view name) {
  if (name.empty()) return std::make_unique<MemoryKvStore>("", std::make_shared<MemoryData>());
  static std::mutex mu;
  static auto* registry = new std::map<std::string, std::shared_ptr<MemoryData>, std::less<>>();
  std::lock_guard lock(mu);
  auto& data = (*registry)[std::string(name)];
  if (!data) data = std::make_shared<MemoryData>();
  return std::make_unique<MemoryKvStore>(std::string(name), data);
}

}  // namespace jigsaw
