// Test data shared by the C++ tests: known values whose position is their value.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace jigsaw::testdata {

// n float32 values 0, 1, ..., n-1 as raw little-endian bytes (element i holds i).
inline std::string Iota(int64_t n) {
  std::string s(n * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    std::memcpy(&s[i * 4], &f, 4);
  }
  return s;
}

}  // namespace jigsaw::testdata
