// CountingKvStore: counts the bytes read through it (the loader reports what it fetched).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "storage/kvstore/forwarding.h"

namespace jigsaw {

class CountingKvStore final : public ForwardingKvStore {
 public:
  using ForwardingKvStore::ForwardingKvStore;
  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    ASSIGN_OR_RETURN(ReadResult r, base()->Read(key, range));
    bytes_ += static_cast<int64_t>(r.value.size());
    return r;
  }
  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    ASSIGN_OR_RETURN(bool found, base()->ReadInto(key, range, value));
    if (found) bytes_ += static_cast<int64_t>(value->size());
    return found;
  }
  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    ASSIGN_OR_RETURN(auto mapped, base()->Map(key, range));
    if (mapped) bytes_ += static_cast<int64_t>(mapped->size());
    return mapped;
  }
  int64_t bytes() const { return bytes_.load(); }

 private:
  std::atomic<int64_t> bytes_{0};
};

}  // namespace jigsaw
