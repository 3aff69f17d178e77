// mt base build / mt base list, the real binary against a temp bases dir: the first build says
// what it built and where, the second that it is up to date, --force rebuilds, the list is a
// table with the real BusyBox version; an unknown base exits 1 with a did-you-mean, a missing
// name exits 2, and an empty dir lists nothing and says how to build. No server is involved.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

namespace fs = std::filesystem;

CommandResult Mt(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("cmd/mt/mt")};
  argv.insert(argv.end(), args.begin(), args.end());
  // No server anywhere: `mt base` must not need one.
  return RunCommand(argv, {"MENTAT_ADDR=http://127.0.0.1:1"});
}

TEST(MtBaseTest, BuildListAndRebuildStatic) {
  std::string dir = TempDir("mt-base");
  auto empty = Mt({"base", "list", "--dir", dir});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
  EXPECT_EQ(empty.err, "No bases built in " + dir +
                           " (mt base build NAME; known: java21, node22, python312, static).\n");

  auto built = Mt({"base", "build", "static", "--dir", dir});
  ASSERT_EQ(built.exit_code, 0) << built.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      built.out, m,
      std::regex("built static: (BusyBox v1\\.[0-9.]+), [0-9.]+ MiB in [0-9.]+ m?s\n"
                 "rootfs: (.*/static/build-[0-9a-z-]+/rootfs)\n")))
      << built.out;
  std::string version = m[1], rootfs = m[2];
  EXPECT_TRUE(fs::is_regular_file(rootfs + "/bin/busybox"));
  EXPECT_TRUE(fs::is_symlink(rootfs + "/usr/sbin/httpd"));

  auto again = Mt({"base", "build", "static", "--dir", dir});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(std::regex_match(
      again.out, std::regex("static is up to date: " + version +
                            ", [0-9.]+ MiB, built [0-9T:-]+Z\nrootfs: " + rootfs + "\n")))
      << again.out;

  auto list = Mt({"base", "list", "--dir", dir});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(
      std::regex_match(list.out, std::regex("NAME +VERSION +SIZE +BUILT\n"
                                            "static +" +
                                            version + " +[0-9.]+ MiB +20[0-9-]+T[0-9:]+Z\n")))
      << list.out;

  auto forced = Mt({"base", "build", "static", "--dir", dir, "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out.rfind("built static: " + version, 0), 0u) << forced.out;
  EXPECT_EQ(forced.out.find(rootfs), std::string::npos) << "--force reused the old build";
}

TEST(MtBaseTest, ErrorsAndExitCodes) {
  std::string dir = TempDir("mt-base-errors");
  auto typo = Mt({"base", "build", "statik", "--dir", dir});
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_EQ(typo.err,
            "error: no base named \"statik\", did you mean \"static\"? (known bases: java21, "
            "node22, python312, static)\n");
  EXPECT_EQ(typo.out, "");

  auto no_name = Mt({"base", "build", "--dir", dir});
  EXPECT_EQ(no_name.exit_code, 2);
  EXPECT_NE(no_name.err.find("name is required"), std::string::npos) << no_name.err;

  auto no_action = Mt({"base"});
  EXPECT_EQ(no_action.exit_code, 2);

  // A bases dir that cannot be created.
  auto blocked_parent = dir + "/file";
  WriteFile(blocked_parent, "not a directory");
  auto blocked = Mt({"base", "build", "static", "--dir", blocked_parent + "/bases"});
  EXPECT_EQ(blocked.exit_code, 1);
  EXPECT_EQ(blocked.err.rfind("error: creating " + blocked_parent + "/bases/static", 0), 0u)
      << blocked.err;
}

}  // namespace
}  // namespace mentat::e2e
