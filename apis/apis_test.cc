// apis/: decoding, normalization to one canonical spec, validation with field paths and lines,
// hostile input, and the YAML round trip.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "apis/error.h"
#include "apis/docker_security.h"
#include "apis/security_profile.h"
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

TEST(Normalize, ChecksGetTheirDefaultsAndTheServicePort) {
  Json spec = Canonical(
      "name: web\ndriver: exec\ncommand: /a\nport: 8080\nchecks:\n"
      "  - type: http\n    path: /healthz\n  - {type: tcp, port: 9090, interval: 500ms}\n"
      "  - {type: exec, command: /bin/check, failure_threshold: 5}\n")["spec"];
  ASSERT_EQ(spec["checks"].size(), 3u) << spec.dump();
  EXPECT_EQ(spec["checks"][0], Json::parse(R"({"type":"http","port":8080,"path":"/healthz","interval":"10s",
      "timeout":"1s","success_threshold":1,"failure_threshold":3})"));
  EXPECT_EQ(spec["checks"][1]["port"], 9090);
  EXPECT_EQ(spec["checks"][1]["interval"], "500ms");
  EXPECT_EQ(spec["checks"][2]["command"], Json::array({"/bin/check"}));
  EXPECT_EQ(spec["checks"][2]["failure_threshold"], 5);
}

TEST(Validate, BadChecksNameTheFieldAndLine) {
  Error e = Rejected(
      "name: web\ndriver: exec\ncommand: /a\n"  // 1-3
      "checks:\n"                                 // 4
      "  - type: htp\n"                           // 5
      "  - type: tcp\n"                           // 6: no port anywhere
      "  - type: http\n    port: 80\n    path: healthz\n"  // 7-9
      "  - type: exec\n"                          // 10: no command
      "  - type: tcp\n    port: 1\n    interval: 1ms\n    retries: 3\n");  // 11-14
  ASSERT_TRUE(Detail(e, "checks[0].type")) << e.ToString();
  EXPECT_EQ(Detail(e, "checks[0].type")->line, 5);
  EXPECT_NE(Detail(e, "checks[0].type")->message.find("did you mean \"http\""), std::string::npos);
  ASSERT_TRUE(Detail(e, "checks[1].port")) << e.ToString();
  EXPECT_NE(Detail(e, "checks[1].port")->message.find("the service sets none"), std::string::npos);
  ASSERT_TRUE(Detail(e, "checks[2].path"));
  EXPECT_EQ(Detail(e, "checks[2].path")->line, 9);
  EXPECT_NE(Detail(e, "checks[2].path")->message.find("must start with /"), std::string::npos);
  ASSERT_TRUE(Detail(e, "checks[3].command"));
  ASSERT_TRUE(Detail(e, "checks[4].interval"));
  ASSERT_TRUE(Detail(e, "checks[4].retries"));
  EXPECT_EQ(Detail(e, "checks[4].retries")->line, 14);
}

TEST(Validate, UnknownMetadataFieldsAreRefused) {
  Error e = Rejected("kind: Service\nmetadata:\n  name: web\n  lables:\n    a: b\nspec:\n  driver: exec\n"
                     "  command: /a\n");
  ASSERT_TRUE(Detail(e, "metadata.lables"));
  EXPECT_EQ(Detail(e, "metadata.lables")->line, 4);
  EXPECT_NE(Detail(e, "metadata.lables")->message.find("did you mean \"labels\""), std::string::npos);
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

// A node's and a cluster of one's default name: the host's first label made a DNS label.
TEST(Validate, AHostNameGivesOneDnsLabel) {
  EXPECT_EQ(HostLabel("fresh"), "fresh");
  EXPECT_EQ(HostLabel("ip-10-0-0-1.ec2.internal"), "ip-10-0-0-1");
  EXPECT_EQ(HostLabel("My_Box.example"), "my-box");
  EXPECT_EQ(HostLabel("-x_"), "x");
  EXPECT_EQ(HostLabel(std::string(80, 'a')), std::string(63, 'a'));
  EXPECT_EQ(HostLabel("_"), "localhost");
  EXPECT_EQ(HostLabel("..."), "localhost");
  EXPECT_TRUE(IsDnsLabel(ThisHostLabel()));
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

TEST(Hostile, DeepBlockNestingNamesTheLine) {
  // 700 levels of indentation: refused at the first line past the limit, not yaml-cpp's
  // "bad file" at line 502.
  std::string deep;
  for (int i = 0; i < 700; ++i) deep += std::string(static_cast<size_t>(i) * 2, ' ') + "k" + std::to_string(i) + ":\n";
  deep += std::string(1400, ' ') + "v\n";
  auto r = DecodeYaml(deep);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "document nested too deeply");
  ASSERT_EQ(r.error().details().size(), 1u);
  EXPECT_EQ(r.error().details()[0].line, kMaxManifestDepth + 1);
  // Lists opened within a line count too.
  std::string dashes;
  for (int i = 0; i < 100; ++i) dashes += "- ";
  auto d = DecodeYaml(dashes + "x\n");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message(), "document nested too deeply");
  // A block scalar's indented text is not nesting.
  std::string script = "name: web\nscript: |\n";
  for (int i = 0; i < 100; ++i) script += std::string(2 + static_cast<size_t>(i), ' ') + "echo " + std::to_string(i) + "\n";
  EXPECT_TRUE(DecodeYaml(script)) << DecodeYaml(script).error().ToString();
}

