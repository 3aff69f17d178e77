// mt apply --prune --applyset against a real server: the server labels what it applies
// mentat.io/applyset=NAME and, in the same transaction, deletes the set's objects the request
// no longer declares; mt prints them as "service/x pruned". Objects outside the set, or in
// another set, are never touched. Needs the server side of POST /v1/apply?applyset=&prune=
// (tagged manual in BUILD until it lands).
#include <gtest/gtest.h>

#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using Json = nlohmann::json;

class MtPruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("mt-prune");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log");
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
  }
  CommandResult Mt(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "-u",
                                     "MENTAT_TOKEN",
                                     "-u",
                                     "NO_COLOR",
                                     "HOME=" + dir_,
                                     "MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_),
                                     Runfile("cmd/mt/mt")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  std::string Service(const std::string& name) {
    std::string f = dir_ + "/" + name + ".yaml";
    WriteFile(f, "name: " + name + "\ndriver: exec\ncommand: /bin/true\n");
    return f;
  }
  bool Exists(const std::string& name) { return Mt({"get", "service", name}).exit_code == 0; }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(MtPruneTest, PruneDeletesOnlyWhatTheApplysetNoLongerDeclares) {
  std::string a = Service("a"), b = Service("b"), c = Service("c"), d = Service("d");
  auto r = Mt({"apply", "-f", a, "-f", b, "--applyset", "demo", "--prune"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/a created\nservice/b created\n");
  Json got = Json::parse(Mt({"get", "service", "a", "-o", "json"}).out);
  EXPECT_EQ(got["metadata"]["labels"]["mentat.io/applyset"], "demo") << got.dump();
  ASSERT_EQ(Mt({"apply", "-f", c}).exit_code, 0);                         // in no set
  ASSERT_EQ(Mt({"apply", "-f", d, "--applyset", "other"}).exit_code, 0);  // in another set

  // What the set no longer declares: a dry run and diff show it, and nothing is deleted yet.
  r = Mt({"apply", "-f", a, "--applyset", "demo", "--prune", "--dry-run=server"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("service/b pruned (server dry run)\n"), std::string::npos) << r.out;
  EXPECT_TRUE(Exists("b"));
  r = Mt({"diff", "-f", a, "--applyset", "demo", "--prune"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("--- service/b (default) (live)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n-kind: Service\n"), std::string::npos) << r.out;

  // The real thing.
  r = Mt({"apply", "-f", a, "--applyset", "demo", "--prune"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("service/a unchanged\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("service/b pruned\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("service/c"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("service/d"), std::string::npos) << r.out;
  EXPECT_FALSE(Exists("b"));
  EXPECT_TRUE(Exists("a"));
  EXPECT_TRUE(Exists("c"));
  EXPECT_TRUE(Exists("d"));
}

}  // namespace
}  // namespace mentat::e2e
