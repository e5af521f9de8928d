#include "storage/kvstore/forwarding.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {
namespace {

class PrefixedKvStore final : public ForwardingKvStore {
 public:
  PrefixedKvStore(KvStore* base, std::string prefix) : ForwardingKvStore(base), prefix_(std::move(prefix)) {}
  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    return base()->Read(JoinKey(prefix_, key), range);
  }
  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    return base()->ReadInto(JoinKey(prefix_, key), range, value);
  }
  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    return base()->Map(JoinKey(prefix_, key), range);
  }
  Status Write(std::string_view key, std::string_view value, WriteOptions o) override {
    return base()->Write(JoinKey(prefix_, key), value, o);
  }
  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions options) override {
    RETURN_IF_ERROR(ValidateKey(key));
    return base()->OpenWriter(JoinKey(prefix_, key), options);
  }
  Status Delete(std::string_view key) override { return base()->Delete(JoinKey(prefix_, key)); }
  Result<std::vector<ListEntry>> List(std::string_view prefix) override {
    std::string full = prefix_.empty() ? std::string(prefix) : prefix_ + "/" + std::string(prefix);
    ASSIGN_OR_RETURN(auto entries, base()->List(full));
    size_t strip = prefix_.empty() ? 0 : prefix_.size() + 1;
    for (auto& e : entries) e.key = e.key.substr(strip);
    return entries;
  }
  Result<bool> IsEmpty() override { return KvStore::IsEmpty(); }  // under the prefix, not the base's
  std::string url() const override { return JoinKey(base()->url(), prefix_); }

 private:
  std::string prefix_;
};

}  // namespace

std::unique_ptr<KvStore> NewPrefixedKvStore(KvStore* base, std::string prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return std::make_unique<PrefixedKvStore>(base, std::move(prefix));
}

}  // namespace jigsaw