TEST(Hostile, NulAndControlCharactersAreRefusedWhereNoProcessCouldTakeThem) {
  using std::string_literals::operator""s;
  Error nul_env = Rejected("name: a\ndriver: exec\ncommand: /bin/true\nenv:\n  DB: \"x\\0y\"\n");
  ASSERT_NE(Detail(nul_env, "env.DB"), nullptr) << nul_env.ToString();
  EXPECT_NE(Detail(nul_env, "env.DB")->message.find("NUL"), std::string::npos);
  Error nul_cmd = Rejected("name: a\ndriver: exec\ncommand: \"/bin/true\\0x\"\n");
  ASSERT_NE(Detail(nul_cmd, "command"), nullptr) << nul_cmd.ToString();
  Error nul_arg = Rejected("name: a\ndriver: exec\ncommand: /bin/echo\nargs: [\"a\\0b\"]\n");
  ASSERT_NE(Detail(nul_arg, "args[0]"), nullptr) << nul_arg.ToString();
  Error ctl_name = Rejected("name: a\ndriver: exec\ncommand: /bin/true\nenv:\n  \"A\\x1b[31m\": x\n");
  EXPECT_NE(ctl_name.ToString().find("control characters"), std::string::npos) << ctl_name.ToString();
  // A newline in a value is data (a PEM certificate, say), not a problem.
  Json pem = Canonical("name: a\ndriver: exec\ncommand: /bin/true\nenv:\n  CERT: \"a\\nb\"\n");
  EXPECT_EQ(pem["spec"]["env"][0]["value"], "a\nb");
}

TEST(Validate, LabelKeysAndValuesFollowKubernetesRules) {
  EXPECT_EQ(LabelKeyProblem("app"), "");
  EXPECT_EQ(LabelKeyProblem("mentat.io/service"), "");
  EXPECT_EQ(LabelKeyProblem("a.b-c/x_y.z"), "");
  EXPECT_NE(LabelKeyProblem(""), "");
  EXPECT_NE(LabelKeyProblem("../../etc/passwd"), "");
  EXPECT_NE(LabelKeyProblem(std::string(5000, 'a')), "");
  EXPECT_NE(LabelKeyProblem("\x1b[31mred"), "");
  EXPECT_NE(LabelKeyProblem("Upper.Case/x"), "");
  EXPECT_EQ(LabelValueProblem(""), "");
  EXPECT_EQ(LabelValueProblem("v1.2_rc-3"), "");
  EXPECT_NE(LabelValueProblem("../../etc/passwd"), "");
  EXPECT_NE(LabelValueProblem(std::string(64, 'a')), "");
  EXPECT_NE(LabelValueProblem("a b"), "");
  Error e = Rejected("name: a\ndriver: exec\ncommand: /bin/true\nlabels:\n  \"../x\": y\n"
                     "  tier: \"\\x1b[2J\"\n");
  const FieldError* key = Detail(e, "labels.../x");
  ASSERT_NE(key, nullptr) << e.ToString();
  EXPECT_EQ(key->line, 5);
  const FieldError* value = Detail(e, "labels.tier");
  ASSERT_NE(value, nullptr) << e.ToString();
  EXPECT_EQ(value->line, 6);
  EXPECT_NE(value->message.find("\\x1b"), std::string::npos) << value->message;  // shown escaped
  Error ann = Rejected("name: a\ndriver: exec\ncommand: /bin/true\nannotations:\n  \"\": x\n");
  EXPECT_NE(Detail(ann, "annotations."), nullptr) << ann.ToString();
}

TEST(Hostile, NestingCheckSkipsCommentsAndQuotes) {
  std::string deep_in_comment = "name: web # " + std::string(100, '[') + "\n";
  EXPECT_TRUE(DecodeYaml(deep_in_comment));
  std::string deep_in_string = "name: \"" + std::string(100, '{') + "\"\n";
  EXPECT_TRUE(DecodeYaml(deep_in_string));
  // After a comment and an apostrophe, nesting is counted again.
  std::string after = "# don't\nargs: " + std::string(70, '[') + std::string(70, ']') + "\n";
  auto r = DecodeYaml(after);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().details()[0].line, 2);
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


// ---- every alternate form of the seeds normalizes to the same canonical spec ----

Json SpecOf(const std::string& yaml) { return Canonical(yaml)["spec"]; }

