// What mt prints besides data: exit codes, the terminal (is it a TTY, may it have colour, how
// wide is it) and errors, with the file:line of every problem the server reported.
#pragma once

#include <string>

#include "apis/error.h"

namespace mentat::mt {

// Exit codes, documented in docs/cli.md ("Exit codes"). Scripts rely on them: keep them stable.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;         // the request failed; wait timed out; diff: changes
inline constexpr int kExitUsage = 2;         // bad flags or arguments: nothing was sent
inline constexpr int kExitUnavailable = 3;   // the server could not be reached: retry later
inline constexpr int kExitUnauthorized = 4;  // 401, or a 403 that is not a policy refusal

// The exit code for an error returned by the API client.
int ExitCodeFor(const Error& e);

enum class Stream { kOut, kErr };

// Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org) or TERM is
// "dumb". Decided once, from the real file descriptors.
bool IsTerminal(Stream s);
bool ColourEnabled(Stream s);
// Columns of the terminal on stdout; 0 when stdout is not a terminal.
int TerminalWidth();

namespace colour {
inline constexpr const char* kRed = "31";
inline constexpr const char* kGreen = "32";
inline constexpr const char* kYellow = "33";
inline constexpr const char* kCyan = "36";
inline constexpr const char* kBold = "1";
}  // namespace colour
// `text` wrapped in the SGR code when colour is enabled for `s`, else `text` unchanged.
std::string Paint(Stream s, const char* sgr, const std::string& text);

// Said after "unauthorized:": how the token was (not) given, e.g. "the token from
// MENTAT_TOKEN was refused". Set once the configuration is resolved.
void SetAuthHint(std::string hint);
// Said after "cannot reach the server" errors: where the address came from.
void SetServerHint(std::string hint);

// Prints "error: [context: ]message" and then one line per detail, compiler style:
// "  file:line:column: field: message". 401 and 403-without-details print as
// "unauthorized:" / "forbidden:" with the auth hint. Returns the exit code for `e`.
int PrintError(const Error& e, const std::string& context = "");

// "error: message" and a pointer to --help; returns kExitUsage.
int UsageError(const std::string& message);

void PrintWarning(const std::string& message);

}  // namespace mentat::mt
