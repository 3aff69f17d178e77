// hull: the daemonless container runtime of seed 003. Eight commands over a state directory
// (docs/hull.md); `hull run` forks the container's PID 1 and exits. Exit codes: 0 success,
// 1 usage, 2 runtime, 3 manifest (the field named), 127 the workload could not be exec'd.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <seccomp.h>

#include "apis/hull_manifest.h"
#include "runtimes/hull/container.h"
#include "runtimes/hull/profiles.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/landlock.h"

namespace mentat::hull {
namespace {

constexpr char kVersion[] = "0.1.0";

int Report(const Failure& f) {
  std::cerr << "hull: " << f.error.message() << "\n";
  for (const auto& d : f.error.details()) {
    std::cerr << "  " << d.field;
    if (d.line) std::cerr << " (line " << d.line << ":" << d.column << ")";
    std::cerr << ": " << d.message << "\n";
  }
  return f.exit_code;
}

int Report(int code, const Error& e) { return Report(Failure{code, e}); }

int CmdRun(const StateDir& dir, const std::string& path, bool rootless) {
  std::ifstream f(path);
  if (!f) return Report(kExitUsage, Error(Code::kInvalidArgument, "cannot read manifest " + path));
  std::stringstream ss;
  ss << f.rdbuf();
  auto m = HullManifest::Parse(ss.str());
  if (!m) return Report(kExitManifest, m.error());
  RunOptions options;
  options.rootless = rootless;
  auto s = Run(dir, *m, options);
  if (!s) return Report(s.error());
  for (const auto& w : s->warnings) std::cerr << "hull: warning: " << w << "\n";
  std::cout << s->name << " " << s->pid << "\n";
  return kExitOk;
}

std::string Uptime(int64_t seconds) {
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds / 3600) + "h";
}

int CmdPs(const StateDir& dir, bool all) {
  auto names = dir.List();
  if (!names) return Report(kExitRuntime, names.error());
  std::printf("%-24s %-8s %-8s %s\n", "NAME", "PID", "UPTIME", "ARGV");
  for (const auto& n : *names) {
    auto s = dir.Load(n);
    if (!s) {
      // Gone since the listing: nothing to say. Unreadable (cut short by a power loss): say so.
      if (s.error().code() != Code::kNotFound) std::fprintf(stderr, "hull ps: %s (skipped)\n", s.error().message().c_str());
      continue;
    }
    Refresh(dir, *s);
    if (s->status != "running" && !all) continue;
    std::string argv;
    for (const auto& a : s->manifest.argv) argv += (argv.empty() ? "" : " ") + a;
    if (s->status == "running") {
      std::printf("%-24s %-8d %-8s %s\n", n.c_str(), s->pid,
                  Uptime(std::time(nullptr) - s->started_at).c_str(), argv.c_str());
    } else {
      std::printf("%-24s %-8s %-8s %s\n", n.c_str(), "-", "exited", argv.c_str());
    }
  }
  return kExitOk;
}

int CmdStop(const StateDir& dir, const std::string& name, int sig, int grace_s) {
  auto s = Stop(dir, name, sig, std::chrono::seconds(grace_s));
  if (!s) return Report(s.error());
  std::cout << name << " " << (s->exit ? s->exit->Describe() : s->status) << "\n";
  return kExitOk;
}

// Copies what `fd`'s file has past *offset to `out`. True when something was copied.
bool Drain(const std::string& path, std::streamoff* offset, std::FILE* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  f.seekg(*offset);
  char buf[65536];
  bool any = false;
  while (f.read(buf, sizeof(buf)), f.gcount() > 0) {
    std::fwrite(buf, 1, static_cast<size_t>(f.gcount()), out);
    *offset += f.gcount();
    any = true;
  }
  std::fflush(out);
  return any;
}

int CmdLogs(const StateDir& dir, const std::string& name, bool follow) {
  auto s = dir.Load(name);
  if (!s) return Report(kExitRuntime, s.error());
  std::streamoff out = 0, err = 0;
  for (;;) {
    bool any = Drain(dir.StdoutPath(name), &out, stdout);
    any |= Drain(dir.StderrPath(name), &err, stderr);
    if (!follow || any) {
      if (!follow) break;
      continue;
    }
    Refresh(dir, *s);
    if (s->status != "running") {
      // What it wrote between the last read and its exit.
      Drain(dir.StdoutPath(name), &out, stdout);
      Drain(dir.StderrPath(name), &err, stderr);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Refresh(dir, *s);
  if (s->exit && s->exit->seccomp_syscall) {
    std::cerr << "hull: " << name << " " << s->exit->Describe() << "\n";
  }
  return kExitOk;
}

int CmdInspect(const StateDir& dir, const std::string& name) {
  auto j = Inspect(dir, name);
  if (!j) return Report(j.error());
  std::cout << j->dump(2) << "\n";
  return kExitOk;
}

int CmdVersion() {
  const scmp_version* v = seccomp_version();
  std::cout << "hull " << kVersion << " (mentat)\n"
            << "  built with g++ " << __VERSION__ << ", C++" << __cplusplus / 100 << "\n"
            << "  libseccomp " << v->major << "." << v->minor << "." << v->micro << ", Landlock ABI "
            << PlanLandlock().abi << " on this kernel\n"
            << "  profiles: default webapp node dotnet beam java; network: none host bridge\n"
            << "  state: " << ResolveStateDir() << "\n";
  return kExitOk;
}

}  // namespace
}  // namespace mentat::hull

int main(int argc, char** argv) {
  using namespace mentat::hull;
  CLI::App app{"hull: a daemonless container runtime"};
  app.require_subcommand(1);
  bool rootless = false, all = false, follow = false;
  std::string manifest, name;
  int grace = 10;
  auto* run = app.add_subcommand("run", "Start a container from a JSON manifest; forks it and exits");
  run->add_flag("--rootless", rootless, "Run in a user namespace: the workload's uid 0 is an unprivileged host uid");
  run->add_option("manifest", manifest, "The manifest file")->required();
  auto* ps = app.add_subcommand("ps", "List running containers: NAME PID UPTIME ARGV");
  ps->add_flag("-a,--all", all, "Also list exited containers");
  auto* stop = app.add_subcommand("stop", "SIGTERM, wait for the exit, SIGKILL after the grace period");
  stop->add_option("name", name)->required();
  stop->add_option("-t,--time", grace, "Grace period in seconds")->check(CLI::NonNegativeNumber);
  auto* kill = app.add_subcommand("kill", "SIGKILL the container");
  kill->add_option("name", name)->required();
  // Parsed by hand below (everything after the name is the command, its flags included); here
  // for --help.
  app.add_subcommand("exec", "Run a command inside a running container: exec NAME CMD...");
  auto* logs = app.add_subcommand("logs", "Print the container's stdout and stderr");
  logs->add_option("name", name)->required();
  logs->add_flag("-f,--follow", follow, "Follow until the container exits");
  auto* inspect = app.add_subcommand("inspect", "Status, cgroup limits and usage, namespaces, mounts");
  inspect->add_option("name", name)->required();
  auto* version = app.add_subcommand("version", "Version and build info");
  if (argc >= 2 && std::string(argv[1]) == "exec" &&
      !(argc >= 3 && (std::string(argv[2]) == "-h" || std::string(argv[2]) == "--help"))) {
    int at = 3;
    if (at < argc && std::string(argv[at]) == "--") ++at;
    if (argc < 4 || at >= argc) {
      std::cerr << "hull: usage: hull exec NAME CMD [ARGS...]\n";
      return kExitUsage;
    }
    auto code = Exec(StateDir(ResolveStateDir()), argv[2], std::vector<std::string>(argv + at, argv + argc));
    if (!code) return Report(code.error());
    return *code;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  const StateDir dir(ResolveStateDir());
  if (run->parsed()) return CmdRun(dir, manifest, rootless);
  if (ps->parsed()) return CmdPs(dir, all);
  if (stop->parsed()) return CmdStop(dir, name, SIGTERM, grace);
  if (kill->parsed()) return CmdStop(dir, name, SIGKILL, 0);
  if (logs->parsed()) return CmdLogs(dir, name, follow);
  if (inspect->parsed()) return CmdInspect(dir, name);
  if (version->parsed()) return CmdVersion();
  return kExitUsage;
}
