#include "apis/error.h"

#include <cstring>

namespace mentat {
namespace {

struct CodeInfo {
  Code code;
  int http;
  const char* reason;
};

constexpr CodeInfo kCodes[] = {
    {Code::kOk, 200, "OK"},
    {Code::kInvalidArgument, 400, "Invalid"},
    {Code::kNotFound, 404, "NotFound"},
    {Code::kAlreadyExists, 409, "AlreadyExists"},
    {Code::kConflict, 409, "Conflict"},
    {Code::kGone, 410, "Gone"},
    {Code::kForbidden, 403, "Forbidden"},
    {Code::kUnauthenticated, 401, "Unauthorized"},
    {Code::kFailedPrecondition, 400, "FailedPrecondition"},
    {Code::kTooLarge, 413, "RequestEntityTooLarge"},
    {Code::kUnavailable, 503, "ServiceUnavailable"},
    {Code::kInternal, 500, "InternalError"},
};

const CodeInfo& Info(Code code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info;
  }
  return kCodes[sizeof(kCodes) / sizeof(kCodes[0]) - 1];
}

}  // namespace

int Error::HttpStatus() const { return Info(code_).http; }
std::string Error::Reason() const { return Info(code_).reason; }

std::string Error::ToString() const {
  std::string out = message_;
  for (const auto& d : details_) {
    out += "\n  ";
    if (!d.source.empty()) {
      out += d.source;
      if (d.line > 0) out += ":" + std::to_string(d.line) + (d.column > 0 ? ":" + std::to_string(d.column) : "");
      out += ": ";
    }
    out += d.field.empty() ? std::string("(document)") : d.field;
    if (d.line > 0 && d.source.empty()) {
      out += " (line " + std::to_string(d.line);
      if (d.column > 0) out += ":" + std::to_string(d.column);
      out += ")";
    }
    out += ": " + d.message;
  }
  return out;
}

nlohmann::json Error::ToJson() const {
  nlohmann::json details = nlohmann::json::array();
  for (const auto& d : details_) {
    nlohmann::json j = {{"field", d.field}, {"message", d.message}};
    if (!d.source.empty()) j["source"] = d.source;
    if (d.line > 0) j["line"] = d.line;
    if (d.column > 0) j["column"] = d.column;
    details.push_back(std::move(j));
  }
  return {{"code", HttpStatus()}, {"reason", Reason()}, {"message", message_}, {"details", details}};
}

Error Error::FromJson(int http_status, const std::string& body) {
  Code code = Code::kInternal;
  for (const auto& info : kCodes) {
    if (info.http == http_status) {
      code = info.code;
      break;
    }
  }
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("message")) {
    return Error(code, "HTTP " + std::to_string(http_status) + ": " + body.substr(0, 200));
  }
  std::string reason = j.value("reason", "");
  for (const auto& info : kCodes) {
    if (info.http == http_status && reason == info.reason) code = info.code;
  }
  std::vector<FieldError> details;
  if (j.contains("details") && j["details"].is_array()) {
    for (const auto& d : j["details"]) {
      if (!d.is_object()) continue;
      FieldError fe(d.value("field", ""), d.value("line", 0), d.value("column", 0),
                    d.value("message", ""));
      fe.source = d.value("source", "");
      details.push_back(std::move(fe));
    }
  }
  return Error(code, j.value("message", ""), std::move(details));
}

std::unexpected<Error> ErrnoError(const std::string& what, int err) {
  Code code = (err == ENOENT) ? Code::kNotFound : Code::kInternal;
  return MakeError(code, what + ": " + std::strerror(err));
}

}  // namespace mentat
