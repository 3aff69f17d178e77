// hull's pieces that need no root: the profiles (each builds, none allows a blocked-in-all
// syscall, the seed's relations between them hold), the kernel audit record parser, and the
// rootfs archive checks (../ and absolute entries refused, setuid bits and device nodes dropped).
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "apis/hull_manifest.h"
#include "runtimes/hull/compiled_profiles.h"
#include "runtimes/hull/profiles.h"
#include "runtimes/hull/rootfs_archive.h"
#include "runtimes/hull/seccomp_audit.h"

namespace mentat::hull {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  std::string d = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Profiles, EveryProfileBuildsAndNoneAllowsABlockedSyscall) {
  for (const auto& p : HullProfiles()) {
    auto names = ProfileSyscalls(p);
    ASSERT_TRUE(names) << p;
    for (const auto& blocked : BlockedInAllProfiles()) {
      EXPECT_EQ(std::count(names->begin(), names->end(), blocked), 0) << p << " allows " << blocked;
    }
    auto program = BuildProfile(p);
    ASSERT_TRUE(program) << p << ": " << program.error().ToString();
    EXPECT_FALSE(program->code.empty());
    // hull's PID 1 and the workload's exec need these in every profile.
    for (const char* must : {"execve", "wait4", "signalfd4", "exit_group"}) {
      EXPECT_EQ(std::count(names->begin(), names->end(), must), 1) << p << " lacks " << must;
    }
  }
}

TEST(Profiles, TheProgramsCompiledAtBuildTimeAreWhatLibseccompMakesNow) {
  ASSERT_EQ(kCompiledProfileCount, HullProfiles().size());
  for (const auto& p : HullProfiles()) {
    auto built = BuildProfile(p);
    auto now = CompileProfile(p);
    ASSERT_TRUE(built) << p << ": " << built.error().ToString();
    ASSERT_TRUE(now) << p << ": " << now.error().ToString();
    ASSERT_EQ(built->code.size(), now->code.size()) << p;
    EXPECT_EQ(std::memcmp(built->code.data(), now->code.data(), now->code.size() * sizeof(sock_filter)), 0) << p;
    EXPECT_EQ(built->denied, now->denied) << p;
  }
  auto unknown = BuildProfile("cobol");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("unknown seccomp profile \"cobol\""), std::string::npos);
}

TEST(Profiles, TheSeedsRelationsHold) {
  auto def = *ProfileSyscalls("default");
  auto webapp = *ProfileSyscalls("webapp");
  auto beam = *ProfileSyscalls("beam");
  auto node = *ProfileSyscalls("node");
  auto java = *ProfileSyscalls("java");
  EXPECT_EQ(webapp.size(), def.size() + 3) << "webapp is default plus the io_uring trio";
  EXPECT_EQ(std::count(def.begin(), def.end(), "io_uring_setup"), 0);
  EXPECT_EQ(std::count(webapp.begin(), webapp.end(), "io_uring_setup"), 1);
  EXPECT_GT(beam.size(), def.size());
  EXPECT_LT(node.size(), def.size()) << "node is the tight one";
  for (const char* legacy : {"open", "stat", "mkdir", "unlink"}) {
    EXPECT_EQ(std::count(node.begin(), node.end(), legacy), 0) << legacy;
  }
  EXPECT_GT(java.size(), beam.size()) << "java permits the table";
  for (const char* never : {"ptrace", "init_module", "kexec_load", "mount", "reboot"}) {
    EXPECT_EQ(std::count(java.begin(), java.end(), never), 0) << never;
  }
  auto unknown = ProfileSyscalls("cobol");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("profile: unknown seccomp profile \"cobol\""), std::string::npos);
  EXPECT_FALSE(BuildAllowlistSeccomp({"read", "ptrace"})) << "a blocked-in-all syscall is refused";
}

constexpr char kRecord[] =
    "6,9001,32561780708,-;audit: type=1326 audit(1795357842.341:2): auid=0 uid=0 gid=0 ses=42 "
    "pid=2614 comm=\"busybox\" exe=\"/bin/busybox\" sig=31 arch=c000003e syscall=101 compat=0 "
    "ip=0x7f9572577829 code=0x80000000";

