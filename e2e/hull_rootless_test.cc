// hull --rootless end to end (the fixture: hull_fixture.h): uid 0 inside, an unprivileged uid
// outside, 7 namespaces of its own; as root and as nobody. And the mount points an image can
// plant links in, which --rootless makes hull create: never followed to the host; read-only
// mounts stay read-only through their submounts.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/hull_fixture.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// --rootless, hull run by root: the container's 0 is host uid 100000 (no SUDO_UID), every layer
// still on, and the user namespace is the seventh of its own.
TEST_F(HullTest, RootlessIsUidZeroInsideAndUnprivilegedOutside) {
  // A root-only file in the rootfs: uid 0 inside is not root outside.
  std::ofstream(root_ + "/secret") << "host root only\n";
  ASSERT_EQ(::chmod((root_ + "/secret").c_str(), 0600), 0);
  auto r = Hull({"run", "--rootless",
                 Manifest("rl", {"/bin/sh", "-c",
                                 "echo uid=$(id -u) gid=$(id -g); cat /proc/self/uid_map; cat /secret || echo no-secret; "
                                 "echo procs=$(ls /proc | grep -c '^[0-9]'); echo ready; exec sleep 600"})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = AwaitOutput("rl", "ready");
  EXPECT_NE(out.find("uid=0 gid=0"), std::string::npos) << out;
  EXPECT_NE(out.find("0     100000          1"), std::string::npos) << out;
  EXPECT_NE(out.find("no-secret"), std::string::npos) << out;
  EXPECT_EQ(out.find("host root only"), std::string::npos) << out;
  // The host's pids are not there: sandbox-init, the shell, its subshell, ls and grep at most.
  ASSERT_NE(out.find("procs="), std::string::npos) << out;
  EXPECT_LE(std::stoi(out.substr(out.find("procs=") + 6)), 5) << out;

  // Outside, the workload is the unprivileged uid.
  std::string status = Slurp("/proc/" + std::to_string(WorkloadPid("rl")) + "/status");
  EXPECT_NE(status.find("Uid:\t100000\t100000\t100000\t100000"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t100000\t100000\t100000\t100000"), std::string::npos) << status;
  EXPECT_NE(status.find("Groups:\t \n"), std::string::npos) << "root's groups were dropped: " << status;

  Json j = Inspect("rl");
  EXPECT_EQ(j["rootless"]["uid"], 100000);
  EXPECT_EQ(j["rootless"]["gid"], 100000);
  std::set<uint64_t> own;
  for (const char* ns : {"pid", "net", "mnt", "uts", "ipc", "cgroup", "user"}) {
    EXPECT_TRUE(j["namespaces"][ns]["own"].get<bool>()) << ns;
    own.insert(j["namespaces"][ns]["inode"].get<uint64_t>());
  }
  EXPECT_EQ(own.size(), 7u) << j["namespaces"].dump();
  EXPECT_EQ(j["own_namespaces"], 7);
  EXPECT_EQ(j["cgroup"]["limits"]["pids_max"], 128) << "root's hull still sets limits";

  // exec joins the user namespace too: uid 0 there, still 100000 here, and still confined.
  auto e = Hull({"exec", "rl", "/bin/sh", "-c", "id -u; grep CapEff /proc/self/status"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out.rfind("0\n", 0), 0u) << e.out;
  EXPECT_NE(e.out.find("0000000000000000"), std::string::npos) << e.out;
  // Mounting (the host's root or anything) is refused: the profile kills the attempt.
  auto m = Hull({"exec", "rl", "/bin/sh", "-c", "mkdir -p /tmp/m; mount -t proc proc /tmp/m; echo rc=$?; ls /tmp/m | wc -l"});
  EXPECT_NE(m.out.find("rc=159"), std::string::npos) << m.out << m.err;  // 128 + SIGSYS
  EXPECT_NE(m.out.find("\n0\n"), std::string::npos) << m.out;
  ASSERT_EQ(Hull({"kill", "rl"}).code, 0);

  // hull run through sudo: the invoking user's ids.
  env_ = {{"SUDO_UID", "4242"}, {"SUDO_GID", "4343"}};
  ASSERT_EQ(Hull({"run", "--rootless", Manifest("sudo", {"/bin/sh", "-c", "echo uid=$(id -u); exec sleep 600"})}).code, 0);
  AwaitOutput("sudo", "uid=0");
  status = Slurp("/proc/" + std::to_string(WorkloadPid("sudo")) + "/status");
  EXPECT_NE(status.find("Uid:\t4242\t"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t4343\t"), std::string::npos) << status;
}

// hull --rootless (as root, in the host's mount namespace) makes the mount points of a bound
// rootfs that an earlier workload could write. A symlink planted there (`rm -r /tmp; ln -s /etc
// /tmp`) must never lead hull to the host: no chmod of the target, no file created through it.
TEST_F(HullTest, RootlessNeverFollowsASymlinkPlantedInTheRootfs) {
  // Host directories standing for /etc: their modes and contents must not change.
  const std::string etc = root_parent_ + "/etc", opt = root_parent_ + "/opt";
  fs::create_directories(etc);
  fs::create_directories(opt);
  ASSERT_EQ(::chmod(etc.c_str(), 0755), 0);
  fs::remove_all(root_ + "/tmp");
  fs::create_directory_symlink(etc, root_ + "/tmp");
  auto r = Hull({"run", "--rootless", Manifest("planted", {"/bin/true"})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(root_ + "/tmp is a symlink"), std::string::npos) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(etc.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "hull chmodded the symlink's host target";

  // A symlinked parent of a mounts[] target: nothing is created on the host through it.
  fs::remove(root_ + "/tmp");
  fs::create_directory(root_ + "/tmp");
  fs::create_directory_symlink(opt, root_ + "/srv");
  // Under root_parent_ (0755): the mapped uid must reach the sources of the plain run below.
  const std::string data = root_parent_ + "/data", file = root_parent_ + "/file";
  fs::create_directories(data);
  std::ofstream(file) << "x\n";
  r = Hull({"run", "--rootless",
            Manifest("planted2", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/srv/a/b"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(root_ + "/srv is a symlink"), std::string::npos) << r.err;
  r = Hull({"run", "--rootless",
            Manifest("planted3", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", file}, {"container", "/srv/f"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(fs::is_empty(opt)) << "hull created host files through the symlink";
  EXPECT_TRUE(fs::is_empty(etc));

  // On a plain rootfs the mount points are made inside it (what the mapped uid then may mount
  // there is its business), and a plain run works.
  fs::remove(root_ + "/srv");
  auto plain = Hull({"run", "--rootless",
        Manifest("plain", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/srv/a/b"}},
                                                                  Json{{"host", file}, {"container", "/srv/f"}}})}})});
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_TRUE(fs::is_directory(root_ + "/srv/a/b"));
  EXPECT_TRUE(fs::is_regular_file(root_ + "/srv/f"));
  r = Hull({"run", "--rootless", Manifest("plain2", {"/bin/sh", "-c", "ls -ld /tmp && echo ok"})});
  ASSERT_EQ(r.code, 0) << r.err;
  AwaitOutput("plain2", "ok");
  ASSERT_EQ(::stat((root_ + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "an existing /tmp keeps its mode";
}

// Links an image can plant where hull mounts: `proc -> ..` (mounted through, it would cover or
// uncover a root) is refused, naming the step; a volume target that is a symlink too. In a
// plain run, the root has no parent: / and /.. are the same directory.
TEST_F(HullTest, SymlinkedMountPointsAreRefusedAndTheRootHasNoParent) {
  fs::remove_all(root_ + "/proc");
  fs::create_directory_symlink("..", root_ + "/proc");
  auto r = Hull({"run", Manifest("procup", {"/bin/true"})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("Too many levels of symbolic links"), std::string::npos) << r.err;
  fs::remove(root_ + "/proc");

  const std::string data = root_parent_ + "/vol";
  fs::create_directories(data);
  fs::create_directory_symlink("/", root_ + "/data");
  r = Hull({"run", Manifest("volup", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}}})}})});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("mounts[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Too many levels of symbolic links"), std::string::npos) << r.err;
  fs::remove(root_ + "/data");

  // PID 1 is hull's undumpable code until it execs sandbox-init, and the workload may start in
  // that moment, when /proc/1/root does not open (EACCES): wait for the exec, as hull_cli_test.
  r = Hull({"run", Manifest("noparent", {"/bin/busybox", "sh", "-c",
                                         "until /bin/busybox grep -q sandbox-init /proc/1/cmdline; do :; done; "
                                         "/bin/busybox stat -c %d:%i / /.. /proc/1/root/..; echo ready; exec sleep 600"})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(AwaitOutput("noparent", "ready"));
  std::string root, parent, pid1_parent;
  lines >> root >> parent >> pid1_parent;
  EXPECT_FALSE(root.empty());
  EXPECT_EQ(root, parent);
  EXPECT_EQ(root, pid1_parent);
}

// A read-only mount is read-only all the way down: a filesystem mounted below its host source
// (here a tmpfs, in the host's mount namespace for the test's length) cannot be written either.
TEST_F(HullTest, AReadOnlyMountIsReadOnlyThroughItsSubmounts) {
  const std::string data = root_parent_ + "/ro-source";
  fs::create_directories(data + "/sub");
  ASSERT_EQ(::mount("tmpfs", (data + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{data + "/sub"};
  auto r = Hull({"run", Manifest("ro", {"/bin/sh", "-c",
                                        "touch /data/a 2>&1; touch /data/sub/b 2>&1; echo ready; exec sleep 600"},
                                 {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}, {"readonly", true}}})}})});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = AwaitOutput("ro", "ready");
  EXPECT_NE(out.find("/data/a: Read-only file system"), std::string::npos) << out;
  EXPECT_NE(out.find("/data/sub/b: Read-only file system"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(data + "/sub/b"));
}

// Bind mounts under --rootless: a source the mapped uid can reach is there to read; one it
// cannot reach fails the run naming the mount. The pivot leaves nothing in the rootfs.
TEST_F(HullTest, RootlessBindMountsAreReadableAndAnUnreachableSourceIsNamed) {
  const std::string data = root_parent_ + "/shared";  // root_parent_ is 0755: reachable
  fs::create_directories(data);
  std::ofstream(data + "/greeting") << "hello from the host\n";
  auto r = Hull({"run", "--rootless",
                 Manifest("rlm", {"/bin/sh", "-c", "cat /data/greeting; echo ready; exec sleep 600"},
                          {{"mounts", Json::array({Json{{"host", data}, {"container", "/data"}, {"readonly", true}}})}})});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(AwaitOutput("rlm", "ready").find("hello from the host"), std::string::npos);
  ASSERT_EQ(Hull({"kill", "rlm"}).code, 0);

  const std::string hidden = root_parent_ + "/root-only";  // 0700 root: not for uid 100000
  fs::create_directories(hidden + "/d");
  ASSERT_EQ(::chmod(hidden.c_str(), 0700), 0);
  r = Hull({"run", "--rootless",
            Manifest("rlm2", {"/bin/true"}, {{"mounts", Json::array({Json{{"host", hidden + "/d"}, {"container", "/data"}}})}})});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("mounts[0]: " + hidden + "/d on /data"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("as host uid 100000"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(root_)) {
    EXPECT_EQ(e.path().filename().string().find("oldroot"), std::string::npos) << e.path();
  }
}

// --rootless from an unprivileged user (nobody) with a rootfs of its own: 0 maps to that uid,
// the v1 cgroups are root's, so limits are skipped with a warning and the container still runs.
TEST_F(HullTest, RootlessFromAnUnprivilegedUserSkipsCgroupsWithAWarning) {
  const uid_t nobody = 65534;
  fs::create_directories(state_);
  ASSERT_EQ(std::system(("chown -R 65534:65534 " + state_ + " " + root_).c_str()), 0);
  for (fs::path p = dir_; p != "/"; p = p.parent_path()) {
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    if ((st.st_mode & 01) == 0) GTEST_SKIP() << p << " is not searchable by others: cannot run as nobody";
  }
  run_as_ = nobody;
  std::string manifest = Manifest("mine", {"/bin/sh", "-c", "echo uid=$(id -u); echo ready; exec sleep 600"});
  ASSERT_EQ(::chown(manifest.c_str(), nobody, nobody), 0);
  auto plain = Hull({"run", manifest});
  EXPECT_EQ(plain.code, 2);
  EXPECT_NE(plain.err.find("needs root, or --rootless"), std::string::npos) << plain.err;
  auto r = Hull({"run", "--rootless", manifest});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: cgroup limits skipped"), std::string::npos) << r.err;
  EXPECT_NE(AwaitOutput("mine", "ready").find("uid=0"), std::string::npos);
  std::string status = Slurp("/proc/" + std::to_string(WorkloadPid("mine")) + "/status");
  EXPECT_NE(status.find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos) << status;
  Json j = Inspect("mine");
  EXPECT_EQ(j["own_namespaces"], 7);
  EXPECT_EQ(j["rootless"]["uid"], nobody);
  EXPECT_EQ(j["warnings"].size(), 1u) << j.dump();
  EXPECT_EQ(Hull({"exec", "mine", "/bin/sh", "-c", "exit $(id -u)"}).code, 0);
  // Bridge networking needs the host's CAP_NET_ADMIN: refused, naming the field.
  auto bridge = Hull({"run", "--rootless", Manifest("mine-br", {"/bin/true"}, {{"network", "bridge"}})});
  EXPECT_EQ(bridge.code, 2);
  EXPECT_NE(bridge.err.find("network: \"bridge\" needs root"), std::string::npos) << bridge.err;
  EXPECT_EQ(Hull({"kill", "mine"}).code, 0);
  run_as_ = -1;
}

}  // namespace
}  // namespace mentat::e2e
