#include "storage/kvstore/faulty.h"

#include "storage/kvstore/forwarding.h"

namespace jigsaw {
namespace {

// A writer whose appends and commit ask the hook first.
class FaultyWriter final : public KvWriter {
 public:
  FaultyWriter(std::unique_ptr<KvWriter> base, const FaultHooks* hooks, std::string key)
      : base_(std::move(base)), hooks_(hooks), key_(std::move(key)) {}
  Status Append(std::string_view bytes) override {
    if (hooks_->before) RETURN_IF_ERROR(hooks_->before("append", key_));
    return base_->Append(bytes);
  }
  Status Commit() override {
    if (hooks_->before) RETURN_IF_ERROR(hooks_->before("commit", key_));
    return base_->Commit();
  }

 private:
  std::unique_ptr<KvWriter> base_;
  const FaultHooks* hooks_;
  std::string key_;
};

class FaultyKvStore final : public ForwardingKvStore {
 public:
  FaultyKvStore(KvStore* base, FaultHooks hooks) : ForwardingKvStore(base), hooks_(std::move(hooks)) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(Before("read", key));
    ASSIGN_OR_RETURN(ReadResult r, base()->Read(key, range));
    if (!r.missing && hooks_.mutate) hooks_.mutate(key, r.value);
    return r;
  }
  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    RETURN_IF_ERROR(Before("read", key));
    ASSIGN_OR_RETURN(bool found, base()->ReadInto(key, range, value));
    if (found && hooks_.mutate) hooks_.mutate(key, *value);
    return found;
  }
  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(Before("read", key));
    if (hooks_.mutate) return std::unique_ptr<MappedBytes>();  // callers then read, and see the mutation
    return base()->Map(key, range);
  }
  Status Write(std::string_view key, std::string_view value, WriteOptions o) override {
    RETURN_IF_ERROR(Before("write", key));
    return base()->Write(key, value, o);
  }
  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions o) override {
    RETURN_IF_ERROR(Before("open_writer", key));
    ASSIGN_OR_RETURN(auto writer, base()->OpenWriter(key, o));
    return std::unique_ptr<KvWriter>(std::make_unique<FaultyWriter>(std::move(writer), &hooks_, std::string(key)));
  }
  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(Before("delete", key));
    return base()->Delete(key);
  }
  Result<std::vector<ListEntry>> List(std::string_view prefix) override {
    RETURN_IF_ERROR(Before("list", prefix));
    return base()->List(prefix);
  }
  Result<bool> IsEmpty() override {
    RETURN_IF_ERROR(Before("list", ""));
    return base()->IsEmpty();
  }

 private:
  Status Before(std::string_view op, std::string_view key) {
    return hooks_.before ? hooks_.before(op, key) : OkStatus();
  }
  FaultHooks hooks_;
};

}  // namespace

std::unique_ptr<KvStore> NewFaultyKvStore(KvStore* base, FaultHooks hooks) {
  return std::make_unique<FaultyKvStore>(base, std::move(hooks));
}

}  // namespace jigsaw
