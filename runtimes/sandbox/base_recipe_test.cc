// Base recipes: the compiled-in ones parse, hash and are found by name (with a did-you-mean for
// a typo); invalid recipes are refused with the line of each problem. dpkg's status database is
// read for installed packages and their versions.
#include "runtimes/sandbox/base_recipe.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "runtimes/sandbox/bases.h"
#include "runtimes/sandbox/dpkg_status.h"

namespace mentat {
namespace {

const FieldError* Detail(const Error& e, const std::string& field) {
  for (const auto& d : e.details()) {
    if (d.field == field) return &d;
  }
  return nullptr;
}

TEST(BaseRecipeTest, TheFourBasesOfTheSeedAreCompiledIn) {
  EXPECT_EQ(KnownBases(), (std::vector<std::string>{"java21", "node22", "python312", "static"}));
  std::set<std::string> hashes;
  for (const auto& name : KnownBases()) {
    auto r = KnownBaseRecipe(name);
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->name, name);
    EXPECT_FALSE(r->version_command.empty()) << name;
    EXPECT_FALSE(r->packages.empty()) << name;
    EXPECT_EQ(r->hash.size(), 64u);
    hashes.insert(r->hash);
  }
  EXPECT_EQ(hashes.size(), 4u);
}

TEST(BaseRecipeTest, PythonRecipeUsesDebianPathsNotAPathLookup) {
  auto r = KnownBaseRecipe("python312");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version_command[0], "/usr/bin/python3.11");
  EXPECT_EQ(r->files[0].path, "/usr/bin/python3.11");
  bool sh = false;
  for (const auto& s : r->symlinks) sh |= s.path == "/bin/sh" && s.target == "dash";
  EXPECT_TRUE(sh);
  ASSERT_FALSE(r->trees.empty());
  EXPECT_EQ(r->trees[0].path, "/usr/lib/python3.11");
  EXPECT_NE(std::find(r->trees[0].exclude.begin(), r->trees[0].exclude.end(), "test"),
            r->trees[0].exclude.end());
}

TEST(BaseRecipeTest, TheHashFollowsTheText) {
  const char* text = "files: [/bin/busybox]\nversion: {command: [/bin/busybox], pattern: x}\n";
  auto a = ParseBaseRecipe("mini", text);
  auto b = ParseBaseRecipe("mini", text);
  auto c = ParseBaseRecipe("mini", std::string(text) + "# a comment is a change too\n");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->hash, b->hash);
  EXPECT_NE(a->hash, c->hash);
  EXPECT_EQ(a->version_format, "{}");
}

TEST(BaseRecipeTest, AnUnknownNameListsTheKnownOnesWithADidYouMean) {
  auto r = KnownBaseRecipe("pyhton312");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_EQ(r.error().message(),
            "no base named \"pyhton312\", did you mean \"python312\"? (known bases: java21, "
            "node22, python312, static)");
  // Off by more than two letters, but close to a name's letters.
  for (const auto& [typo, meant] :
       std::vector<std::pair<std::string, std::string>>{{"pyton", "python312"},
                                                        {"nodejs", "node22"},
                                                        {"java", "java21"},
                                                        {"python3", "python312"}}) {
    auto r2 = KnownBaseRecipe(typo);
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message().find("did you mean \"" + meant + "\"?"), std::string::npos)
        << r2.error().message();
  }
  auto far = KnownBaseRecipe("ruby");
  ASSERT_FALSE(far);
  EXPECT_EQ(far.error().message(),
            "no base named \"ruby\" (known bases: java21, node22, python312, static)");
}

TEST(BaseRecipeTest, InvalidRecipesAreRefusedWithTheLineOfEachProblem) {
  auto r = ParseBaseRecipe("bad",
                           "name: other\n"
                           "pakages: [x]\n"
                           "files:\n"
                           "  - usr/bin/relative\n"
                           "  - {path: /ok, optinal: true}\n"
                           "trees:\n"
                           "  - {path: /usr/lib/x/../y}\n"
                           "version:\n"
                           "  command: [python3, --version]\n"
                           "  pattern: '(unclosed'\n"
                           "  format: 'no placeholder'\n");
  ASSERT_FALSE(r);
  const Error& e = r.error();
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_EQ(e.message(), "base recipe bad is invalid");
  ASSERT_TRUE(Detail(e, "name"));
  EXPECT_EQ(Detail(e, "name")->message, "is \"other\" but the file is bad.yaml");
  ASSERT_TRUE(Detail(e, "pakages"));
  EXPECT_EQ(Detail(e, "pakages")->message, "unknown field, did you mean \"packages\"?");
  EXPECT_EQ(Detail(e, "pakages")->line, 2);
  EXPECT_EQ(Detail(e, "pakages")->source, "runtimes/sandbox/bases/bad.yaml");
  ASSERT_TRUE(Detail(e, "files[0]"));
  EXPECT_EQ(Detail(e, "files[0]")->line, 4);
  ASSERT_TRUE(Detail(e, "files[1].optinal"));
  EXPECT_NE(Detail(e, "files[1].optinal")->message.find("did you mean \"optional\""),
            std::string::npos);
  ASSERT_TRUE(Detail(e, "trees[0].path"));
  ASSERT_TRUE(Detail(e, "version.command[0]"));
  EXPECT_EQ(Detail(e, "version.command[0]")->message,
            "must be an absolute path: bases do not search a PATH");
  ASSERT_TRUE(Detail(e, "version.pattern"));
  ASSERT_TRUE(Detail(e, "version.format"));
}

TEST(BaseRecipeTest, VersionIsRequiredAndSoIsSomethingToCopy) {
  auto r = ParseBaseRecipe("empty", "description: nothing\n");
  ASSERT_FALSE(r);
  EXPECT_TRUE(Detail(r.error(), "version"));
  EXPECT_TRUE(Detail(r.error(), "files"));
  auto bad_name = ParseBaseRecipe("Bad_Name", "files: [/x]\n");
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().code(), Code::kInvalidArgument);
}

TEST(DpkgStatusTest, InstalledPackagesAndTheirVersions) {
  std::string path = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
                     "/dpkg-status";
  std::ofstream(path) << "Package: busybox-static\n"
                         "Status: install ok installed\n"
                         "Version: 1:1.35.0-4+deb12u1+b1\n"
                         "Description: multi\n line\n"
                         "\n"
                         "Package: removed\n"
                         "Status: deinstall ok config-files\n"
                         "Version: 1.0\n"
                         "\n"
                         "Package: libc6\n"
                         "Architecture: amd64\n"
                         "Version: 2.36-9\n"
                         "Status: install ok installed\n";
  auto v = InstalledVersions({"busybox-static", "removed", "libc6", "absent"}, path);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (std::map<std::string, std::string>{{"busybox-static", "1:1.35.0-4+deb12u1+b1"},
                                                    {"libc6", "2.36-9"}}));
  EXPECT_FALSE(InstalledVersions({"x"}, path + ".missing"));
}

}  // namespace
}  // namespace mentat