TEST(Forms, MemoryQuantities) {
  const std::string head = "name: web\ndriver: exec\ncommand: /a\n";
  Json want = SpecOf(head + "resources:\n  memory_mb: 256\n");
  EXPECT_EQ(want["resources"]["memory_mb"], 256);
  EXPECT_EQ(SpecOf(head + "resources:\n  memory: 256m\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  memory: 256Mi\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  memory: 256\n"), want);
  EXPECT_EQ(SpecOf(head + "memory_mb: 256\n"), want);
  EXPECT_EQ(SpecOf(head + "config:\n  memory_mb: 256\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  memory: 1g\n")["resources"]["memory_mb"], 1024);
  EXPECT_EQ(SpecOf(head + "resources:\n  memory: 1Gi\n")["resources"]["memory_mb"], 1024);
}

TEST(Forms, CpuQuantities) {
  const std::string head = "name: web\ndriver: exec\ncommand: /a\n";
  Json want = SpecOf(head + "cpu_percent: 50\n");
  EXPECT_EQ(want["resources"]["cpu_percent"], 50);
  EXPECT_EQ(SpecOf(head + "resources:\n  cpu: 50%\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  cpu: 0.5\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  cpu: 500m\n"), want);
  EXPECT_EQ(SpecOf(head + "config:\n  cpu_percent: 50\n"), want);
  EXPECT_EQ(SpecOf(head + "resources:\n  cpu: 2\n")["resources"]["cpu_percent"], 200);
  EXPECT_EQ(SpecOf(head + "resources:\n  cpu_mhz: 2000\n")["resources"]["cpu_mhz"], 2000);
  EXPECT_EQ(SpecOf(head + "max_pids: 32\n")["resources"]["pids"], 32);
  EXPECT_EQ(SpecOf(head + "logs:\n  max_file_mb: 5\n  max_files: 0\n")["logs"],
            Json::parse(R"({"max_file_mb":5,"max_files":0})"));
}

TEST(Forms, PortsAndVolumesAtTopLevelOrUnderConfig) {
  const std::string head = "name: web\ndriver: docker\nimage: x\n";
  Json top = SpecOf(head + "ports: [\"8080:80\", \"5353:53/udp\"]\n"
                    "volumes:\n  - source: /data/web\n    target: /app/data\n    read_only: true\n");
  Json config = SpecOf(head + "config:\n  ports: [\"8080:80\", \"5353:53/udp\"]\n"
                       "  volumes:\n    - /data/web:/app/data:ro\n");
  EXPECT_EQ(top, config);
  EXPECT_EQ(top["ports"][0], Json::parse(R"({"host":8080,"container":80,"protocol":"tcp"})"));
  EXPECT_EQ(top["ports"][1]["protocol"], "udp");
  EXPECT_EQ(top["volumes"][0],
            Json::parse(R"({"source":"/data/web","target":"/app/data","read_only":true})"));
}

TEST(Forms, FirecrackerConfigAndDefaultImage) {
  Json s = SpecOf("name: streamforge\ndriver: firecracker\ncount: 3\nconfig:\n  memory_mb: 256\n"
                  "  vcpus: 2\n  args: [\"--wal\"]\n");
  EXPECT_EQ(s["resources"]["memory_mb"], 256);
  EXPECT_EQ(s["resources"]["vcpus"], 2);
  EXPECT_EQ(s["args"][0], "--wal");
  EXPECT_EQ(s["image"], "/opt/mentat/bin/streamforge");
}

TEST(Forms, HullServiceAndBareHullManifest) {
  Json titan = SpecOf(
      "name: titan\nreplicas: 1\nconfig:\n  driver: hull\n  manifest: /etc/hull/titan.json\n"
      "  binary: /usr/local/bin/hull-sudo\n  port: 4500\nport: 4500\n"
      "ingress:\n  host: www.titan-bus.com\n  aliases: [titan.getmentat.run]\n  path: /\n  tls: true\n"
      "security:\n  profile: hull\n");
  EXPECT_EQ(titan["driver"], "hull");
  EXPECT_EQ(titan["manifest"], "/etc/hull/titan.json");
  EXPECT_EQ(titan["port"], 4500);
  EXPECT_EQ(titan["ingress"]["tls"], true);
  auto docs = DecodeYaml(R"({"name": "worker", "rootfs": "/var/lib/hull/rootfs/worker", "argv": ["/app/worker"]})");
  ASSERT_TRUE(docs);
  auto objs = NormalizeDocument(docs->value, docs->marks);
  ASSERT_TRUE(objs) << objs.error().ToString();
  ASSERT_EQ(objs->size(), 1u);
  EXPECT_EQ((*objs)[0]["spec"]["driver"], "hull");
  EXPECT_EQ((*objs)[0]["metadata"]["name"], "worker");
  EXPECT_EQ((*objs)[0]["spec"]["manifest"]["argv"][0], "/app/worker");
}

