#include "base/status.h"

#include <cstring>

namespace jigsaw {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kIo: return "IO_ERROR";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  // Context is added once: a message that already starts with it (a store URL named by the store
  // itself, then again by its caller) is left as it is.
  if (message_.starts_with(std::string(context) + ": ") || message_.starts_with(std::string(context) + "/"))
    return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status ErrnoToStatus(int err, std::string_view what) {
  StatusCode code = StatusCode::kIo;
  if (err == ENOENT) code = StatusCode::kNotFound;
  if (err == EINVAL || err == ENAMETOOLONG) code = StatusCode::kInvalidArgument;
  return Status(code, std::string(what) + ": " + std::strerror(err));
}

}  // namespace jigsaw
