// The escape battery (issue 7): a workload inside a sandbox attacks every layer, and each
// attack must fail or be contained. The probes run as the sandbox's workload for real (real
// namespaces, overlayfs, seccomp, Landlock and cgroups; root, so tag no-sandbox):
//   seeing or signalling host pids, mount, unshare, setns, chroot, ptrace, kernel modules,
//   keyctl, bpf, userfaultfd, perf, io_uring, kexec, open_by_handle_at, capabilities (none, and
//   none through a setuid-root binary), writing outside the root or to /proc/sys, opening a
//   device other than the four; and a fork bomb stopped by pids.max, a memory hog OOM-killed
//   and reported.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "runtimes/process_testing.h"
#include "runtimes/sandbox/sandbox_driver.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Runfile(const std::string& path) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/mentat/" + path;
}

class SandboxEscape : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/escape-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // The app layer: the probe, and a setuid-root copy of it.
    app_ = dir_ + "/app";
    fs::create_directories(app_ + "/bin");
    fs::copy_file(Runfile("runtimes/sandbox/escape-probe"), app_ + "/bin/escape-probe");
    fs::copy_file(Runfile("runtimes/sandbox/escape-probe"), app_ + "/bin/suid-probe");
    ASSERT_EQ(::chown((app_ + "/bin/suid-probe").c_str(), 0, 0), 0);
    ASSERT_EQ(::chmod((app_ + "/bin/suid-probe").c_str(), 04755), 0);
    auto d = SandboxDriver::Create({});
    ASSERT_TRUE(d) << d.error().ToString();
    driver_ = std::move(*d);
    ASSERT_TRUE(driver_->Fingerprint().value("healthy", false)) << driver_->Fingerprint().dump();
  }
  void TearDown() override {
    for (const auto& id : ids_) driver_->Destroy(id, true);
  }
  // A driver whose every base is the busybox root.
  void UseBusyboxBase() {
    auto d = SandboxDriver::Create({.resolve_base = [](const std::string&) -> Result<std::string> {
      return BusyboxRoot();
    }});
    ASSERT_TRUE(d) << d.error().ToString();
    driver_ = std::move(*d);
  }
  TaskConfig Config(const std::string& id, std::string command, std::vector<std::string> args) {
    ids_.push_back(id);
    TaskConfig c;
    c.id = "default." + id;
    ids_.back() = c.id;
    c.command = std::move(command);
    c.args = std::move(args);
    c.task_dir = dir_ + "/" + id;
    c.spec = {{"rootfs", app_}};
    return c;
  }
  std::string dir_, app_;
  std::vector<std::string> ids_;
  std::unique_ptr<SandboxDriver> driver_;
};

TEST_F(SandboxEscape, EveryProbeIsContained) {
  // A file only the host has, and the probe's knowledge of a host pid (this test's).
  std::string marker = dir_ + "/host-only-marker";
  std::ofstream(marker) << "host\n";
  ASSERT_FALSE(fs::exists("/etc/escape-written"));
  TaskConfig c = Config("probe", "/bin/escape-probe", {std::to_string(::getpid()), marker});
  // The base below the app: busybox.
  c.spec["rootfs"] = app_;
  c.spec["base"] = "static";
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait(c.id, 20s);
  ASSERT_TRUE(exit && exit->has_value());
  std::string out = Slurp(c.task_dir + "/stdout.log");
  SCOPED_TRACE(out + Slurp(c.task_dir + "/stderr.log"));

  ExpectEscapeBatteryContained(out);
  EXPECT_EQ((*exit)->exit_code, 0) << (*exit)->message;
  // Nothing reached the host's files.
  EXPECT_FALSE(fs::exists("/etc/escape-written"));
  EXPECT_EQ(Slurp(marker), "host\n");
  std::string hostname = Slurp("/proc/sys/kernel/hostname");
  EXPECT_EQ(hostname.find("pwned"), std::string::npos);
}

