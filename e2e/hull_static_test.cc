// hull is static (//cmd/hull:hull): no program interpreter (no PT_INTERP, so no dynamic
// loader or shared library is needed), at most 3 MB (seed 003), and a working hull: `version`,
// and a container run end to end (root, hence no-sandbox).
#include <elf.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/harness.h"
#include "runtimes/sandbox/sandbox_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

const std::string& Static() {
  static const std::string path = e2e::Runfile("cmd/hull/hull");
  return path;
}

TEST(HullStatic, HasNoProgramInterpreter) {
  std::ifstream f(Static(), std::ios::binary);
  Elf64_Ehdr eh{};
  ASSERT_TRUE(f.read(reinterpret_cast<char*>(&eh), sizeof(eh)));
  ASSERT_EQ(std::string(reinterpret_cast<char*>(eh.e_ident), 4), "\x7f" "ELF");
  ASSERT_EQ(eh.e_ident[EI_CLASS], ELFCLASS64);
  EXPECT_EQ(eh.e_type, ET_EXEC) << "a static, non-PIE executable";
  int loads = 0;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + i * eh.e_phentsize));
    ASSERT_TRUE(f.read(reinterpret_cast<char*>(&ph), sizeof(ph)));
    EXPECT_NE(ph.p_type, PT_INTERP) << "hull asks for a dynamic loader";
    EXPECT_NE(ph.p_type, PT_DYNAMIC) << "hull has a dynamic section";
    loads += ph.p_type == PT_LOAD;
  }
  EXPECT_GT(loads, 0);
  // And the system's own verdict.
  auto ldd = e2e::RunCommand({"/usr/bin/ldd", Static()});
  EXPECT_NE((ldd.out + ldd.err).find("not a dynamic executable"), std::string::npos) << ldd.out << ldd.err;
}

TEST(HullStatic, IsAtMostThreeMegabytes) {
  auto size = std::filesystem::file_size(Static());
  std::printf("hull: %ju bytes (%.2f MB)\n", static_cast<uintmax_t>(size), size / 1e6);
  EXPECT_LE(size, 3'000'000u);
}

TEST(HullStatic, VersionAndARealContainer) {
  auto v = e2e::RunCommand({Static(), "version"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.out.rfind("hull ", 0), 0u) << v.out;
  EXPECT_NE(v.out.find("libseccomp 2."), std::string::npos) << v.out;

  std::string dir = e2e::TempDir("static");
  const std::vector<std::string> env = {"HULL_STATE_DIR=" + dir + "/state",
                                        "MENTAT_SANDBOX_INIT=" + e2e::Runfile("cmd/sandbox-init/sandbox-init")};
  nlohmann::json m = {{"name", "static-run"},
                      {"rootfs", BusyboxRoot()},
                      {"argv", {"/bin/sh", "-c", "echo pid $$ in $(hostname)"}},
                      {"limits", {{"memory_mb", 32}, {"pids", 16}}}};
  e2e::WriteFile(dir + "/m.json", m.dump());
  auto run = e2e::RunCommand({Static(), "run", dir + "/m.json"}, env);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json j;
  ASSERT_TRUE(e2e::WaitFor(
      [&] {
        j = nlohmann::json::parse(e2e::RunCommand({Static(), "inspect", "static-run"}, env).out, nullptr, false);
        return !j.is_discarded() && j.value("status", "") == "exited";
      },
      10s));
  EXPECT_EQ(j["exit"].value("exit_code", -1), 0) << j.dump();
  EXPECT_EQ(e2e::ReadFile(dir + "/state/containers/static-run/stdout.log"), "pid 2 in static-run\n");
}

}  // namespace
}  // namespace mentat
