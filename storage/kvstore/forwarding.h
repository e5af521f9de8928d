// ForwardingKvStore: a KvStore that passes every call to another one (LevelDB's EnvWrapper is the model).
// Decorators (a key prefix, fault injection, byte counting) derive from it and override only what they
// change, so that a method added to KvStore reaches the base through all of them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

class ForwardingKvStore : public KvStore {
 public:
  explicit ForwardingKvStore(KvStore* base) : base_(base) {}
  // Owning: `base` lives as long as this store.
  explicit ForwardingKvStore(std::unique_ptr<KvStore> base) : owned_(std::move(base)), base_(owned_.get()) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override { return base_->Read(key, range); }
  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    return base_->ReadInto(key, range, value);
  }
  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    return base_->Map(key, range);
  }
  Status Write(std::string_view key, std::string_view value, WriteOptions options) override {
    return base_->Write(key, value, options);
  }
  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions options) override {
    return base_->OpenWriter(key, options);
  }
  Status Delete(std::string_view key) override { return base_->Delete(key); }
  Result<std::vector<ListEntry>> List(std::string_view prefix) override { return base_->List(prefix); }
  Result<bool> IsEmpty() override { return base_->IsEmpty(); }
  std::string url() const override { return base_->url(); }
  int io_threads() const override { return base_->io_threads(); }

 protected:
  KvStore* base() const { return base_; }

 private:
  std::unique_ptr<KvStore> owned_;
  KvStore* base_;
};

}  // namespace jigsaw
