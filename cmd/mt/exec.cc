// mt exec: runs a command inside a running allocation (as `kubectl exec` / `docker exec`),
// through the server, which relays to the agent of its node; mt never calls an agent itself.
// The session API is plain HTTP: create the session, stream its output (JSON lines of base64
// data, then the exit code), post stdin and terminal sizes. mt exits with the command's exit
// code.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "apis/base64.h"
#include "apis/object.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

// The terminal as it was before raw mode, restored on every way out: a normal return, an
// error, and a fatal signal (the handler restores it, then the signal takes its course).
termios saved_termios;
std::atomic<bool> raw_mode{false};

void RestoreTerminal() {
  if (raw_mode.exchange(false)) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
}

void OnFatalSignal(int sig) {
  RestoreTerminal();  // tcsetattr is async-signal-safe
  signal(sig, SIG_DFL);
  raise(sig);
}

struct RawTerminal {
  RawTerminal() {
    if (tcgetattr(STDIN_FILENO, &saved_termios) != 0) return;
    termios raw = saved_termios;
    cfmakeraw(&raw);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) signal(sig, OnFatalSignal);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) raw_mode = true;
  }
  ~RawTerminal() { RestoreTerminal(); }
};

std::pair<int, int> TerminalSize() {
  winsize ws{};
  for (int fd : {STDIN_FILENO, STDOUT_FILENO}) {
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
      return {ws.ws_row, ws.ws_col};
    }
  }
  return {24, 80};
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// NAME as an allocation, or else the first running allocation of the service NAME.
Result<std::string> ResolveTarget(ApiClient& client, const std::string& ns, const std::string& name) {
  RequestOptions ro;
  ro.ns = ns;
  auto a = client.Get("allocations", name, ro);
  if (a) return name;
  if (a.error().code() != Code::kNotFound) return std::unexpected(a.error());
  auto svc = client.Get("services", name, ro);
  if (!svc) {
    if (svc.error().code() != Code::kNotFound) return std::unexpected(svc.error());
    return MakeError(Code::kNotFound,
                     "no allocation or service named \"" + name + "\" in namespace " + ns);
  }
  RequestOptions sel = ro;
  sel.label_selector = std::string(kLabelService) + "=" + name;
  MT_ASSIGN_OR_RETURN(Json list, client.List("allocations", sel));
  std::vector<std::string> running;
  for (const auto& item : list["items"]) {
    if (item.value("status", Json::object()).value("phase", "") == "Running") {
      running.push_back(NameOf(item));
    }
  }
  if (running.empty()) {
    return MakeError(Code::kNotFound, "service " + name + " has no running allocation");
  }
  std::sort(running.begin(), running.end());
  std::cerr << "mt: running in allocation " << running[0] << " of service " << name << "\n";
  return running[0];
}

// What the stdin and SIGWINCH threads share. They are detached (a read of the terminal cannot
// be interrupted), so they own what they use.
struct Forwarder {
  std::unique_ptr<ApiClient> server;
  std::string session;
};

void ForwardStdin(std::shared_ptr<Forwarder> f) {
  char buf[16384];
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    auto st = f->server->PostRaw("/v1/exec/" + f->session + "/input",
                                std::string(buf, static_cast<size_t>(n)), "application/octet-stream");
    if (!st) return;  // the session has ended: nothing left to type into
  }
  f->server->PostRaw("/v1/exec/" + f->session + "/input?eof=true", "", "application/octet-stream");
}

// SIGWINCH is blocked in every thread (see RunExec) and taken here, synchronously.
void ForwardResizes(std::shared_ptr<Forwarder> f) {
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  int sig = 0;
  while (sigwait(&winch, &sig) == 0) {
    auto [rows, cols] = TerminalSize();
    f->server->PostRaw("/v1/exec/" + f->session + "/resize",
                      Json{{"rows", rows}, {"cols", cols}}.dump());
  }
}

}  // namespace