TEST(SeccompAudit, ParsesTheKernelsRecordAndNamesTheSyscall) {
  int64_t ses = 0;
  auto k = ParseSeccompRecord(kRecord, &ses);
  ASSERT_TRUE(k);
  EXPECT_EQ(ses, 42);
  EXPECT_EQ(k->pid, 2614);
  EXPECT_EQ(k->syscall, 101);
  EXPECT_EQ(k->name, "ptrace");
  EXPECT_EQ(k->comm, "busybox");
  EXPECT_FALSE(ParseSeccompRecord("6,1,2,-;audit: type=1300 pid=1 syscall=2", &ses));
  // An errno action is logged too (sig=0): not a kill.
  EXPECT_FALSE(ParseSeccompRecord("audit: type=1326 ses=1 pid=1 sig=0 arch=c000003e syscall=2", &ses));
}

TEST(SeccompAudit, FindsTheContainersLastKillBySessionElseByPid) {
  std::string log = TempDir("kmsg") + "/kmsg";
  std::ofstream(log) << "6,1,1,-;unrelated\n"
                     << kRecord << "\n"
                     << "6,9002,1,-;audit: type=1326 ses=7 pid=300 comm=\"x\" sig=31 arch=c000003e syscall=165\n";
  auto by_ses = FindSeccompKill(42, 0, log);
  ASSERT_TRUE(by_ses);
  EXPECT_EQ(by_ses->name, "ptrace");
  auto by_pid = FindSeccompKill(0, 300, log);
  ASSERT_TRUE(by_pid);
  EXPECT_EQ(by_pid->name, "mount");
  EXPECT_FALSE(FindSeccompKill(99, 0, log));
}

// kauditd prints a kill's record from a thread of its own, possibly after the death is seen: a
// SIGSYS death waits for it (the record lands 300 ms late here), within a bound.
TEST(SeccompAudit, ASIGSYSDeathWaitsForItsRecordToReachTheLog) {
  std::string log = TempDir("kmsg-late") + "/kmsg";
  std::ofstream(log) << "6,1,1,-;unrelated\n";
  EXPECT_FALSE(FindSeccompKill(42, 0, log));
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::ofstream(log, std::ios::app) << kRecord << "\n";
  });
  auto start = std::chrono::steady_clock::now();
  auto k = AwaitSeccompKill(42, 0, std::chrono::seconds(5), log);
  late.join();
  ASSERT_TRUE(k);
  EXPECT_EQ(k->name, "ptrace");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // None coming: nullopt after the bound.
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(AwaitSeccompKill(99, 0, std::chrono::milliseconds(200), log));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
}

// Writes a .tar.gz with the given entries (path, type, mode).
void WriteTar(const std::string& path, const std::vector<std::tuple<std::string, mode_t, mode_t>>& entries) {
  archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  archive_write_open_filename(a, path.c_str());
  for (const auto& [name, type, mode] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    if (type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 1));
    archive_entry_set_size(e, type == AE_IFREG ? 2 : 0);
    archive_write_header(a, e);
    if (type == AE_IFREG) archive_write_data(a, "x\n", 2);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

TEST(RootfsArchive, DotDotAndAbsoluteEntriesRefuseTheWholeArchive) {
  std::string d = TempDir("tar-evil");
  WriteTar(d + "/dotdot.tar.gz", {{"bin/ok", AE_IFREG, 0755}, {"bin/../../escaped", AE_IFREG, 0644}});
  auto st = ExtractRootfsArchive(d + "/dotdot.tar.gz", d + "/out1");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("bin/../../escaped"), std::string::npos) << st.error().message();
  EXPECT_FALSE(fs::exists(d + "/out1")) << "nothing is left of a refused archive";
  EXPECT_FALSE(fs::exists(d + "/escaped"));
  WriteTar(d + "/abs.tar.gz", {{"/etc/evil", AE_IFREG, 0644}});
  st = ExtractRootfsArchive(d + "/abs.tar.gz", d + "/out2");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("leaves the root"), std::string::npos);
}

TEST(RootfsArchive, SetuidBitsAndDeviceNodesAreDropped) {
  std::string d = TempDir("tar-suid");
  WriteTar(d + "/r.tar.gz", {{"./bin", AE_IFDIR, 0755}, {"./bin/su", AE_IFREG, 04755},
                             {"./bin/sg", AE_IFREG, 02755}, {"./dev", AE_IFDIR, 0755},
                             {"./dev/mem", AE_IFCHR, 0600}});
  ASSERT_TRUE(ExtractRootfsArchive(d + "/r.tar.gz", d + "/out"));
  struct stat st;
  ASSERT_EQ(::stat((d + "/out/bin/su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((d + "/out/bin/sg").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_TRUE(fs::is_directory(d + "/out/dev"));
  EXPECT_FALSE(fs::exists(d + "/out/dev/mem"));
}

}  // namespace
}  // namespace mentat::hull
