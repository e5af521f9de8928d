// Checked reads of integer fields in JSON metadata. nlohmann's own conversions are undefined behaviour for
// floats out of an integer's range (and silently truncate others), so every integer from a file goes
// through these.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

inline Result<int64_t> AsInt(const nlohmann::json& v, std::string_view what,
                             int64_t lo = std::numeric_limits<int64_t>::min(),
                             int64_t hi = std::numeric_limits<int64_t>::max()) {
  int64_t x;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgumentError(std::string(what) + " " + v.dump() + " is out of range");
    }
    x = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else {
    return InvalidArgumentError(std::string(what) + " must be an integer, not " + v.dump());
  }
  if (x < lo || x > hi) return InvalidArgumentError(std::string(what) + " " + v.dump() + " is out of range");
  return x;
}

// The integer field `key` of `obj`, or `def` when absent.
inline Result<int64_t> IntField(const nlohmann::json& obj, std::string_view key, int64_t def,
                                int64_t lo = std::numeric_limits<int64_t>::min(),
                                int64_t hi = std::numeric_limits<int64_t>::max()) {
  if (!obj.is_object()) return InvalidArgumentError("expected a JSON object holding \"" + std::string(key) + "\"");
  auto it = obj.find(key);
  if (it == obj.end()) return def;
  return AsInt(*it, "\"" + std::string(key) + "\"", lo, hi);
}

inline Result<std::vector<int64_t>> IntList(const nlohmann::json& v, std::string_view what, int64_t lo = 0,
                                            int64_t hi = std::numeric_limits<int64_t>::max()) {
  if (!v.is_array()) return InvalidArgumentError(std::string(what) + " must be a list of integers");
  std::vector<int64_t> out;
  for (const auto& e : v) {
    ASSIGN_OR_RETURN(int64_t x, AsInt(e, what, lo, hi));
    out.push_back(x);
  }
  return out;
}

}  // namespace jigsaw