TEST(Forms, ADefaultNamespacePlacesEveryFormButTheProfilesDocument) {
  // `mt -n staging apply`: a Service that names a security profile, a bare hull manifest and a
  // canonical object all land in staging; the seed-001 profiles document stays cluster-wide.
  auto place = [](const std::string& text) {
    auto doc = DecodeYaml(text);
    EXPECT_TRUE(doc);
    DefaultNamespace(doc->value, "staging");
    auto objs = NormalizeDocument(doc->value, doc->marks);
    EXPECT_TRUE(objs) << objs.error().ToString();
    return objs ? *objs : std::vector<Json>{};
  };
  auto svc = place("name: web\ndriver: docker\nimage: busybox\nsecurity:\n  profile: docker-hardened\n");
  ASSERT_EQ(svc.size(), 1u);
  EXPECT_EQ(svc[0]["metadata"]["namespace"], "staging");
  auto hull = place(R"({"name": "worker", "rootfs": "/r", "argv": ["/app/worker"]})");
  ASSERT_EQ(hull.size(), 1u);
  EXPECT_EQ(hull[0]["metadata"]["namespace"], "staging");
  EXPECT_FALSE(hull[0]["spec"]["manifest"].contains("namespace"));
  auto canonical = place("apiVersion: mentat.io/v1\nkind: Service\nmetadata:\n  name: a\n"
                         "spec:\n  driver: exec\n  command: /bin/true\n");
  ASSERT_EQ(canonical.size(), 1u);
  EXPECT_EQ(canonical[0]["metadata"]["namespace"], "staging");
  auto profiles = place("security:\n  profiles:\n    p1:\n      driver: exec\n");
  ASSERT_EQ(profiles.size(), 1u);
  EXPECT_FALSE(profiles[0]["metadata"].contains("namespace")) << profiles[0].dump();
  Json named = {{"name", "x"}, {"namespace", "prod"}};
  DefaultNamespace(named, "staging");
  EXPECT_EQ(named["namespace"], "prod");
}

TEST(Forms, HullSettingsAreKept) {
  Json s = SpecOf("name: web\ndriver: hull\nrootfs: /srv/r\ncommand: /a\nport: 8080\n"
                  "hull:\n  profile: beam\n  network: host\n  hostname: web\n");
  EXPECT_EQ(s["hull"], Json::parse(R"({"profile": "beam", "network": "host", "hostname": "web"})"));
}

TEST(Forms, ANamelessSnippetTakesTheGivenName) {
  auto doc = DecodeYaml("config:\n  driver: exec\n  command: /opt/bin/node-agent\n");
  ASSERT_TRUE(doc);
  auto objs = NormalizeDocument(doc->value, doc->marks, "node-agent-exec");
  ASSERT_TRUE(objs) << objs.error().ToString();
  EXPECT_EQ(NameOf((*objs)[0]), "node-agent-exec");
  auto unnamed = NormalizeDocument(doc->value, doc->marks, "");
  ASSERT_FALSE(unnamed);
  EXPECT_EQ(unnamed.error().details()[0].field, "name");
}

TEST(Forms, ProfilesDocumentBecomesSecurityProfiles) {
  auto doc = DecodeYaml(
      "security:\n  profiles:\n    sandbox:\n      driver: sandbox\n      pivot_root: true\n"
      "    exec-internal:\n      driver: exec\n      internet_exposed: false\n");
  ASSERT_TRUE(doc);
  auto objs = NormalizeDocument(doc->value, doc->marks);
  ASSERT_TRUE(objs) << objs.error().ToString();
  ASSERT_EQ(objs->size(), 2u);
  EXPECT_EQ((*objs)[0]["kind"], "SecurityProfile");
  auto bad = DecodeYaml("security:\n  profiles:\n    x:\n      driver: sandbox\n      pivot_rot: true\n");
  auto err = NormalizeDocument(bad->value, bad->marks);
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().details()[0].line, 5);
  EXPECT_NE(err.error().details()[0].message.find("did you mean \"pivot_root\""), std::string::npos);
}

TEST(Forms, BuiltinProfilesIncludeTheSeedsFiveAndHull) {
  std::set<std::string> names;
  for (const auto& p : BuiltinProfiles()) names.insert(NameOf(p));
  EXPECT_EQ(names, (std::set<std::string>{"firecracker", "docker-hardened", "docker-legacy",
                                          "sandbox", "exec-internal", "hull", "exec-restricted",
                                          "qemu"}));
}

// ---- each rule rejects a crafted manifest with the right field and line ----

struct RuleCase {
  const char* yaml;
  const char* field;
  int line;
  const char* says;
};

