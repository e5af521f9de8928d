// A kvstore decorator for tests: forwards every call to `base` after asking `before(op, key)`, which may
// return an error to inject; `mutate` may change the bytes a read returns (to simulate corruption; a
// mutating store does not map, so that mapped reads see it too). The hooks are called from many threads.
#pragma once

#include <functional>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

struct FaultHooks {
  // op is "read" (Read, ReadInto, Map), "write", "open_writer", "append" and "commit" (a writer's), "delete"
  // or "list"; a non-OK status is returned instead of calling base.
  std::function<Status(std::string_view op, std::string_view key)> before;
  std::function<void(std::string_view key, std::string& value)> mutate;
};

std::unique_ptr<KvStore> NewFaultyKvStore(KvStore* base, FaultHooks hooks);

}  // namespace jigsaw
