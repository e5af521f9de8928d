#include "storage/kvstore/io_threads.h"

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <map>
#include <memory>
#include <mutex>

namespace jigsaw {

void RunWithIoThreads(int io_threads, const std::function<void()>& fn) {
  if (io_threads <= 0 || tbb::this_task_arena::max_concurrency() >= io_threads) return fn();
  static std::mutex mu;
  static std::unique_ptr<tbb::global_control> limit;
  static std::map<int, std::unique_ptr<tbb::task_arena>> arenas;
  tbb::task_arena* arena;
  {
    std::lock_guard lock(mu);
    if (!limit) {
      limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    tbb::info::default_concurrency() + io_threads);
    }
    auto& a = arenas[io_threads];
    if (!a) a = std::make_unique<tbb::task_arena>(io_threads);
    arena = a.get();
  }
  arena->execute([&] { tbb::this_task_arena::isolate(fn); });
}

}  // namespace jigsaw