TEST(Rules, EachRuleNamesItsFieldAndLine) {
  const RuleCase cases[] = {
      {"name: web\ndriver: docker\n", "image", 0, "required for driver docker"},
      {"name: web\ndriver: sandbox\nbase: node22\n", "command", 0, "required for driver sandbox"},
      {"name: web\ndriver: sandbox\ncommand: /a\n", "rootfs", 0, "needs base, rootfs"},
      {"name: web\ndriver: hull\n", "manifest", 0, "needs a manifest"},
      {"name: web\ndriver: exec\ncommand: /a\nresources:\n  memory: lots\n", "resources.memory", 5, "not a memory quantity"},
      {"name: web\ndriver: exec\ncommand: /a\nresources:\n  memory: 0m\n", "resources.memory", 5, "out of range"},
      {"name: web\ndriver: exec\ncommand: /a\nresources:\n  cpu: 5000\n", "resources.cpu", 5, "1024 cores"},
      {"name: web\ndriver: exec\ncommand: /a\nresources:\n  memmory: 1g\n", "resources.memmory", 5, "did you mean \"memory\""},
      {"name: web\ndriver: exec\ncommand: /a\nscale:\n  min: 5\n  max: 2\n", "scale.max", 6, "below min"},
      {"name: web\ndriver: exec\ncommand: /a\nscale:\n  min: 1\n  max: 3\n  scale_up_at: 20\n  scale_down_at: 70\n", "scale.scale_down_at", 8, "must be below scale_up_at"},
      {"name: web\ndriver: docker\nimage: x\nports: [\"80:80\", \"80:81\"]\n", "ports[1]", 4, "used twice"},
      {"name: web\ndriver: docker\nimage: x\nports: [\"70000:80\"]\n", "ports[0]", 4, "1-65535"},
      {"name: web\ndriver: docker\nimage: x\nvolumes:\n  - source: data\n    target: /d\n", "volumes[0].source", 5, "absolute"},
      {"name: web\ndriver: docker\nimage: x\nvolumes:\n  - source: /srv/../etc\n    target: /d\n", "volumes[0].source", 5, "\"..\""},
      {"name: web\ndriver: sandbox\nrootfs: /\ncommand: /a\n", "rootfs", 3, "host system path"},
      {"name: web\ndriver: sandbox\nrootfs: ../../etc\ncommand: /a\n", "rootfs", 3, "\"..\""},
      {"name: web\ndriver: sandbox\nrootfs: ./app\ncommand: /a\n", "rootfs", 3, "mt apply -f"},
      {"name: web\nconfig:\n  driver: sandbox\n  rootfs: app\n  command: /a\n", "config.rootfs", 4,
       "relative to the manifest's folder"},
      {"name: web\ndriver: sandbox\nrootfs: sha256:ABC\ncommand: /a\n", "rootfs", 3,
       "not an artifact digest"},
      {"name: web\ndriver: exec\ncommand: /a\ndeploy:\n  strategy: rollin\n", "deploy.strategy", 5, "did you mean \"rolling\""},
      {"name: web\ndriver: exec\ncommand: /a\ningress:\n  host: \"bad host\"\n", "ingress.host", 5, "not a valid host name"},
      {"name: web\ndriver: exec\ncommand: /a\nimage: x\n", "image", 4, "applies to docker, firecracker and qemu only"},
      {"name: web\ndriver: exec\ncommand: /a\nrestart: sometimes\n", "restart", 4, "always, on-failure, never"},
      {"name: web\ndriver: exec\ncommand: /a\ncwd: relative\n", "cwd", 4, "absolute"},
      {"name: web\ndriver: sandbox\nbase: node20\ncommand: /a\n", "base", 3, "did you mean \"node22\""},
      {"name: web\ndriver: exec\ncommand: /a\ncount: 1001\n", "count", 4, "out of range"},
      {"name: web\ndriver: exec\ncommand: /a\nlogs:\n  max_file_mb: 0\n", "logs.max_file_mb", 5, "out of range"},
      {"name: web\ndriver: exec\ncommand: /a\nlogs:\n  max_size: 10\n", "logs.max_size", 5, "unknown field"},
      {"name: web\ndriver: exec\ncommand: /a\nlogs: 10m\n", "logs", 4, "must be a map"},
      {"name: web\ndriver: exec\ncommand: /a\nsecurity:\n  profile: Not_A_Name\n", "security.profile", 5, "not a profile name"},
      {"name: web\ndriver: hull\nrootfs: /srv/r\ncommand: /a\nhull:\n  network: bridged\n", "hull.network", 6, "none, host, bridge"},
      {"name: web\ndriver: hull\nrootfs: /srv/r\ncommand: /a\nhull:\n  profil: beam\n", "hull.profil", 6, "did you mean \"profile\""},
      {"name: web\ndriver: exec\ncommand: /a\nhull:\n  profile: beam\n", "hull", 4, "applies to hull only"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    Error e = Rejected(c.yaml);
    const FieldError* d = Detail(e, c.field);
    ASSERT_TRUE(d) << e.ToString();
    if (c.line) {
      EXPECT_EQ(d->line, c.line) << e.ToString();
    }
    EXPECT_NE(d->message.find(c.says), std::string::npos) << d->message;
  }
}

TEST(Rules, AdmissionChecksTheProfile) {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  auto admit = [&](const std::string& yaml) { return AdmitService(Canonical(yaml), profiles); };
  EXPECT_TRUE(admit("name: a\ndriver: exec\ncommand: /a\nsecurity:\n  profile: exec-internal\n"));
  auto unknown = admit("name: a\ndriver: exec\ncommand: /a\nsecurity:\n  profile: exec-internl\n");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kInvalidArgument);
  EXPECT_NE(unknown.error().details()[0].message.find("did you mean \"exec-internal\""), std::string::npos);
  auto wrong_driver = admit("name: a\ndriver: exec\ncommand: /a\nsecurity:\n  profile: sandbox\n");
  ASSERT_FALSE(wrong_driver);
  EXPECT_EQ(wrong_driver.error().code(), Code::kForbidden);
  auto exposed = admit("name: a\ndriver: exec\ncommand: /a\ningress:\n  host: a.example\n"
                       "security:\n  profile: exec-internal\n");
  ASSERT_FALSE(exposed);
  EXPECT_EQ(exposed.error().details()[0].field, "ingress");
  auto socket = admit("name: a\ndriver: docker\nimage: x\nvolumes: [\"/var/run/docker.sock:/s\"]\n"
                      "security:\n  profile: docker-hardened\n");
  ASSERT_FALSE(socket);
  EXPECT_EQ(socket.error().details()[0].field, "volumes[0].source");
  auto etc = admit("name: a\ndriver: docker\nimage: x\nvolumes: [\"/etc:/e\"]\n"
                   "security:\n  profile: docker-hardened\n");
  ASSERT_FALSE(etc);
  EXPECT_NE(etc.error().details()[0].message.find("host system path"), std::string::npos);
  EXPECT_TRUE(admit("name: a\ndriver: docker\nimage: x\nvolumes: [\"/data/a:/d\"]\n"
                    "security:\n  profile: docker-hardened\n"));
}

