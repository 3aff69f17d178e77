// Manifests against a real server: every example of the seeds applies with --dry-run=server,
// the canonical form round-trips through `mt get -o yaml | mt apply -f -`, a multi-document
// apply is all or nothing, and hostile requests get clear errors, never a crash.
#include <signal.h>

#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

class ManifestsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TempDir("manifests"));
    port_ = FreePort();
    // No --dev: no agent, so nothing is started by what these tests apply.
    server_ = StartServer(port_, *dir_ + "/data", *dir_ + "/server.log").release();
    ASSERT_TRUE(server_) << ReadFile(*dir_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  CommandResult Mt(std::vector<std::string> args, const std::string& stdin_file = "") {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    if (!stdin_file.empty()) {
      std::string cmd;
      for (const auto& a : args) cmd += "'" + a + "' ";
      return RunCommand({"/bin/sh", "-c", cmd + "< '" + stdin_file + "'"}, {Addr()});
    }
    return RunCommand(args, {Addr()});
  }
  static std::string Addr() { return "MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_); }

  static std::string* dir_;
  static int port_;
  static Process* server_;
};
std::string* ManifestsTest::dir_;
int ManifestsTest::port_;
Process* ManifestsTest::server_;

std::vector<std::string> ExampleFiles() {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(Runfile("examples"))) {
    auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".json")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST_F(ManifestsTest, EveryExampleFileAppliesWithServerDryRun) {
  auto files = ExampleFiles();
  ASSERT_GE(files.size(), 14u) << "examples are missing from the runfiles";
  for (const auto& f : files) {
    auto r = Mt({"apply", "--dry-run=server", "-f", f});
    EXPECT_EQ(r.exit_code, 0) << f << "\n" << r.err;
    EXPECT_NE(r.out.find("(server dry run)"), std::string::npos) << f << "\n" << r.out;
  }
  // A dry run persists nothing.
  auto list = Mt({"get", "services", "-o", "name"});
  EXPECT_EQ(list.out, "");
}

TEST_F(ManifestsTest, EveryExampleAppliesAsOneSet) {
  // All of examples/ at once; the bare hull manifests are skipped with a note, and each of them
  // applies on its own (as a one-replica hull Service).
  auto all = Mt({"apply", "--dry-run=server", "-R", "-f", Runfile("examples")});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  for (const char* hull : {"api-server", "titan", "webapp", "worker"}) {
    const std::string file = Runfile("examples/seeds/hull/" + std::string(hull) + ".json");
    EXPECT_NE(all.err.find("note: skipped " + file + ": a hull manifest"), std::string::npos) << all.err;
    auto one = Mt({"apply", "--dry-run=server", "-f", file});
    EXPECT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(one.out, "service/" + std::string(hull) + " created (server dry run)\n");
  }
  auto profiles = Mt({"apply", "--dry-run=server", "-f", Runfile("examples/seeds/security/profiles.yaml")});
  // The seed's five profiles, as SecurityProfile objects.
  EXPECT_EQ(std::count(profiles.out.begin(), profiles.out.end(), '\n'), 5) << profiles.out;
  EXPECT_NE(profiles.out.find("securityprofile/docker-hardened"), std::string::npos);
}

TEST_F(ManifestsTest, CanonicalFormRoundTrips) {
  // Two seed manifests name their app's directory (rootfs: ./app, ./.next/standalone). Applied
  // from a checkout (a copy with real files, not the runfiles' links), mt packs and uploads
  // them, and the Services name the artifacts.
  std::string drivers = *dir_ + "/drivers";
  fs::copy(Runfile("examples/seeds/drivers"), drivers, fs::copy_options::recursive);
  ASSERT_TRUE(fs::is_regular_file(drivers + "/.next/standalone/start.sh"));
  auto applied = Mt({"apply", "-f", drivers});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_NE(applied.err.find("packed ./app (" + drivers + "/my-api.yaml:4)"), std::string::npos)
      << applied.err;
  EXPECT_NE(applied.err.find("packed ./.next/standalone (" + drivers + "/my-nextjs-app.yaml:4)"),
            std::string::npos)
      << applied.err;
  for (const char* name : {"my-api", "my-nextjs-app"}) {
    auto svc = Json::parse(Mt({"get", "services", name, "-o", "json"}).out);
    std::string rootfs = svc["spec"].value("rootfs", "");
    ASSERT_EQ(rootfs.rfind("sha256:", 0), 0u) << svc.dump();
    EXPECT_EQ(HttpGet(port_, "/v1/artifacts/" + rootfs).first, 200) << name;
  }
  for (const char* name : {"streamforge", "oxidestore", "api-service", "my-nextjs-app", "my-api",
                           "node-agent-exec", "titan"}) {
    auto yaml = Mt({"get", "services", name, "-o", "yaml"});
    ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
    std::string path = *dir_ + "/" + name + ".yaml";
    WriteFile(path, yaml.out);
    auto again = Mt({"apply", "-f", "-"}, path);
    EXPECT_EQ(again.out, std::string("service/") + name + " unchanged\n") << again.err;
  }
  auto svc = Json::parse(Mt({"get", "services", "my-nextjs-app", "-o", "json"}).out);
  EXPECT_EQ(svc["spec"]["resources"]["memory_mb"], 256);
  EXPECT_EQ(svc["spec"]["resources"]["cpu_percent"], 50);
  EXPECT_EQ(svc["spec"]["env"][1], Json::parse(R"({"name":"PORT","value":"3000"})"));
  ASSERT_EQ(Mt({"delete", "services", "streamforge", "oxidestore", "api-service", "my-nextjs-app",
                "my-api", "node-agent-exec", "titan"}).exit_code, 0);
}

TEST_F(ManifestsTest, MultiDocumentApplyIsAllOrNothing) {
  std::string f = *dir_ + "/mixed.yaml";
  WriteFile(f,
            "name: first\ndriver: exec\ncommand: /bin/true\n"
            "---\n"
            "name: second\ndriver: exec\ncommand: /bin/true\nresources:\n  memmory: 1g\n");
  auto r = Mt({"apply", "-f", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(f + ":9:3: resources.memmory: unknown field, did you mean \"memory\"?"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("nothing was applied"), std::string::npos) << r.err;
  EXPECT_NE(Mt({"get", "services", "first"}).exit_code, 0) << "the valid document was applied";
  // The same object twice in one set is refused too.
  std::string dup = *dir_ + "/dup.yaml";
  WriteFile(dup, "name: x\ndriver: exec\ncommand: /a\n---\nname: x\ndriver: exec\ncommand: /b\n");
  auto d = Mt({"apply", "-f", dup});
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.err.find("declared twice"), std::string::npos) << d.err;
}

TEST_F(ManifestsTest, AdmissionRejectsWith403NamingTheRule) {
  std::string f = *dir_ + "/hardened.yaml";
  WriteFile(f, "name: web\ndriver: docker\nimage: x\nvolumes:\n  - source: /var/lib/docker\n"
               "    target: /d\nsecurity:\n  profile: docker-hardened\n");
  auto r = Mt({"apply", "-f", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(":5:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("volumes[0].source: profile docker-hardened: /var/lib/docker is a host "
                       "system path"),
            std::string::npos)
      << r.err;
}

// Each hardened rule is enforced by the server: the whole file is refused (no partial write),
// with the field, the rule and the line.
TEST_F(ManifestsTest, DockerHardenedRulesRefuseCraftedManifestsOverHttp) {
  struct Case {
    std::string body, where;
  };
  const Case cases[] = {
      {"user: root\n", ":10:1: user: profile docker-hardened: runs as root"},
      {"docker:\n  privileged: true\n", ":11:3: docker.privileged: profile docker-hardened: privileged"},
      {"docker:\n  read_only_rootfs: false\n", ":11:3: docker.read_only_rootfs: profile docker-hardened"},
      {"docker:\n  cap_add: [SYS_ADMIN]\n", "docker.cap_add[0]: profile docker-hardened: all capabilities"},
      {"docker:\n  seccomp: unconfined\n", ":11:3: docker.seccomp: profile docker-hardened"},
      {"volumes: [\"/var/run/docker.sock:/s\"]\n", ":10:11: volumes[0].source: profile docker-hardened: mounting the Docker socket"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    std::string f = *dir_ + "/crafted" + std::to_string(i++) + ".yaml";
    WriteFile(f, "name: ok-first\ndriver: exec\ncommand: /bin/true\n---\nname: crafted\ndriver: docker\n"
                 "image: x\nsecurity:\n  profile: docker-hardened\n" + c.body);
    auto r = Mt({"apply", "-f", f});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(c.where), std::string::npos) << r.err;
  }
  auto listed = Mt({"get", "services", "-o", "json"});
  EXPECT_EQ(listed.out.find("crafted"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("ok-first"), std::string::npos) << "a refused file wrote part of itself";
}

TEST_F(ManifestsTest, HostileRequestsGetClearErrors) {
  // An oversized manifest is refused by mt before sending, and by the server (413).
  std::string big(9 << 20, 'a');
  std::string big_file = *dir_ + "/big.yaml";
  WriteFile(big_file, "name: big\nargs: [\"" + big + "\"]\n");
  auto huge = Mt({"apply", "-f", big_file});
  EXPECT_NE(huge.exit_code, 0);
  EXPECT_NE(huge.err.find("limited to 1048576 bytes"), std::string::npos) << huge.err;

  auto put = [&](const std::string& body) {
    std::string f = *dir_ + "/body";
    WriteFile(f, body);
    auto r = RunCommand({"/usr/bin/curl", "-s", "-w", "\n%{http_code}", "-X", "PUT", "--data-binary",
                  "@" + f, "http://127.0.0.1:" + std::to_string(port_) + "/v1/services/h"});
    auto nl = r.out.rfind('\n');
    return std::make_pair(std::stoi(r.out.substr(nl + 1)), Json::parse(r.out.substr(0, nl), nullptr, false));
  };
  auto [code1, body1] = put(std::string(2 << 20, 'x'));
  EXPECT_EQ(code1, 413);
  EXPECT_EQ(body1["reason"], "RequestEntityTooLarge");
  auto [code2, body2] = put("name: h\ndriver: \xff\xfe\n");
  EXPECT_EQ(code2, 400);
  EXPECT_EQ(body2["details"][0]["line"], 2);
  auto [code3, body3] = put("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n");
  EXPECT_EQ(code3, 400);
  auto [code4, body4] = put(std::string(5000, '[') + std::string(5000, ']'));
  EXPECT_EQ(code4, 400);
  auto [code5, body5] = put("name: h\n\tdriver: exec\n");
  EXPECT_EQ(code5, 400);
  EXPECT_EQ(body5["details"][0]["line"], 2);
  auto [code6, body6] = put("{\"name\": \"h\", \"driver\": \"exec\", \"command\": \"/a\", \"x\": 1}");
  EXPECT_EQ(code6, 400);
  EXPECT_EQ(body6["details"][0]["field"], "x");
  // JSON bodies take a fast path; it must refuse what the YAML decoder refuses.
  auto [code7, body7] = put("{\"name\": \"h\", \"driver\": \"exec\", \"command\": \"/a\", \"driver\": \"docker\"}");
  EXPECT_EQ(code7, 400);
  EXPECT_NE(body7["details"][0]["message"].get<std::string>().find("duplicate key"), std::string::npos)
      << body7.dump();
  std::string deep_json = "{\"kind\": \"SecurityProfile\", \"metadata\": {\"name\": \"h\"}, "
                          "\"spec\": {\"driver\": \"exec\", \"bind_mounts\": ";
  for (int i = 0; i < 100000; ++i) deep_json += "{\"a\":";
  deep_json += "1" + std::string(100000, '}') + "}}";
  std::string deep_file = *dir_ + "/deep.json";
  WriteFile(deep_file, deep_json);
  auto deep = RunCommand({"/usr/bin/curl", "-s", "-w", "\n%{http_code}", "-X", "PUT", "--data-binary",
                          "@" + deep_file, "http://127.0.0.1:" + std::to_string(port_) + "/v1/securityprofiles/h"});
  EXPECT_EQ(deep.out.substr(deep.out.rfind('\n') + 1), "400") << deep.out.substr(0, 300);
  EXPECT_EQ(HttpGet(port_, "/healthz").first, 200) << "the server must survive all of this";
  EXPECT_TRUE(server_->Running());
}

}  // namespace
}  // namespace mentat::e2e
