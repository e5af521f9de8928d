// A kvstore decorator for tests: forwards every call to `base` after asking `before(op, key)`, which may
// return an error to inject; `mutate` may change the bytes a read returns (to simulate corruption).
#pragma once

#include <functional>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

struct FaultHooks {
  // op is "read", "write", "delete" or "list"; a non-OK status is returned instead of calling base.
  std::function<Status(std::string_view op, std::string_view key)> before;
  std::function<void(std::string_view key, std::string& value)> mutate;
};

std::unique_ptr<KvStore> NewFaultyKvStore(KvStore* base, FaultHooks hooks);

}  // namespace jigsaw
