// What the C API's files share: every entry point runs its body through Guard, which turns a Status (or
// any exception) into the documented code and message. Internal to plugins/c_api/.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "base/status.h"
#include "plugins/c_api/jigsaw_c.h"

namespace jigsaw::c_api {

inline int Report(const jigsaw::Status& s, char** errptr) {
  if (s.ok()) return 0;
  if (errptr) *errptr = strdup(s.message().c_str());
  return static_cast<int>(s.code());
}

template <typename Fn>
int Guard(char** errptr, Fn fn) {
  try {
    return Report(fn(), errptr);
  } catch (const std::exception& e) {
    return Report(jigsaw::InternalError(std::string("unexpected exception: ") + e.what()), errptr);
  } catch (...) {
    return Report(jigsaw::InternalError("unexpected exception"), errptr);
  }
}

}  // namespace jigsaw::c_api