// Each docker-hardened rule of seed 001 refuses a manifest crafted to break it, with a 403 naming
// the field and the rule, and the line it is on.
TEST(Rules, EachDockerHardenedRuleRefusesItsCraftedManifest) {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  struct Case {
    std::string body;  // after the head
    std::string field;
    std::string says;
  };
  const std::string head = "name: a\ndriver: docker\nimage: x\nsecurity:\n  profile: docker-hardened\n";
  const Case cases[] = {
      {"user: root\n", "user", "non-root"},
      {"user: \"0:0\"\n", "user", "non-root"},
      {"docker:\n  read_only_rootfs: false\n", "docker.read_only_rootfs", "read-only"},
      {"docker:\n  cap_add: [NET_ADMIN]\n", "docker.cap_add[0]", "all capabilities are dropped"},
      {"docker:\n  cap_drop: [NET_RAW]\n", "docker.cap_drop", "must include ALL"},
      {"docker:\n  no_new_privileges: false\n", "docker.no_new_privileges", "required"},
      {"docker:\n  seccomp: default\n", "docker.seccomp", "strict seccomp profile is required"},
      {"docker:\n  apparmor: unconfined\n", "docker.apparmor", "AppArmor"},
      {"docker:\n  privileged: true\n", "docker.privileged", "forbidden"},
      {"docker:\n  pid_mode: host\n", "docker.pid_mode", "PID namespace"},
      {"docker:\n  network_mode: host\n", "docker.network_mode", "network namespace"},
      {"volumes: [\"/var/run/docker.sock:/s\"]\n", "volumes[0].source", "Docker socket"},
      {"volumes: [\"/:/host\"]\n", "volumes[0].source", "Docker socket"},  // / holds it too
      {"volumes: [\"/var/lib/docker/volumes:/v\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"/var/log:/v\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"/var/lib/mentat/data:/v\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"//etc:/e\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"/./etc/:/e\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"/var:/v\"]\n", "volumes[0].source", "Docker socket"},
      {"volumes: [\"/var/lib:/v\"]\n", "volumes[0].source", "host system path"},
      {"volumes: [\"/run:/r\"]\n", "volumes[0].source", "Docker socket"},
      {"volumes: [\"/var/run/:/r\"]\n", "volumes[0].source", "Docker socket"},
      {"user: \"1000:0\"\n", "user", "group root or docker"},
      {"user: \"1000:docker\"\n", "user", "group root or docker"},
      {"ports: [\"8080:80\"]\ningress:\n  host: a.example\n", "ports", "exactly one non-privileged"},
      {"ports: [\"8080:8080\", \"8081:8081\"]\ningress:\n  host: a.example\n", "ports", "exactly one"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    std::string yaml = head + c.body;
    auto doc = DecodeYaml(yaml);
    ASSERT_TRUE(doc) << doc.error().ToString();
    auto canonical = NormalizeObject(doc->value, doc->marks);
    ASSERT_TRUE(canonical) << canonical.error().ToString();
    auto admitted = AdmitService(*canonical, profiles, doc->marks);
    ASSERT_FALSE(admitted);
    EXPECT_EQ(admitted.error().code(), Code::kForbidden);
    const auto& d = admitted.error().details();
    ASSERT_FALSE(d.empty());
    EXPECT_EQ(d[0].field, c.field) << admitted.error().ToString();
    EXPECT_GE(d[0].line, 6) << admitted.error().ToString();
    EXPECT_NE(d[0].message.find(c.says), std::string::npos) << d[0].message;
    EXPECT_NE(d[0].message.find("docker-hardened"), std::string::npos) << d[0].message;
    // The agent's second check (at container creation) refuses the same spec.
    auto again = CheckDockerRules((*canonical)["spec"]);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().details()[0].field, c.field);
  }
  // What the profile allows: a non-root user, a data volume, one high port behind ingress.
  auto ok = AdmitService(Canonical(head + "user: \"1000:1000\"\nvolumes: [\"/srv/data/a:/d:ro\"]\n"
                                          "ports: [\"8080:8080\"]\ningress:\n  host: a.example\n"
                                          "docker:\n  cap_drop: [ALL]\n  seccomp: strict\n"),
                         profiles);
  EXPECT_TRUE(ok) << ok.error().ToString();
}

TEST(Rules, DockerLegacyIsRelaxedButNeverPrivilegedNorPublic) {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  const std::string head = "name: a\ndriver: docker\nimage: x\nsecurity:\n  profile: docker-legacy\n";
  auto admit = [&](const std::string& body) { return AdmitService(Canonical(head + body), profiles); };
  EXPECT_TRUE(admit("user: root\ndocker:\n  read_only_rootfs: false\n  cap_add: [NET_BIND_SERVICE]\n"
                    "  seccomp: default\n"));
  for (auto [body, field] : std::vector<std::pair<std::string, std::string>>{
           {"docker:\n  privileged: true\n", "docker.privileged"},
           {"docker:\n  cap_add: [SYS_ADMIN]\n", "docker.cap_add[0]"},
           {"docker:\n  no_new_privileges: false\n", "docker.no_new_privileges"},
           {"docker:\n  seccomp: unconfined\n", "docker.seccomp"},
           {"ingress:\n  host: a.example\n", "ingress"}}) {
    SCOPED_TRACE(body);
    auto r = admit(body);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().details()[0].field, field) << r.error().ToString();
  }
}

