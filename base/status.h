// Status and Result<T>: how every jigsaw library call reports failure.
//
// A Status is either OK or a code plus a readable message. Context (the store, the key, the variable) is
// added once, at the boundary where it is known, with Annotate(); lower layers say only what went wrong.
// Result<T> holds a value or a non-OK Status. Neither throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace jigsaw {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from the caller or a file: malformed metadata, bad flag, bad key
  kNotFound,            // a store, array or group that must exist does not
  kDataLoss,            // stored bytes are corrupt: checksum mismatch, truncated or oversized chunk
  kIo,                  // the operating system or network failed
  kUnimplemented,       // valid input that jigsaw does not support (named in the message)
  kFailedPrecondition,  // the operation does not fit the current state (e.g. existing store in the way)
  kOutOfRange,          // a byte range or box outside the object
  kInternal,            // a bug in jigsaw
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns this status with "context: " put before the message; OK stays OK, and so does a message that
  // already starts with the context.
  Status Annotate(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIo, std::move(m)}; }
inline Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// The one place errno becomes a Status: "<what>: <strerror>".
Status ErrnoToStatus(int err, std::string_view what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                                              // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

namespace internal {
inline Status AsStatus(Status s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace jigsaw

#define JIGSAW_CONCAT_INNER(a, b) a##b
#define JIGSAW_CONCAT(a, b) JIGSAW_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                                    \
  do {                                                           \
    ::jigsaw::Status _st = ::jigsaw::internal::AsStatus((expr)); \
    if (!_st.ok()) return _st;                                   \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

// Declares its temporary in the enclosing scope: as the body of an if or a loop it needs braces.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(JIGSAW_CONCAT(_res_, __LINE__), lhs, expr)