int RunExec(ApiClient& client, const ClientOptions& co, const ExecFlags& flags) {
  if (flags.command.empty()) return UsageError("a command is required: mt exec NAME -- COMMAND [ARGS...]");
  auto alloc = ResolveTarget(client, flags.ns, flags.target);
  if (!alloc) return PrintError(alloc.error());
  auto fwd = std::make_shared<Forwarder>();
  auto server = ApiClient::Create(client.servers(), co);
  if (!server) return PrintError(server.error());
  fwd->server = std::move(*server);

  bool local_tty = isatty(STDIN_FILENO) == 1;
  auto [rows, cols] = TerminalSize();
  Json request = {{"command", flags.command}, {"tty", flags.tty}, {"stdin", flags.stdin},
                  {"rows", rows}, {"cols", cols}};
  auto created = fwd->server->PostRaw("/v1/allocations/" + *alloc + "/exec?namespace=" + flags.ns,
                                     request.dump());
  if (!created) return PrintError(created.error(), "exec in " + *alloc);
  fwd->session = created->value("id", "");

  // Blocked before any thread starts, so that only ForwardResizes ever takes it.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  pthread_sigmask(SIG_BLOCK, &winch, nullptr);
  std::unique_ptr<RawTerminal> raw;
  if (flags.tty && local_tty) {
    raw = std::make_unique<RawTerminal>();
    std::thread(ForwardResizes, fwd).detach();
  }
  if (flags.stdin) std::thread(ForwardStdin, fwd).detach();

  std::optional<int> exit_code;
  std::optional<Error> lost;  // the server lost the agent before the command ended
  std::string partial;
  bool bad_line = false;
  auto st = fwd->server->GetStream(
      "/v1/exec/" + fwd->session + "/output", [&](const char* d, size_t n) {
        partial.append(d, n);
        size_t nl;
        while ((nl = partial.find('\n')) != std::string::npos) {
          Json line = Json::parse(partial.substr(0, nl), nullptr, false);
          partial.erase(0, nl + 1);
          if (!line.is_object()) {
            bad_line = true;
            return false;
          }
          if (line.contains("exit") && line["exit"].is_number_integer()) {
            exit_code = line["exit"].get<int>();
          } else if (line.contains("error") && line["error"].is_object()) {
            lost = Error::FromJson(line["error"].value("code", 503), line["error"].dump());
          } else if (line.contains("data") && line["data"].is_string()) {
            auto bytes = Base64Decode(line["data"].get<std::string>());
            if (!bytes) {
              bad_line = true;
              return false;
            }
            WriteAll(line.value("stream", "") == "stderr" ? STDERR_FILENO : STDOUT_FILENO, *bytes);
          }  // anything else ({} keeps a quiet stream alive): nothing to do
        }
        return true;
      });
  raw.reset();  // the terminal is restored before any message of ours
  if (!st) return PrintError(st.error(), "exec in " + *alloc);
  if (bad_line) return PrintError(Error(Code::kInternal, "the server sent output mt cannot read"));
  if (lost) return PrintError(*lost, "exec in " + *alloc);
  if (!exit_code) {
    return PrintError(Error(Code::kUnavailable,
                            "the connection to the server ended before the command did"),
                      "exec in " + *alloc);
  }
  return *exit_code;
}

Command AddExecCommand(CLI::App& app) {
  auto f = std::make_shared<ExecFlags>();
  auto* exec = app.add_subcommand(
      "exec", "run a command in an allocation, or a service's first running one");
  exec->add_option("name", f->target, "an allocation, or a service")->required();
  exec->add_option("command", f->command, "the command and its arguments, after --");
  exec->add_flag("-i,--stdin", f->stdin, "forward stdin to the command");
  exec->add_flag("-t,--tty", f->tty,
                 "a terminal for the command (the local one in raw mode while it runs)");
  return {.cli = exec, .connected = [f](const Session& s) {
            f->ns = s.ns;
            return RunExec(s.client, s.options, *f);
          }};
}

}  // namespace mentat::mt