TEST(Rules, DockerSecurityResolvesTheProfileDefaults) {
  auto hardened = ResolveDockerSecurity(
      Canonical("name: a\ndriver: docker\nimage: x\nsecurity:\n  profile: docker-hardened\n")["spec"]);
  EXPECT_EQ(hardened.user, kDockerDefaultNonRootUser);
  EXPECT_TRUE(hardened.read_only_rootfs);
  EXPECT_TRUE(hardened.no_new_privileges);
  EXPECT_EQ(hardened.cap_drop, std::vector<std::string>{"ALL"});
  EXPECT_EQ(hardened.seccomp, "strict");
  EXPECT_FALSE(hardened.privileged);
  auto mine = ResolveDockerSecurity(
      Canonical("name: a\ndriver: docker\nimage: x\nuser: app\nsecurity:\n  profile: docker-hardened\n")["spec"]);
  EXPECT_EQ(mine.user, "app");
  auto legacy = ResolveDockerSecurity(Canonical(
      "name: a\ndriver: docker\nimage: x\ndocker:\n  read_only_rootfs: false\n  cap_add: [cap_net_admin]\n"
      "security:\n  profile: docker-legacy\n")["spec"]);
  EXPECT_FALSE(legacy.read_only_rootfs);
  EXPECT_TRUE(legacy.no_new_privileges);
  EXPECT_EQ(legacy.cap_add, std::vector<std::string>{"NET_ADMIN"});
  EXPECT_EQ(legacy.seccomp, "default");
  EXPECT_EQ(legacy.user, "");
  auto plain = ResolveDockerSecurity(Canonical("name: a\ndriver: docker\nimage: x\n")["spec"]);
  EXPECT_FALSE(plain.read_only_rootfs);
  EXPECT_TRUE(plain.cap_drop.empty());
}

// A stored profile (custom, or a built-in an operator edited) governs the container, not the
// compiled-in profile of the same name.
TEST(Rules, AStoredDockerProfileIsWhatTheAgentEnforces) {
  Json custom = {{"driver", "docker"}, {"run_as_non_root", true}, {"read_only_rootfs", true},
                 {"drop_capabilities", {"ALL"}}, {"no_new_privileges", true}};
  Json spec = Canonical("name: a\ndriver: docker\nimage: x\nsecurity:\n  profile: strict-api\n")["spec"];
  auto sec = ResolveDockerSecurity(spec, custom);
  EXPECT_EQ(sec.user, kDockerDefaultNonRootUser);
  EXPECT_TRUE(sec.read_only_rootfs);
  EXPECT_EQ(sec.cap_drop, std::vector<std::string>{"ALL"});
  EXPECT_FALSE(ResolveDockerSecurity(spec).read_only_rootfs) << "an unknown name has no built-in";
  Json privileged = Canonical("name: a\ndriver: docker\nimage: x\ndocker:\n  privileged: true\n"
                              "security:\n  profile: strict-api\n")["spec"];
  EXPECT_TRUE(CheckDockerRules(privileged)) << "no built-in named strict-api: nothing to check";
  auto refused = CheckDockerRules(privileged, custom);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kForbidden);
  EXPECT_EQ(refused.error().details()[0].field, "docker.privileged");
  // An edited docker-legacy that now requires a read-only root.
  Json legacy = Canonical("name: a\ndriver: docker\nimage: x\ndocker:\n  read_only_rootfs: false\n"
                          "security:\n  profile: docker-legacy\n")["spec"];
  EXPECT_TRUE(CheckDockerRules(legacy));
  Json edited = {{"driver", "docker"}, {"read_only_rootfs", true}};
  EXPECT_FALSE(CheckDockerRules(legacy, edited));
}

