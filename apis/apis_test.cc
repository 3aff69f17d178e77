// apis/: decoding, normalization to one canonical spec, validation with field paths and lines,
// hostile input, and the YAML round trip.
#include <gtest/gtest.h>

#include "apis/error.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

Json Canonical(const std::string& yaml) {
  auto obj = NormalizeManifestText(yaml);
  EXPECT_TRUE(obj) << obj.error().ToString();
  return obj ? *obj : Json();
}

Error Rejected(const std::string& yaml) {
  auto obj = NormalizeManifestText(yaml);
  EXPECT_FALSE(obj) << "accepted: " << (obj ? obj->dump() : "");
  return obj ? Error() : obj.error();
}

const FieldError* Detail(const Error& e, const std::string& field) {
  for (const auto& d : e.details()) {
    if (d.field == field) return &d;
  }
  return nullptr;
}

TEST(Normalize, EveryDriverAndCountFormGivesTheSameSpec) {
  Json a = Canonical("name: web\ndriver: exec\ncommand: /bin/app\ncount: 2\n");
  Json b = Canonical("name: web\nconfig:\n  driver: exec\n  command: /bin/app\nreplicas: 2\n");
  Json c = Canonical("name: web\ndriver: exec\ncommand: /bin/app\nscale:\n  min: 2\n");
  EXPECT_EQ(a["spec"]["driver"], "exec");
  EXPECT_EQ(a["spec"]["count"], 2);
  EXPECT_EQ(a["spec"], b["spec"]);
  c["spec"].erase("scale");
  EXPECT_EQ(a["spec"], c["spec"]);
}

TEST(Normalize, EveryEnvFormGivesTheSameList) {
  const std::string head = "name: web\ndriver: exec\ncommand: /bin/app\n";
  Json map = Canonical(head + "env:\n  A: \"1\"\n  B: two\n");
  Json pairs = Canonical(head + "env:\n  - - A\n    - \"1\"\n  - [B, two]\n");
  Json strings = Canonical(head + "env: [\"A=1\", \"B=two\"]\n");
  Json expected = Json::parse(R"([{"name":"A","value":"1"},{"name":"B","value":"two"}])");
  EXPECT_EQ(map["spec"]["env"], expected);
  EXPECT_EQ(pairs["spec"]["env"], expected);
  EXPECT_EQ(strings["spec"]["env"], expected);
}

TEST(Normalize, DefaultsAndMetadata) {
  Json s = Canonical("name: web\ndriver: exec\ncommand: /bin/app\n");
  EXPECT_EQ(s["apiVersion"], "mentat.io/v1");
  EXPECT_EQ(s["kind"], "Service");
  EXPECT_EQ(s["metadata"]["namespace"], "default");
  EXPECT_EQ(s["spec"]["count"], 1);
  EXPECT_EQ(s["spec"]["restart"], "always");
}

TEST(Normalize, CanonicalFormRoundTripsThroughYaml) {
  Json first = Canonical(
      "name: web\ndriver: exec\ncommand: /usr/bin/python3\nargs: [\"-m\", \"http.server\", 8080]\n"
      "env:\n  PORT: \"8080\"\n  DEBUG: \"true\"\n  EMPTY: \"\"\nport: 8080\ncwd: /tmp\n");
  std::string printed = EncodeYaml(first);
  Json second = Canonical(printed);
  EXPECT_EQ(first, second) << printed;
  // Strings that look like numbers or booleans stay strings.
  EXPECT_EQ(second["spec"]["args"][2], "8080");
  // An env map comes out sorted by name: DEBUG, EMPTY, PORT.
  EXPECT_EQ(second["spec"]["env"][0]["value"], "true");
  EXPECT_EQ(second["spec"]["env"][1]["value"], "");
}

TEST(Validate, ReportsEveryProblemWithFieldAndLine) {
  Error e = Rejected(
      "name: Web_App\n"      // 1
      "driver: exce\n"       // 2
      "replicas: -1\n"       // 3
      "resources:\n"         // 4
      "  memory: 1g\n"       // 5
      "imagee: x\n");        // 6
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  ASSERT_TRUE(Detail(e, "name"));
  EXPECT_EQ(Detail(e, "name")->line, 1);
  ASSERT_TRUE(Detail(e, "driver"));
  EXPECT_EQ(Detail(e, "driver")->line, 2);
  EXPECT_NE(Detail(e, "driver")->message.find("did you mean \"exec\""), std::string::npos);
  ASSERT_TRUE(Detail(e, "replicas"));
  EXPECT_EQ(Detail(e, "replicas")->line, 3);
  ASSERT_TRUE(Detail(e, "imagee"));
  EXPECT_EQ(Detail(e, "imagee")->line, 6);
  EXPECT_EQ(Detail(e, "imagee")->column, 1);
  EXPECT_NE(Detail(e, "imagee")->message.find("did you mean \"image\""), std::string::npos);
  // Sorted in source order.
  for (size_t i = 1; i < e.details().size(); ++i) {
    EXPECT_LE(e.details()[i - 1].line, e.details()[i].line);
  }
}

