// Enough threads to keep a remote store's requests in flight.
//
// jigsaw's parallel loops are TBB loops whose bodies read or write a kvstore. On local disk the cores are
// the limit, and TBB's default arena (one thread per core) is right. Against HTTP or S3 each request
// mostly waits, so a loop needs as many threads as requests it should keep in flight:
// RunWithIoThreads(store, fn) runs fn (which starts the loop) in a process-wide arena of
// store.io_threads() threads, isolated, and raises TBB's process-wide thread limit once to allow it
// (a smaller limit set by the caller, e.g. a --threads flag, still wins). For local stores fn runs
// where it is.
#pragma once

#include <functional>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

void RunWithIoThreads(int io_threads, const std::function<void()>& fn);
inline void RunWithIoThreads(const KvStore& store, const std::function<void()>& fn) {
  RunWithIoThreads(store.io_threads(), fn);
}

}  // namespace jigsaw
