// apis/apply: the rules the server's apply and mt's diff and delete -f share.
#include "apis/apply.h"

#include <gtest/gtest.h>

namespace mentat {
namespace {

TEST(NameFromSource, IsTheBaseNameUpToTheFirstDot) {
  EXPECT_EQ(NameFromSource("dir/api-service.yaml"), "api-service");
  EXPECT_EQ(NameFromSource("a/b/web.yml"), "web");
  EXPECT_EQ(NameFromSource("web.service.json"), "web");
  EXPECT_EQ(NameFromSource("web"), "web");
  EXPECT_EQ(NameFromSource("./x1.yaml"), "x1");
}

TEST(NameFromSource, IsEmptyWhenTheBaseNameIsNoDnsLabel) {
  EXPECT_EQ(NameFromSource(""), "");
  EXPECT_EQ(NameFromSource("<stdin>"), "");
  EXPECT_EQ(NameFromSource("dir/My_App.yaml"), "");
  EXPECT_EQ(NameFromSource("dir/.hidden.yaml"), "");
  EXPECT_EQ(NameFromSource("dir/"), "");
  EXPECT_EQ(NameFromSource("dir/-web.yaml"), "");
  EXPECT_EQ(NameFromSource("dir/" + std::string(64, 'a') + ".yaml"), "");
  EXPECT_EQ(NameFromSource("dir/" + std::string(63, 'a') + ".yaml"), std::string(63, 'a'));
}

TEST(DefaultNameForFile, NamesOnlyAFileOfOneDocument) {
  EXPECT_EQ(DefaultNameForFile("dir/api.yaml", 1), "api");
  EXPECT_EQ(DefaultNameForFile("dir/api.yaml", 2), "");
  EXPECT_EQ(DefaultNameForFile("dir/api.yaml", 0), "");
  EXPECT_EQ(DefaultNameForFile("<stdin>", 1), "");
}

TEST(EraseServerOwnedMetadata, ErasesExactlyTheServerOwnedFields) {
  Json o = {{"kind", "Service"},
            {"metadata",
             {{"name", "web"},
              {"namespace", "default"},
              {"labels", {{"app", "web"}}},
              {"annotations", {{"a", "b"}}},
              {"resourceVersion", "7"},
              {"uid", "u-1"},
              {"generation", 3},
              {"creationTimestamp", "2024-01-01T00:00:00Z"},
              {"deletionTimestamp", "2024-01-02T00:00:00Z"},
              {"finalizers", {"x"}},
              {"managedFields", Json::array()}}},
            {"spec", {{"resourceVersion", "kept"}}},
            {"status", {{"uid", "kept"}}}};
  EraseServerOwnedMetadata(o);
  Json want = {{"kind", "Service"},
               {"metadata",
                {{"name", "web"},
                 {"namespace", "default"},
                 {"labels", {{"app", "web"}}},
                 {"annotations", {{"a", "b"}}},
                 {"finalizers", {"x"}},
                 {"managedFields", Json::array()}}},
               {"spec", {{"resourceVersion", "kept"}}},
               {"status", {{"uid", "kept"}}}};
  EXPECT_EQ(o, want);
}

TEST(EraseServerOwnedMetadata, LeavesAnObjectWithoutMetadataAsItIs) {
  Json none = {{"kind", "Service"}};
  EraseServerOwnedMetadata(none);
  EXPECT_EQ(none, Json({{"kind", "Service"}}));
  Json odd = {{"metadata", "x"}};
  EraseServerOwnedMetadata(odd);
  EXPECT_EQ(odd, Json({{"metadata", "x"}}));
  Json null;
  EraseServerOwnedMetadata(null);
  EXPECT_TRUE(null.is_null());
}

}  // namespace
}  // namespace mentat
