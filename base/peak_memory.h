// This process's peak resident memory so far (what tools print as "peak memory").
#pragma once

#include <sys/resource.h>

#include <cstdint>

namespace jigsaw {

inline int64_t PeakRssBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // ru_maxrss is in KiB on Linux
}

}  // namespace jigsaw