TEST(Rules, HostSystemPathsAreNormalizedAndIncludeTheirParents) {
  for (const char* p : {"/", "//", "/etc", "//etc", "/./etc/", "/etc/ssl", "/var", "/var/lib", "/run",
                        "/var/run/docker.sock", "/usr", "/a/../etc", "relative"}) {
    EXPECT_TRUE(IsHostSystemPath(p)) << p;
  }
  for (const char* p : {"/srv/data", "/data/a", "/home/app/data", "/mnt/volumes/x", "/var/lib/app-data",
                        "/opt/app"}) {
    EXPECT_FALSE(IsHostSystemPath(p)) << p;
  }
  EXPECT_TRUE(ExposesDockerSocket("/run"));
  EXPECT_TRUE(ExposesDockerSocket("/var/run/"));
  EXPECT_TRUE(ExposesDockerSocket("/srv/docker.sock"));
  EXPECT_FALSE(ExposesDockerSocket("/srv/data"));
}

TEST(Rules, TheDockerBlockIsValidated) {
  for (auto [yaml, field, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"name: a\ndriver: docker\nimage: x\ndocker:\n  cap_add: [NET_FLY]\n", "docker.cap_add[0]", "unknown capability"},
           {"name: a\ndriver: docker\nimage: x\ndocker:\n  seccomp: off\n", "docker.seccomp", "must be one of"},
           {"name: a\ndriver: docker\nimage: x\ndocker:\n  privilegd: true\n", "docker.privilegd", "did you mean \"privileged\""},
           {"name: a\ndriver: docker\nimage: x\ndocker:\n  apparmor: \"../x\"\n", "docker.apparmor", "AppArmor profile name"},
           {"name: a\ndriver: exec\ncommand: /a\ndocker:\n  privileged: false\n", "docker", "applies to docker only"}}) {
    SCOPED_TRACE(yaml);
    Error e = Rejected(yaml);
    const FieldError* d = nullptr;
    for (const auto& x : e.details()) if (x.field == field) d = &x;
    ASSERT_NE(d, nullptr) << e.ToString();
    EXPECT_GT(d->line, 0);
    EXPECT_NE(d->message.find(says), std::string::npos) << d->message;
  }
}

TEST(Forms, EverySeedShapeRoundTripsThroughItsCanonicalYaml) {
  const char* manifests[] = {
      "name: a\ndriver: sandbox\nbase: node22\nrootfs: sha256:"
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
      "command: /bin/sh\nresources:\n  memory: 256m\n  cpu: 50%\n"
      "scale:\n  min: 1\n  max: 5\n  metric: cpu\n  scale_up_at: 70\n  scale_down_at: 20\n",
      "name: b\ndriver: docker\nimage: r/x:1\nports: [\"8080:80\"]\nvolumes:\n  - {source: /d, target: /t, read_only: true}\n"
      "deploy:\n  strategy: rolling\n  min_healthy_time: 30s\nsecurity:\n  profile: docker-hardened\n",
      "name: c\ndriver: firecracker\nconfig:\n  memory_mb: 256\n  vcpus: 2\n  env:\n    A: b\n",
      "name: d\nreplicas: 1\nconfig:\n  driver: hull\n  manifest: /etc/hull/d.json\nresources:\n  cpu_mhz: 2000\n"
      "  memory_mb: 1024\n  disk_mb: 256\nport: 4500\ningress:\n  host: d.example\n",
  };
  for (const char* m : manifests) {
    SCOPED_TRACE(m);
    Json first = Canonical(m);
    EXPECT_EQ(Canonical(EncodeYaml(first)), first);
  }
}

TEST(MarkOfOffset, CountsLinesAndBytesUpToTheOffset) {
  const std::string text = "ab\ncd\n\nx";
  EXPECT_EQ(MarkOfOffset(text, 0).line, 1);
  EXPECT_EQ(MarkOfOffset(text, 0).column, 1);
  EXPECT_EQ(MarkOfOffset(text, 2).line, 1);
  EXPECT_EQ(MarkOfOffset(text, 2).column, 3);
  EXPECT_EQ(MarkOfOffset(text, 3).line, 2);
  EXPECT_EQ(MarkOfOffset(text, 3).column, 1);
  EXPECT_EQ(MarkOfOffset(text, 6).line, 3);
  EXPECT_EQ(MarkOfOffset(text, 6).column, 1);
  EXPECT_EQ(MarkOfOffset(text, 7).line, 4);
  EXPECT_EQ(MarkOfOffset(text, 7).column, 1);
  EXPECT_EQ(MarkOfOffset(text, 100).line, 4);
  EXPECT_EQ(MarkOfOffset(text, 100).column, 2);
}

}  // namespace
}  // namespace mentat