TEST(Validate, ExecNeedsACommand) {
  Error e = Rejected("name: web\ndriver: exec\n");
  ASSERT_TRUE(Detail(e, "command"));
}

TEST(Validate, ConflictingFormsAreRefused) {
  Error e = Rejected("name: web\ndriver: exec\ncommand: /a\ncount: 2\nreplicas: 3\n");
  ASSERT_TRUE(Detail(e, "replicas"));
  EXPECT_EQ(Detail(e, "replicas")->line, 5);
  Error f = Rejected("name: web\ndriver: exec\ncommand: /a\nconfig:\n  driver: docker\n");
  ASSERT_TRUE(Detail(f, "config.driver"));
}

TEST(Validate, NamesAreDnsLabels) {
  EXPECT_TRUE(IsDnsLabel("a"));
  EXPECT_TRUE(IsDnsLabel("web-1"));
  EXPECT_TRUE(IsDnsLabel(std::string(63, 'a')));
  EXPECT_FALSE(IsDnsLabel(std::string(64, 'a')));
  EXPECT_FALSE(IsDnsLabel(""));
  EXPECT_FALSE(IsDnsLabel("-web"));
  EXPECT_FALSE(IsDnsLabel("web-"));
  EXPECT_FALSE(IsDnsLabel("Web"));
  EXPECT_FALSE(IsDnsLabel("../etc"));
}

TEST(Hostile, AliasBombIsRefusedNotExpanded) {
  std::string bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? "," : "") + "*" + prev;
    bomb += "]\n";
  }
  auto r = DecodeYaml(bomb);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().ToString().find("alias"), std::string::npos) << r.error().ToString();
}

TEST(Hostile, DeepNestingIsRefused) {
  std::string deep = std::string(10000, '[') + std::string(10000, ']');
  auto r = DecodeYaml(deep);
  ASSERT_FALSE(r);
}

TEST(Hostile, OversizedDocumentIsRefused) {
  std::string big = "name: web\nargs: [\"" + std::string(kMaxManifestBytes, 'x') + "\"]\n";
  auto r = DecodeYaml(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kTooLarge);
}

TEST(Hostile, InvalidUtf8IsRefusedWithItsPosition) {
  auto r = DecodeYaml("name: web\ndriver: \xff\xfe\n");
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().details().size(), 1u);
  EXPECT_EQ(r.error().details()[0].line, 2);
  EXPECT_EQ(r.error().details()[0].column, 9);
}

TEST(Hostile, DuplicateKeysAndTabsAreRefused) {
  auto dup = DecodeYaml("name: web\nname: other\n");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().details()[0].line, 2);
  EXPECT_NE(dup.error().details()[0].message.find("duplicate key"), std::string::npos);
  auto tab = DecodeYaml("name: web\nconfig:\n\tdriver: exec\n");
  ASSERT_FALSE(tab);
  EXPECT_EQ(tab.error().details()[0].line, 3);
}

TEST(Hostile, MalformedYamlNamesTheLine) {
  auto r = DecodeYaml("name: web\nargs: [a, b\ndriver: exec\n");
  ASSERT_FALSE(r);
  ASSERT_FALSE(r.error().details().empty());
  EXPECT_GE(r.error().details()[0].line, 2);
}

TEST(Stream, MultiDocumentKeepsFileLines) {
  auto docs = DecodeYamlStream("name: a\ndriver: exec\n---\n# c\nname: b\n---\n---\nname: c\n");
  ASSERT_TRUE(docs) << docs.error().ToString();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[1].value["name"], "b");
  EXPECT_EQ((*docs)[1].marks.at("name").line, 5);
  EXPECT_EQ((*docs)[2].marks.at("name").line, 8);
}

TEST(ErrorType, JsonBodyRoundTrips) {
  Error e(Code::kInvalidArgument, "Service \"x\" is invalid",
          {{"spec.count", 3, 8, "must be a whole number"}});
  Json j = e.ToJson();
  EXPECT_EQ(j["code"], 400);
  EXPECT_EQ(j["reason"], "Invalid");
  Error back = Error::FromJson(400, j.dump());
  EXPECT_EQ(back.code(), Code::kInvalidArgument);
  ASSERT_EQ(back.details().size(), 1u);
  EXPECT_EQ(back.details()[0].line, 3);
  EXPECT_EQ(back.details()[0].field, "spec.count");
}

TEST(LabelSelectors, EqualityInequalityAndExistence) {
  Json obj = {{"metadata", {{"labels", {{"app", "web"}, {"tier", "front"}}}}}};
  EXPECT_TRUE(LabelSelector::Parse("app=web")->Matches(obj));
  EXPECT_TRUE(LabelSelector::Parse("app==web,tier")->Matches(obj));
  EXPECT_FALSE(LabelSelector::Parse("app!=web")->Matches(obj));
  EXPECT_FALSE(LabelSelector::Parse("!tier")->Matches(obj));
  EXPECT_TRUE(LabelSelector::Parse("missing!=x")->Matches(obj));
  EXPECT_FALSE(LabelSelector::Parse("a=b,,c"));
}

}  // namespace
}  // namespace mentat
