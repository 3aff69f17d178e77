#include "cmd/mt/output.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace mentat::mt {
namespace {

std::string& AuthHint() {
  static std::string hint = "set --token, MENTAT_TOKEN or token: in ~/.mentat/config";
  return hint;
}

std::string& ServerHint() {
  static std::string hint;
  return hint;
}

int Fd(Stream s) { return s == Stream::kOut ? STDOUT_FILENO : STDERR_FILENO; }

}  // namespace

bool IsTerminal(Stream s) {
  static const bool out = isatty(STDOUT_FILENO) == 1;
  static const bool err = isatty(STDERR_FILENO) == 1;
  return s == Stream::kOut ? out : err;
}

bool ColourEnabled(Stream s) {
  static const bool allowed = [] {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour && *no_colour) return false;
    const char* term = std::getenv("TERM");
    return !(term && std::string(term) == "dumb");
  }();
  return allowed && IsTerminal(s);
}

int TerminalWidth() {
  if (!IsTerminal(Stream::kOut)) return 0;
  winsize ws{};
  if (ioctl(Fd(Stream::kOut), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 80;
  return ws.ws_col;
}

std::string Paint(Stream s, const char* sgr, const std::string& text) {
  if (!ColourEnabled(s) || text.empty()) return text;
  return "\033[" + std::string(sgr) + "m" + text + "\033[0m";
}

void SetAuthHint(std::string hint) { AuthHint() = std::move(hint); }
void SetServerHint(std::string hint) { ServerHint() = std::move(hint); }

int ExitCodeFor(const Error& e) {
  switch (e.code()) {
    case Code::kUnavailable:
      return kExitUnavailable;
    case Code::kUnauthenticated:
      return kExitUnauthorized;
    case Code::kForbidden:
      // A policy refusal (security-profile admission) names the fields it refuses; a 403 for
      // the caller's identity names none.
      return e.details().empty() ? kExitUnauthorized : kExitError;
    default:
      return kExitError;
  }
}

int PrintError(const Error& e, const std::string& context) {
  int code = ExitCodeFor(e);
  std::string prefix = "error: ";
  std::string message = e.message();
  if (code == kExitUnauthorized) {
    prefix = e.code() == Code::kUnauthenticated ? "unauthorized: " : "forbidden: ";
    message += " (" +
               (e.code() == Code::kUnauthenticated
                    ? AuthHint()
                    : std::string("the token was accepted but may not do this")) +
               ")";
  } else if (code == kExitUnavailable && !ServerHint().empty()) {
    message += " (" + ServerHint() + ")";
  }
  std::cerr << Paint(Stream::kErr, colour::kRed, prefix) << (context.empty() ? "" : context + ": ")
            << message << "\n";
  for (const auto& d : e.details()) {
    std::string where = d.source;
    if (d.line > 0) {
      where += (where.empty() ? "line " : ":") + std::to_string(d.line);
      if (d.column > 0) where += ":" + std::to_string(d.column);
    }
    std::cerr << "  " << (where.empty() ? "" : where + ": ")
              << (d.field.empty() ? "" : d.field + ": ") << d.message << "\n";
  }
  return code;
}

int UsageError(const std::string& message) {
  std::cerr << Paint(Stream::kErr, colour::kRed, "error: ") << message
            << "\nRun with --help for more information.\n";
  return kExitUsage;
}

void PrintWarning(const std::string& message) {
  std::cerr << Paint(Stream::kErr, colour::kYellow, "warning: ") << message << "\n";
}

}  // namespace mentat::mt
