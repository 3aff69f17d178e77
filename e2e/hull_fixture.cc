#include "e2e/hull_fixture.h"

#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e/harness.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat::e2e {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string Slurp(const std::string& path) { return ReadFile(path); }

void HullTest::SetUp() {
  dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/hull-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  state_ = dir_ + "/state";
  // A root of our own per test: the bound root is writable, and tests add files to it. It is
  // under /tmp, not TEST_TMPDIR: a --rootless container's mapped uid must reach it, and Bazel's
  // default output base is under /root (mode 0700).
  char tmpl[] = "/tmp/hull-test-root-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  ASSERT_EQ(::chmod(tmpl, 0755), 0);
  root_parent_ = tmpl;
  root_ = root_parent_ + "/rootfs";
  fs::copy(BusyboxRoot(), root_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

void HullTest::TearDown() {
  for (const auto& n : names_) Hull({"kill", n});
  std::error_code ec;
  if (!root_parent_.empty()) fs::remove_all(root_parent_, ec);
}

Outcome HullTest::Hull(const std::vector<std::string>& args) {
  std::string out_path, err_path;
  pid_t pid = SpawnHull(args, &out_path, &err_path);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out_path), Slurp(err_path)};
}

pid_t HullTest::SpawnHull(const std::vector<std::string>& args, std::string* out_path_p, std::string* err_path_p) {
  // Calls may run at once (concurrent runs, logs -f beside stop): files of their own.
  static std::atomic<int> calls{0};
  const std::string n = std::to_string(calls++);
  const std::string out_path = *out_path_p = dir_ + "/out." + n, err_path = *err_path_p = dir_ + "/err." + n;
  // Resolved before the fork: the child only makes syscalls and execs.
  const std::string init = Runfile("cmd/sandbox-init/sandbox-init"), hull = Runfile("cmd/hull/hull");
  pid_t pid = ::fork();
  if (pid == 0) {
    // Into the test's own network namespace (BridgeTest); never the host's for bridge work.
    if (netns_fd_ >= 0 && ::setns(netns_fd_, CLONE_NEWNET) != 0) _exit(125);
    ::unsetenv("SUDO_UID");
    ::unsetenv("SUDO_GID");
    for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
    ::setenv("HULL_STATE_DIR", state_.c_str(), 1);
    // Leases are host-wide (per network namespace and bridge): the test's own, under dir_.
    ::setenv("HULL_LEASE_ROOT", (dir_ + "/run").c_str(), 1);
    ::setenv("MENTAT_SANDBOX_INIT", init.c_str(), 1);
    std::FILE* o = std::freopen(out_path.c_str(), "w", stdout);
    std::FILE* e = std::freopen(err_path.c_str(), "w", stderr);
    (void)o;
    (void)e;
    if (run_as_ >= 0 && (::setgroups(0, nullptr) != 0 || ::setgid(run_as_) != 0 || ::setuid(run_as_) != 0)) _exit(124);
    std::vector<std::string> a = {hull};
    a.insert(a.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(126);
  }
  return pid;
}

std::string HullTest::Manifest(const std::string& name, const Json& argv, Json extra) {
  Json m = {{"name", name}, {"rootfs", root_}, {"argv", argv}};
  m.update(extra);
  std::string path = dir_ + "/" + name + ".json";
  std::ofstream(path) << m.dump();
  names_.push_back(name);
  return path;
}

Json HullTest::Inspect(const std::string& name) {
  auto r = Hull({"inspect", name});
  EXPECT_EQ(r.code, 0) << r.err;
  return Json::parse(r.out, nullptr, false);
}

Json HullTest::AwaitExit(const std::string& name, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  Json j;
  while (std::chrono::steady_clock::now() < until) {
    j = Inspect(name);
    if (j.value("status", "") == "exited") return j;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << name << " did not exit: " << j.dump();
  return j;
}

pid_t HullTest::WorkloadPid(const std::string& name) {
  return Json::parse(Slurp(state_ + "/containers/" + name + "/state.json"))["workload_pid"].get<pid_t>();
}

std::string HullTest::AwaitOutput(const std::string& name, const std::string& text,
                                  std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  std::string out;
  while (std::chrono::steady_clock::now() < until) {
    out = Slurp(state_ + "/containers/" + name + "/stdout.log");
    if (out.find(text) != std::string::npos) return out;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << name << " never printed " << text << ": " << out;
  return out;
}

}  // namespace mentat::e2e
