// Unit tests of mt's pure parts: configuration precedence and parsing, durations, object
// references and the unified diff. Behaviour against a server is in e2e/mt_*_e2e_test.cc.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "cmd/mt/args.h"
#include "cmd/mt/config.h"
#include "cmd/mt/unified_diff.h"

namespace mentat::mt {
namespace {

using namespace std::chrono_literals;

TEST(Config, FlagBeatsEnvBeatsFileBeatsDefault) {
  std::string home = std::string(std::getenv("TEST_TMPDIR")) + "/home-precedence";
  std::filesystem::create_directories(home + "/.mentat");
  std::ofstream(home + "/.mentat/config") << "# mine\nserver: http://file:1\ntoken: file-token\n"
                                             "namespace: team\n";
  std::map<std::string, std::string> env = {{"HOME", home}};
  auto getenv = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  ConfigFlags none;
  auto c = ResolveConfig(none, getenv);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->server.value, "http://file:1");
  EXPECT_EQ(c->server.source, home + "/.mentat/config:2");
  EXPECT_EQ(c->token.value, "file-token");
  EXPECT_EQ(c->ns.value, "team");
  EXPECT_EQ(c->ca_file.value, "");

  env["MENTAT_ADDR"] = "http://env:2";
  c = ResolveConfig(none, getenv);
  EXPECT_EQ(c->server.value, "http://env:2");
  EXPECT_EQ(c->server.source, "MENTAT_ADDR");
  EXPECT_EQ(c->token.value, "file-token");

  ConfigFlags flags;
  flags.server = "http://flag:3";
  c = ResolveConfig(flags, getenv);
  EXPECT_EQ(c->server.value, "http://flag:3");
  EXPECT_EQ(c->server.source, "--server");

  env.erase("HOME");
  env.erase("MENTAT_ADDR");
  c = ResolveConfig(none, getenv);
  EXPECT_EQ(c->server.value, kDefaultServer);
  EXPECT_EQ(c->server.source, "default");
  EXPECT_EQ(c->ns.value, "default");
}

TEST(Config, MalformedFileNamesFileAndLine) {
  auto bad = ParseConfigFile("/h/.mentat/config", "server: http://x\nsever: http://y\n");
  ASSERT_FALSE(bad);
  ASSERT_EQ(bad.error().details().size(), 1u);
  EXPECT_EQ(bad.error().details()[0].source, "/h/.mentat/config");
  EXPECT_EQ(bad.error().details()[0].line, 2);
  EXPECT_NE(bad.error().details()[0].message.find("unknown setting \"sever\""), std::string::npos);

  auto syntax = ParseConfigFile("/h/.mentat/config", "server: http://x\ntoken: [unclosed\n");
  ASSERT_FALSE(syntax);
  ASSERT_FALSE(syntax.error().details().empty());
  EXPECT_EQ(syntax.error().details()[0].source, "/h/.mentat/config");
  EXPECT_GE(syntax.error().details()[0].line, 2);

  auto not_map = ParseConfigFile("/c", "- a\n- b\n");
  ASSERT_FALSE(not_map);
  EXPECT_EQ(not_map.error().details()[0].line, 1);

  auto number = ParseConfigFile("/c", "server: http://x\ntoken: 12\n");
  ASSERT_FALSE(number);
  EXPECT_EQ(number.error().details()[0].line, 2);

  EXPECT_TRUE(ParseConfigFile("/c", ""));
  EXPECT_TRUE(ParseConfigFile("/c", "# only a comment\n"));
}

TEST(Args, Durations) {
  EXPECT_EQ(*ParseDuration("90s"), 90s);
  EXPECT_EQ(*ParseDuration("2m"), 120s);
  EXPECT_EQ(*ParseDuration("1m30s"), 90s);
  EXPECT_EQ(*ParseDuration("1h"), 3600s);
  EXPECT_EQ(*ParseDuration("500ms"), 500ms);
  EXPECT_EQ(*ParseDuration("5"), 5s);
  EXPECT_FALSE(ParseDuration("5x"));
  EXPECT_FALSE(ParseDuration(""));
  EXPECT_FALSE(ParseDuration("s"));
  EXPECT_EQ(FormatDuration(60s), "1m");
  EXPECT_EQ(FormatDuration(90s), "1m30s");
  EXPECT_EQ(FormatDuration(1500ms), "1.5s");
}

TEST(Args, References) {
  auto a = ParseRefs({"svc/web", "node/vm"}, false);
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[0].kind.kind, "Service");
  EXPECT_EQ((*a)[0].name, "web");
  EXPECT_EQ((*a)[1].kind.kind, "Node");
  auto b = ParseRefs({"services", "a", "b"}, false);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size(), 2u);
  EXPECT_FALSE(ParseRefs({"services"}, false));
  EXPECT_TRUE(ParseRefs({"services"}, true));
  EXPECT_FALSE(ParseRefs({"gizmos", "a"}, false));
  EXPECT_FALSE(ParseRefs({"services", "x/y"}, false));
  EXPECT_FALSE(ParseRefs({"service/"}, false));
}

TEST(UnifiedDiff, SameTextIsEmpty) { EXPECT_EQ(UnifiedDiff("a\nb\n", "a\nb\n", "x", "y"), ""); }

TEST(UnifiedDiff, ChangeWithContext) {
  std::string before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
  std::string after = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n";
  EXPECT_EQ(UnifiedDiff(before, after, "a", "b"),
            "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n");
}

TEST(UnifiedDiff, CreationAndSeparateHunks) {
  EXPECT_EQ(UnifiedDiff("", "a\nb\n", "old", "new"), "--- old\n+++ new\n@@ -0,0 +1,2 @@\n+a\n+b\n");
  std::string before, after;
  for (int i = 1; i <= 20; ++i) {
    before += std::to_string(i) + "\n";
    after += (i == 2 || i == 19 ? "x" : std::to_string(i)) + "\n";
  }
  std::string d = UnifiedDiff(before, after, "a", "b");
  EXPECT_NE(d.find("@@ -1,5 +1,5 @@"), std::string::npos) << d;
  EXPECT_NE(d.find("@@ -16,5 +16,5 @@"), std::string::npos) << d;
}

}  // namespace
}  // namespace mentat::mt
