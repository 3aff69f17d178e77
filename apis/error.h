// The one error type of Mentat. Every fallible function returns Result<T> (std::expected),
// never throws across a module boundary. The JSON form of Error is the API's error body:
// {code, reason, message, details:[{field, line?, column?, message}]}.
#pragma once

#include <expected>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mentat {

// What the caller should do is decided by the code (STYLE.md, "Errors are values").
enum class Code {
  kOk = 0,
  kInvalidArgument,     // do not retry; report (400)
  kNotFound,            // 404
  kAlreadyExists,       // 409
  kConflict,            // stale resourceVersion: re-read and retry now (409)
  kGone,                // watch revision compacted: re-list (410)
  kForbidden,           // policy (403)
  kUnauthenticated,     // 401
  kFailedPrecondition,  // do not retry until the world changes (412 on the wire -> 400)
  kTooLarge,            // body over the limit (413)
  kUnavailable,         // retry later with backoff (503)
  kInternal,            // a bug or an I/O failure (500)
};

struct FieldError {
  std::string field;  // dotted path, e.g. "spec.resources.memory"
  std::string source;  // the file the document came from, when known
  int line = 0;       // 1-based line in the YAML document, 0 when unknown
  int column = 0;     // 1-based column, 0 when unknown
  std::string message;

  FieldError() = default;
  FieldError(std::string f, int l, int c, std::string m)
      : field(std::move(f)), line(l), column(c), message(std::move(m)) {}
};

class Error {
 public:
  Error() = default;
  Error(Code code, std::string message, std::vector<FieldError> details = {})
      : code_(code), message_(std::move(message)), details_(std::move(details)) {}

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::vector<FieldError>& details() const { return details_; }
  std::vector<FieldError>& mutable_details() { return details_; }

  int HttpStatus() const;
  // The Kubernetes-style reason word: "Invalid", "NotFound", "Conflict", ...
  std::string Reason() const;
  // message plus one line per detail: "field (line L:C): message".
  std::string ToString() const;

  nlohmann::json ToJson() const;
  // Rebuilds an Error from an API error body; falls back to the HTTP status.
  static Error FromJson(int http_status, const std::string& body);

 private:
  Code code_ = Code::kInternal;
  std::string message_;
  std::vector<FieldError> details_;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> MakeError(Code code, std::string message,
                                        std::vector<FieldError> details = {}) {
  return std::unexpected(Error(code, std::move(message), std::move(details)));
}
inline std::unexpected<Error> InvalidArgument(std::string m) {
  return MakeError(Code::kInvalidArgument, std::move(m));
}
inline std::unexpected<Error> NotFound(std::string m) {
  return MakeError(Code::kNotFound, std::move(m));
}
inline std::unexpected<Error> Conflict(std::string m) {
  return MakeError(Code::kConflict, std::move(m));
}
inline std::unexpected<Error> Internal(std::string m) {
  return MakeError(Code::kInternal, std::move(m));
}
inline std::unexpected<Error> Unavailable(std::string m) {
  return MakeError(Code::kUnavailable, std::move(m));
}
inline std::unexpected<Error> FailedPrecondition(std::string m) {
  return MakeError(Code::kFailedPrecondition, std::move(m));
}
// errno-carrying helper for syscalls: "what: strerror(errno)".
std::unexpected<Error> ErrnoError(const std::string& what, int err);

}  // namespace mentat

#define MT_CONCAT_INNER_(a, b) a##b
#define MT_CONCAT_(a, b) MT_CONCAT_INNER_(a, b)

// Returns the error of a Result/Status expression from the enclosing function.
#define MT_RETURN_IF_ERROR(expr)                                 \
  do {                                                           \
    auto mt_status_ = (expr);                                    \
    if (!mt_status_.has_value()) return std::unexpected(std::move(mt_status_.error())); \
  } while (0)

// MT_ASSIGN_OR_RETURN(auto x, Foo()); declares x from a Result or returns its error.
#define MT_ASSIGN_OR_RETURN(lhs, expr) \
  MT_ASSIGN_OR_RETURN_IMPL_(MT_CONCAT_(mt_result_, __LINE__), lhs, expr)
#define MT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)                      \
  auto tmp = (expr);                                                   \
  if (!tmp.has_value()) return std::unexpected(std::move(tmp.error())); \
  lhs = std::move(*tmp)
