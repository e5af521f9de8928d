#include "storage/kvstore/faulty.h"

namespace jigsaw {
namespace {

class FaultyKvStore final : public KvStore {
 public:
  FaultyKvStore(KvStore* base, FaultHooks hooks) : base_(base), hooks_(std::move(hooks)) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(Before("read", key));
    ASSIGN_OR_RETURN(ReadResult r, base_->Read(key, range));
    if (!r.missing && hooks_.mutate) hooks_.mutate(key, r.value);
    return r;
  }
  Status Write(std::string_view key, std::string_view value, WriteOptions o) override {
    RETURN_IF_ERROR(Before("write", key));
    return base_->Write(key, value, o);
  }
  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(Before("delete", key));
    return base_->Delete(key);
  }
  Result<std::vector<ListEntry>> List(std::string_view prefix) override {
    RETURN_IF_ERROR(Before("list", prefix));
    return base_->List(prefix);
  }
  std::string url() const override { return base_->url(); }
  int io_threads() const override { return base_->io_threads(); }

 private:
  Status Before(std::string_view op, std::string_view key) {
    return hooks_.before ? hooks_.before(op, key) : OkStatus();
  }
  KvStore* base_;
  FaultHooks hooks_;
};

}  // namespace

std::unique_ptr<KvStore> NewFaultyKvStore(KvStore* base, FaultHooks hooks) {
  return std::make_unique<FaultyKvStore>(base, std::move(hooks));
}

}  // namespace jigsaw