TEST_F(SandboxEscape, TheWorkloadSeesItsOwnWorldOnly) {
  TaskConfig c = Config("world", "/bin/sh",
                        {"-c", "hostname; echo pid=$$; ls /; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                               "touch /etc/written && echo wrote-etc; mount | head -3"});
  c.spec["base"] = "static";
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  ASSERT_TRUE(driver_->Start(c));
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && exit->has_value());
  std::string out = Slurp(c.task_dir + "/stdout.log");
  SCOPED_TRACE(out + Slurp(c.task_dir + "/stderr.log"));
  EXPECT_EQ(out.rfind("world\n", 0), 0u) << "the hostname is the allocation's";
  EXPECT_NE(out.find("pid=2\n"), std::string::npos) << "the workload is pid 2, after sandbox-init";
  EXPECT_NE(out.find("sandbox-init --status-fd 3 -- /bin/sh"), std::string::npos) << "init is pid 1";
  // Writes land in the allocation's own layer, not in the base.
  EXPECT_NE(out.find("wrote-etc"), std::string::npos);
  EXPECT_TRUE(fs::exists(c.task_dir + "/upper/etc/written"));
  EXPECT_FALSE(fs::exists(BusyboxRoot() + "/etc/written"));
  // The writable layer goes with the task.
  ASSERT_TRUE(driver_->Destroy(c.id, false));
  EXPECT_FALSE(fs::exists(c.task_dir + "/upper"));
}

TEST_F(SandboxEscape, VolumesAreBindMountsReadOnlyWhenAsked) {
  std::string rw = dir_ + "/data", ro = dir_ + "/config";
  fs::create_directories(rw);
  fs::create_directories(ro);
  std::ofstream(ro + "/app.conf") << "setting=1\n";
  TaskConfig c = Config("vol", "/bin/sh",
                        {"-c", "cat /etc/worker/app.conf; echo written > /data/jobs/out; "
                               "echo nope > /etc/worker/app.conf || echo read-only-refused"});
  c.spec["base"] = "static";
  c.spec["volumes"] = Json::array({{{"source", rw}, {"target", "/data/jobs"}, {"read_only", false}},
                                   {{"source", ro}, {"target", "/etc/worker"}, {"read_only", true}}});
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  ASSERT_TRUE(driver_->Start(c));
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && exit->has_value());
  std::string out = Slurp(c.task_dir + "/stdout.log");
  SCOPED_TRACE(out + Slurp(c.task_dir + "/stderr.log"));
  EXPECT_NE(out.find("setting=1"), std::string::npos);
  EXPECT_NE(out.find("read-only-refused"), std::string::npos);
  EXPECT_EQ(Slurp(rw + "/out"), "written\n") << "the write reached the host directory";
  EXPECT_EQ(Slurp(ro + "/app.conf"), "setting=1\n");

  // A volume may not cover the sandbox's own trees, nor come from nowhere.
  TaskConfig bad = Config("badvol", "/bin/true", {});
  bad.spec["base"] = "static";
  bad.spec["volumes"] = Json::array({{{"source", rw}, {"target", "/proc/sys"}, {"read_only", false}}});
  auto h = driver_->Start(bad);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("volumes[0].target: /proc/sys is inside /proc"), std::string::npos)
      << h.error().message();
  bad.spec["volumes"] = Json::array({{{"source", dir_ + "/missing"}, {"target", "/x"}, {"read_only", false}}});
  h = driver_->Start(bad);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("volumes[0].source"), std::string::npos) << h.error().message();
}

// Inside a container, the data directory may sit on the container's own root filesystem, an
// overlayfs, which the kernel refuses as an overlay's upper layer with a bare EINVAL: the error
// says why, and what to do.
TEST_F(SandboxEscape, ATaskDirectoryOnOverlayfsIsNamedInTheError) {
  const std::string o = dir_ + "/outer";
  for (const char* d : {"lower", "upper", "work", "merged"}) fs::create_directories(o + "/" + d);
  const std::string opts =
      "lowerdir=" + o + "/lower,upperdir=" + o + "/upper,workdir=" + o + "/work";
  ASSERT_EQ(::mount("overlay", (o + "/merged").c_str(), "overlay", 0, opts.c_str()), 0)
      << std::strerror(errno);
  TaskConfig c = Config("onoverlay", "/bin/true", {});
  c.spec["base"] = "static";
  c.task_dir = o + "/merged/task";
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  auto h = driver_->Start(c);
  driver_->Destroy(c.id, true);
  ::umount2((o + "/merged").c_str(), MNT_DETACH);
  ASSERT_FALSE(h) << "an overlay with its upper layer on overlayfs was mounted";
  EXPECT_NE(h.error().message().find("mounting the root filesystem: Invalid argument (" + o +
                                     "/merged/task/upper is on overlayfs"),
            std::string::npos)
      << h.error().message();
}

TEST_F(SandboxEscape, AForkBombIsStoppedByPidsMax) {
  TaskConfig c = Config("bomb", "/bin/sh", {"-c", "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived"});
  c.spec["base"] = "static";
  c.spec["resources"] = {{"pids", 32}, {"memory_mb", 256}};
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  ASSERT_TRUE(driver_->Start(c));
  ASSERT_TRUE(WaitFor([&] {
    auto s = driver_->Stats(c.id);
    return s && s->pids_limit_hits > 0;
  }, 10s)) << "pids.max never refused a fork";
  auto s = driver_->Stats(c.id);
  ASSERT_TRUE(s);
  EXPECT_LE(s->pids, 32u);
  // The host is fine, and Stop takes the whole bomb down.
  ASSERT_TRUE(driver_->Stop(c.id, 100ms, SIGKILL));
  EXPECT_TRUE(WaitFor([&] {
    auto st = driver_->Stats(c.id);
    return st && st->pids == 0;
  }, 5s));
}

TEST_F(SandboxEscape, AMemoryHogIsOomKilledAndReported) {
  TaskConfig c = Config("hog", "/bin/sh", {"-c", "dd if=/dev/zero of=/dev/null bs=256M count=1"});
  c.spec["base"] = "static";
  c.spec["resources"] = {{"memory_mb", 32}};
  ASSERT_NO_FATAL_FAILURE(UseBusyboxBase());
  ASSERT_TRUE(driver_->Start(c));
  auto exit = driver_->Wait(c.id, 10s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_TRUE((*exit)->oom_killed) << (*exit)->message;
  EXPECT_NE((*exit)->message.find("OOM-killed: exceeded its 32 MiB memory limit"), std::string::npos)
      << (*exit)->message;
}

}  // namespace
}  // namespace mentat
