// apis/hull_manifest: the seed manifests parse with the seed's defaults, every validation rule
// rejects a crafted manifest at the right field and line, and ToJson round-trips.
#include "apis/hull_manifest.h"

#include <gtest/gtest.h>

#include <string>

namespace mentat {
namespace {

HullManifest Parsed(const std::string& text) {
  auto m = HullManifest::Parse(text);
  EXPECT_TRUE(m) << m.error().ToString();
  return m ? *m : HullManifest{};
}

Error Rejected(const std::string& text) {
  auto m = HullManifest::Parse(text);
  EXPECT_FALSE(m) << "accepted: " << (m ? m->ToJson().dump() : "");
  return m ? Error() : m.error();
}

// The line of the first error, or -1 when there is none.
int FirstErrorLine(const std::string& text) {
  Error e = Rejected(text);
  return e.details().empty() ? -1 : e.details()[0].line;
}

const FieldError* Detail(const Error& e, const std::string& field) {
  for (const auto& d : e.details()) {
    if (d.field == field) return &d;
  }
  return nullptr;
}

// A valid manifest with `extra` spliced in on line 5. name is on line 2, rootfs 3, argv 4.
std::string Manifest(const std::string& extra, const std::string& name = R"("web")",
                     const std::string& rootfs = R"("/var/lib/hull/rootfs/web")",
                     const std::string& argv = R"(["/bin/web"])") {
  return "{\n  \"name\": " + name + ",\n  \"rootfs\": " + rootfs + ",\n  \"argv\": " + argv +
         (extra.empty() ? "" : ",\n  " + extra) + "\n}\n";
}

// ---- seed examples ----

// Seed 003, "Web Server (Node profile, bridge network)".
constexpr char kWebServer[] = R"({
"name": "webapp",
"rootfs": "/var/lib/hull/rootfs/webapp",
"argv": ["/app/server", "--port", "3000"],
"env": [
"PORT=3000",
"NODE_ENV=production",
"HOST=app.example.com"
],
"profile": "node",
"network": "bridge",
"hostname": "webapp",
"cwd": "/app",
"limits": {
"memory_mb": 512,
"cpu": 2.0,
"pids": 256
}
})";

// Seed 003, "API Server (default profile, host network)".
constexpr char kApiServer[] = R"({
"name": "api-server",
"rootfs": "/var/lib/hull/rootfs/api-server",
"argv": ["/usr/local/bin/myapp", "--bind", "0.0.0.0:8080"],
"env": [
"RUST_LOG=info",
"DATABASE_URL=postgres://localhost:5432/mydb"
],
"profile": "default",
"network": "host",
"hostname": "api-server",
"limits": {
"memory_mb": 1024,
"cpu": 4.0,
"pids": 64
}
})";

// Seed 003, "Background Worker (default profile, no network)".
constexpr char kWorker[] = R"({
"name": "worker",
"rootfs": "/var/lib/hull/rootfs/worker",
"argv": ["/app/worker", "--queue", "/data/jobs"],
"env": [
"WORKER_THREADS=4",
"LOG_LEVEL=warn"
],
"profile": "default",
"network": "none",
"hostname": "worker",
"cwd": "/app",
"limits": {
"memory_mb": 2048,
"cpu": 2.0,
"pids": 32
},
"mounts": [
{
"host": "/srv/data/jobs",
"container": "/data/jobs",
"readonly": false
},
{
"host": "/srv/data/config",
"container": "/etc/worker",
"readonly": true
}
]
})";

// Seed 000, "hull manifest (/etc/hull/titan.json)".
constexpr char kTitan[] = R"({
  "name": "titan",
  "rootfs": "/var/lib/hull/rootfs/titan",
  "argv": ["/opt/titan/bin/titan", "start"],
  "env": ["PHX_SERVER=true", "PORT=4500", "PHX_HOST=www.titan-bus.com"],
  "profile": "beam",
  "network": "bridge",
  "bridge": { "subnet": "10.88.0.0/24" },
  "hostname": "titan",
  "cwd": "/opt/titan",
  "limits": { "memory_mb": 1024, "cpu": 2.0, "pids": 4096 }
})";

void ExpectDefaultBridge(const HullBridge& b) {
  EXPECT_EQ(b.name, "hull0");
  EXPECT_EQ(b.subnet, "10.88.0.0/24");
  EXPECT_EQ(b.ip, std::nullopt);
  EXPECT_EQ(b.mtu, 1500);
}

TEST(HullManifestSeeds, WebServer) {
  HullManifest m = Parsed(kWebServer);
  EXPECT_EQ(m.name, "webapp");
  EXPECT_EQ(m.rootfs, "/var/lib/hull/rootfs/webapp");
  EXPECT_EQ(m.argv, (std::vector<std::string>{"/app/server", "--port", "3000"}));
  EXPECT_EQ(m.env,
            (std::vector<std::string>{"PORT=3000", "NODE_ENV=production", "HOST=app.example.com"}));
  EXPECT_EQ(m.profile, "node");
  EXPECT_EQ(m.network, "bridge");
  EXPECT_EQ(m.hostname, "webapp");
  EXPECT_EQ(m.cwd, "/app");
  EXPECT_EQ(m.limits, (HullLimits{512, 2.0, 256}));
  EXPECT_TRUE(m.mounts.empty());
  ExpectDefaultBridge(m.bridge);  // bridge mode with no bridge block: hull0, 10.88.0.0/24, auto
}

TEST(HullManifestSeeds, ApiServer) {
  HullManifest m = Parsed(kApiServer);
  EXPECT_EQ(m.name, "api-server");
  EXPECT_EQ(m.argv[2], "0.0.0.0:8080");
  EXPECT_EQ(m.env.size(), 2u);
  EXPECT_EQ(m.profile, "default");
  EXPECT_EQ(m.network, "host");
  EXPECT_EQ(m.hostname, "api-server");
  EXPECT_EQ(m.cwd, "/");  // not given: the seed's default
  EXPECT_EQ(m.limits, (HullLimits{1024, 4.0, 64}));
  EXPECT_TRUE(m.mounts.empty());
  ExpectDefaultBridge(m.bridge);
}

TEST(HullManifestSeeds, BackgroundWorker) {
  HullManifest m = Parsed(kWorker);
  EXPECT_EQ(m.name, "worker");
  EXPECT_EQ(m.network, "none");
  EXPECT_EQ(m.cwd, "/app");
  EXPECT_EQ(m.limits, (HullLimits{2048, 2.0, 32}));
  ASSERT_EQ(m.mounts.size(), 2u);
  EXPECT_EQ(m.mounts[0], (HullMount{"/srv/data/jobs", "/data/jobs", false}));
  EXPECT_EQ(m.mounts[1], (HullMount{"/srv/data/config", "/etc/worker", true}));
  ExpectDefaultBridge(m.bridge);
}

TEST(HullManifestSeeds, Titan) {
  HullManifest m = Parsed(kTitan);
  EXPECT_EQ(m.name, "titan");
  EXPECT_EQ(m.argv, (std::vector<std::string>{"/opt/titan/bin/titan", "start"}));
  EXPECT_EQ(m.env[2], "PHX_HOST=www.titan-bus.com");
  EXPECT_EQ(m.profile, "beam");
  EXPECT_EQ(m.network, "bridge");
  EXPECT_EQ(m.hostname, "titan");
  EXPECT_EQ(m.cwd, "/opt/titan");
  EXPECT_EQ(m.limits, (HullLimits{1024, 2.0, 4096}));
  ExpectDefaultBridge(m.bridge);  // only subnet given, and it is the default one
}

TEST(HullManifestDefaults, MinimalManifestGetsEverySeedDefault) {
  HullManifest m = Parsed(R"({"name": "app", "rootfs": "/srv/app.tar.gz", "argv": ["/app"]})");
  EXPECT_EQ(m.name, "app");
  EXPECT_EQ(m.rootfs, "/srv/app.tar.gz");
  EXPECT_EQ(m.argv, std::vector<std::string>{"/app"});
  EXPECT_TRUE(m.env.empty());
  EXPECT_EQ(m.profile, "default");
  EXPECT_EQ(m.network, "none");
  EXPECT_EQ(m.hostname, "app");  // defaults to name
  EXPECT_EQ(m.cwd, "/");
  EXPECT_EQ(m.limits.memory_mb, 256);
  EXPECT_EQ(m.limits.cpu, 1.0);
  EXPECT_EQ(m.limits.pids, 128);
  EXPECT_TRUE(m.mounts.empty());
  ExpectDefaultBridge(m.bridge);
}

TEST(HullManifestDefaults, PartialBlocksKeepTheirOtherDefaults) {
  HullManifest m = Parsed(Manifest(R"("limits": {"cpu": 0.5}, "bridge": {"ip": "10.88.0.7"},
  "mounts": [{"host": "/srv/x", "container": "/x"}])"));
  EXPECT_EQ(m.limits, (HullLimits{256, 0.5, 128}));
  EXPECT_EQ(m.bridge.ip, "10.88.0.7");
  EXPECT_EQ(m.bridge.name, "hull0");
  EXPECT_EQ(m.bridge.mtu, 1500);
  EXPECT_FALSE(m.mounts[0].readonly);
}

TEST(HullManifestDefaults, BridgeBlockIsAcceptedInEveryNetworkMode) {
  for (const char* mode : {"none", "host", "bridge"}) {
    SCOPED_TRACE(mode);
    HullManifest m = Parsed(Manifest(std::string(R"("network": ")") + mode + R"(", "bridge": {
    "name": "br-apps", "subnet": "172.20.0.0/16", "ip": "172.20.3.4", "mtu": 9000})"));
    EXPECT_EQ(m.bridge.name, "br-apps");
    EXPECT_EQ(m.bridge.subnet, "172.20.0.0/16");
    EXPECT_EQ(m.bridge.ip, "172.20.3.4");
    EXPECT_EQ(m.bridge.mtu, 9000);
  }
}

TEST(HullManifestDefaults, IntegerValuedFloatsAndIntegerCpuAreAccepted) {
  HullManifest m = Parsed(Manifest(R"("limits": {"memory_mb": 512.0, "cpu": 2, "pids": 64})"));
  EXPECT_EQ(m.limits, (HullLimits{512, 2.0, 64}));
}

// ---- validation: one crafted manifest per rule ----

struct RuleCase {
  const char* rule;
  std::string text;
  std::string field;
  int line;
  std::string message_part;
};

void PrintTo(const RuleCase& c, std::ostream* os) { *os << c.rule; }

class HullManifestRule : public testing::TestWithParam<RuleCase> {};

TEST_P(HullManifestRule, RejectsWithFieldAndLine) {
  const RuleCase& c = GetParam();
  Error e = Rejected(c.text);
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_EQ(e.message(), "hull manifest is invalid");
  const FieldError* d = Detail(e, c.field);
  ASSERT_NE(d, nullptr) << "no error for " << c.field << " in:\n" << e.ToString();
  EXPECT_EQ(d->line, c.line) << e.ToString();
  EXPECT_GT(d->column, 0);
  EXPECT_NE(d->message.find(c.message_part), std::string::npos)
      << "\"" << d->message << "\" lacks \"" << c.message_part << "\"";
  EXPECT_EQ(e.details().size(), 1u) << "one mistake, one error:\n" << e.ToString();
}

std::string Mounts(const std::string& entries) { return "\"mounts\": [" + entries + "]"; }

const RuleCase kRules[] = {
    // Required fields and unknown fields.
    {"name_missing", R"({"rootfs": "/r", "argv": ["/a"]})", "name", 1, "required"},
    {"rootfs_missing", "{\n\"name\": \"a\", \"argv\": [\"/a\"]}", "rootfs", 1, "required"},
    {"argv_missing", "{\"name\": \"a\",\n \"rootfs\": \"/r\"}", "argv", 1, "required"},
    {"unknown_field", Manifest(R"("argvv": ["/x"])"), "argvv", 5, "did you mean \"argv\"?"},
    {"unknown_limits_field", Manifest(R"("limits": {"memroy_mb": 5})"), "limits.memroy_mb", 5,
     "did you mean \"memory_mb\"?"},
    {"unknown_mount_field",
     Manifest(Mounts(R"({"host": "/a", "container": "/b", "readonly": true, "ro": true})")),
     "mounts[0].ro", 5, "unknown field"},
    {"unknown_bridge_field", Manifest(R"("bridge": {"subnett": "10.0.0.0/8"})"), "bridge.subnett",
     5, "did you mean \"subnet\"?"},
    // Wrong JSON types name the field.
    {"name_type", Manifest("", "42"), "name", 2, "must be a string"},
    {"cpu_type", Manifest(R"("limits": {"cpu": "two"})"), "limits.cpu", 5, "must be a number"},
    {"memory_type", Manifest(R"("limits": {"memory_mb": 512.5})"), "limits.memory_mb", 5,
     "must be an integer"},
    {"limits_type", Manifest(R"("limits": 512)"), "limits", 5, "must be an object"},
    {"hostname_null", Manifest(R"("hostname": null)"), "hostname", 5, "must be a string"},
    {"readonly_type", Manifest(Mounts(R"({"host": "/a", "container": "/b", "readonly": "yes"})")),
     "mounts[0].readonly", 5, "must be a boolean"},
    {"mounts_type", Manifest(R"("mounts": {"host": "/a"})"), "mounts", 5, "must be a list"},
    {"mount_entry_type", Manifest(Mounts(R"("/a:/b")")), "mounts[0]", 5, "must be an object"},
    {"bridge_type", Manifest(R"("bridge": "hull0")"), "bridge", 5, "must be an object"},
    {"env_type", Manifest(R"("env": {"A": "1"})"), "env", 5, "must be a list of strings"},
    {"mtu_type", Manifest(R"("bridge": {"mtu": "1500"})"), "bridge.mtu", 5, "must be an integer"},
    // name
    {"name_empty", Manifest("", R"("")"), "name", 2, "1-64"},
    {"name_too_long", Manifest("", "\"" + std::string(65, 'a') + "\""), "name", 2, "1-64"},
    {"name_charset", Manifest("", R"("web_1")"), "name", 2, "letters, digits and '-'"},
    {"name_not_a_hostname", Manifest("", R"("web-")"), "hostname", 2,
     "set \"hostname\" explicitly"},
    // rootfs
    {"rootfs_relative", Manifest("", "\"web\"", R"("rootfs/web")"), "rootfs", 3, "absolute"},
    {"rootfs_dotdot", Manifest("", "\"web\"", R"("/var/lib/hull/../../etc")"), "rootfs", 3,
     "\"..\""},
    {"rootfs_archive", Manifest("", "\"web\"", R"("/srv/web.tar.xz")"), "rootfs", 3,
     "unsupported archive"},
    {"rootfs_host_root", Manifest("", "\"web\"", R"("/")"), "rootfs", 3, "host's root"},
    // argv
    {"argv_empty", Manifest("", "\"web\"", "\"/r\"", "[]"), "argv", 4, "must not be empty"},
    {"argv_relative", Manifest("", "\"web\"", "\"/r\"", R"(["server", "-v"])"), "argv[0]", 4,
     "absolute"},
    {"argv_not_string", Manifest("", "\"web\"", "\"/r\"", R"(["/server", 3000])"), "argv[1]", 4,
     "must be a string"},
    {"argv_not_list", Manifest("", "\"web\"", "\"/r\"", R"("/server --port 3000")"), "argv", 4,
     "must be a list of strings"},
    // env
    {"env_no_equals", Manifest(R"("env": ["PORT"])"), "env[0]", 5, "KEY=VALUE"},
    {"env_empty_key", Manifest(R"("env": ["=3000"])"), "env[0]", 5, "KEY must not be empty"},
    {"env_entry_line", Manifest("\"env\": [\n    \"A=1\",\n    \"B\"\n  ]"), "env[1]", 7,
     "KEY=VALUE"},
    // enums
    {"profile_typo", Manifest(R"("profile": "nod")"), "profile", 5, "did you mean \"node\"?"},
    {"profile_unknown", Manifest(R"("profile": "python")"), "profile", 5,
     "one of default, webapp, node, dotnet, beam, java"},
    {"network_typo", Manifest(R"("network": "brige")"), "network", 5, "did you mean \"bridge\"?"},
    // hostname
    {"hostname_leading_dash", Manifest(R"("hostname": "-web")"), "hostname", 5, "valid hostname"},
    {"hostname_trailing_dot", Manifest(R"("hostname": "web.")"), "hostname", 5, "valid hostname"},
    {"hostname_charset", Manifest(R"("hostname": "web_1")"), "hostname", 5, "valid hostname"},
    {"hostname_too_long", Manifest("\"hostname\": \"" + std::string(65, 'h') + "\""), "hostname", 5,
     "1-64"},
    // cwd
    {"cwd_relative", Manifest(R"("cwd": "app")"), "cwd", 5, "absolute"},
    {"cwd_dotdot", Manifest(R"("cwd": "/app/../..")"), "cwd", 5, "\"..\""},
    // limits
    {"memory_low", Manifest("\"limits\": {\n    \"memory_mb\": 2\n  }"), "limits.memory_mb", 6,
     "between 4 and 1048576"},
    {"memory_high", Manifest(R"("limits": {"memory_mb": 1048577})"), "limits.memory_mb", 5,
     "between 4 and 1048576"},
    {"memory_huge", Manifest(R"("limits": {"memory_mb": 99999999999999999999})"),
     "limits.memory_mb", 5, "between 4 and 1048576"},
    {"cpu_zero", Manifest(R"("limits": {"cpu": 0})"), "limits.cpu", 5, "greater than 0"},
    {"cpu_negative", Manifest(R"("limits": {"cpu": -0.5})"), "limits.cpu", 5, "greater than 0"},
    {"cpu_high", Manifest(R"("limits": {"cpu": 1024.5})"), "limits.cpu", 5, "at most 1024"},
    {"pids_zero", Manifest(R"("limits": {"pids": 0})"), "limits.pids", 5, "between 1 and 4194304"},
    {"pids_high", Manifest(R"("limits": {"pids": 4194305})"), "limits.pids", 5,
     "between 1 and 4194304"},
    // mounts
    {"mount_host_missing", Manifest(Mounts(R"({"container": "/data"})")), "mounts[0].host", 5,
     "required"},
    {"mount_container_missing", Manifest(Mounts(R"({"host": "/srv"})")), "mounts[0].container", 5,
     "required"},
    {"mount_host_relative", Manifest(Mounts(R"({"host": "srv/data", "container": "/data"})")),
     "mounts[0].host", 5, "absolute"},
    {"mount_host_dotdot", Manifest(Mounts(R"({"host": "/srv/../etc", "container": "/data"})")),
     "mounts[0].host", 5, "\"..\""},
    {"mount_host_etc", Manifest(Mounts(R"({"host": "/etc", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/etc\""},
    {"mount_host_root", Manifest(Mounts(R"({"host": "//", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/\""},
    {"mount_host_dev", Manifest(Mounts(R"({"host": "/dev/", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/dev\""},
    {"mount_host_boot", Manifest(Mounts(R"({"host": "/boot", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/boot\""},
    {"mount_host_proc", Manifest(Mounts(R"({"host": "/proc/1/root", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/proc\""},
    {"mount_host_sys", Manifest(Mounts(R"({"host": "/sys", "container": "/data"})")),
     "mounts[0].host", 5, "host system path \"/sys\""},
    {"mount_host_hull_state",
     Manifest(Mounts(R"({"host": "/var/lib/hull", "container": "/data"})")), "mounts[0].host", 5,
     "host system path \"/var/lib/hull\""},
    {"mount_container_root", Manifest(Mounts(R"({"host": "/srv", "container": "/"})")),
     "mounts[0].container", 5, "must not be \"/\""},
    {"mount_container_relative", Manifest(Mounts(R"({"host": "/srv", "container": "data"})")),
     "mounts[0].container", 5, "absolute"},
    {"mount_container_dotdot", Manifest(Mounts(R"({"host": "/srv", "container": "/data/../.."})")),
     "mounts[0].container", 5, "\"..\""},
    {"mount_container_proc", Manifest(Mounts(R"({"host": "/srv", "container": "/proc/sys"})")),
     "mounts[0].container", 5, "/proc"},
    {"mount_container_sys", Manifest(Mounts(R"({"host": "/srv", "container": "/sys"})")),
     "mounts[0].container", 5, "/sys"},
    {"mount_duplicate_target",
     Manifest("\"mounts\": [\n    {\"host\": \"/srv/a\", \"container\": \"/data\"},\n"
              "    {\"host\": \"/srv/b\", \"container\": \"/data/\"}\n  ]"),
     "mounts[1].container", 7, "duplicate mount target"},
    // bridge
    {"bridge_name_long", Manifest(R"("bridge": {"name": "hull-bridge-0001"})"), "bridge.name", 5,
     "at most 15"},
    {"bridge_name_slash", Manifest(R"("bridge": {"name": "hull/0"})"), "bridge.name", 5, "'/'"},
    {"bridge_name_space", Manifest(R"("bridge": {"name": "hull 0"})"), "bridge.name", 5,
     "whitespace"},
    {"bridge_name_empty", Manifest(R"("bridge": {"name": ""})"), "bridge.name", 5,
     "must not be empty"},
    {"subnet_no_prefix", Manifest(R"("bridge": {"subnet": "10.88.0.0"})"), "bridge.subnet", 5,
     "IPv4 CIDR"},
    {"subnet_bad_octet", Manifest(R"("bridge": {"subnet": "10.288.0.0/16"})"), "bridge.subnet", 5,
     "IPv4 CIDR"},
    {"subnet_ipv6", Manifest(R"("bridge": {"subnet": "fd00::/64"})"), "bridge.subnet", 5,
     "IPv4 CIDR"},
    {"subnet_prefix_long", Manifest(R"("bridge": {"subnet": "10.88.0.0/31"})"), "bridge.subnet", 5,
     "between /8 and /30"},
    {"subnet_prefix_short", Manifest(R"("bridge": {"subnet": "10.0.0.0/7"})"), "bridge.subnet", 5,
     "between /8 and /30"},
    {"subnet_host_bits", Manifest(R"("bridge": {"subnet": "10.88.0.1/24"})"), "bridge.subnet", 5,
     "did you mean \"10.88.0.0/24\"?"},
    {"ip_malformed", Manifest(R"("bridge": {"ip": "10.88.0"})"), "bridge.ip", 5, "IPv4 address"},
    {"ip_leading_zero", Manifest(R"("bridge": {"ip": "10.88.0.010"})"), "bridge.ip", 5,
     "IPv4 address"},
    {"ip_outside_default_subnet", Manifest(R"("bridge": {"ip": "10.89.0.5"})"), "bridge.ip", 5,
     "not inside bridge.subnet 10.88.0.0/24"},
    {"ip_network", Manifest(R"("bridge": {"ip": "10.88.0.0"})"), "bridge.ip", 5, "network address"},
    {"ip_gateway", Manifest(R"("bridge": {"ip": "10.88.0.1"})"), "bridge.ip", 5, "gateway"},
    {"ip_broadcast", Manifest(R"("bridge": {"ip": "10.88.0.255"})"), "bridge.ip", 5, "broadcast"},
    {"ip_broadcast_custom_subnet",
     Manifest(
         "\"bridge\": {\n    \"subnet\": \"172.20.0.0/16\",\n    \"ip\": \"172.20.255.255\"\n  }"),
     "bridge.ip", 7, "broadcast address of 172.20.0.0/16"},
    {"mtu_low", Manifest(R"("bridge": {"mtu": 67})"), "bridge.mtu", 5, "between 68 and 65535"},
    {"mtu_high", Manifest(R"("bridge": {"mtu": 65536})"), "bridge.mtu", 5, "between 68 and 65535"},
};

INSTANTIATE_TEST_SUITE_P(EveryRule, HullManifestRule, testing::ValuesIn(kRules),
                         [](const testing::TestParamInfo<RuleCase>& info) {
                           return std::string(info.param.rule);
                         });

// ---- errors as a whole ----

TEST(HullManifestErrors, ReportsEveryProblemAtOnceInSourceOrder) {
  Error e = Rejected(R"({
  "name": "web_1",
  "argv": ["app"],
  "profile": "nod",
  "limits": {"memory_mb": 1, "cpu": "lots"},
  "mounts": [{"host": "/etc", "container": "/proc"}],
  "bridge": {"ip": "10.88.0.1"}
})");
  std::vector<std::pair<std::string, int>> got;
  for (const auto& d : e.details()) got.emplace_back(d.field, d.line);
  std::vector<std::pair<std::string, int>> want = {
      {"rootfs", 1},           {"name", 2},       {"argv[0]", 3},        {"profile", 4},
      {"limits.memory_mb", 5}, {"limits.cpu", 5}, {"mounts[0].host", 6}, {"mounts[0].container", 6},
      {"bridge.ip", 7},
  };
  EXPECT_EQ(got, want) << e.ToString();
}

TEST(HullManifestErrors, PointsAtTheColumnOfTheKey) {
  Error e = Rejected(Manifest(R"("limits": {"cpu": "two"})"));
  const FieldError* d = Detail(e, "limits.cpu");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->line, 5);
  EXPECT_EQ(d->column, 14);  // `  "limits": {"cpu"`: the quote of "cpu"
  EXPECT_NE(e.ToString().find("limits.cpu (line 5:14): must be a number"), std::string::npos)
      << e.ToString();
}

TEST(HullManifestErrors, FromJsonWithoutMarksStillNamesFields) {
  Json j = Json::parse(R"({"name": "a", "rootfs": "/r", "argv": ["/a"], "limits": {"pids": -1}})");
  auto m = HullManifest::FromJson(j);
  ASSERT_FALSE(m);
  ASSERT_EQ(m.error().details().size(), 1u);
  EXPECT_EQ(m.error().details()[0].field, "limits.pids");
  EXPECT_EQ(m.error().details()[0].line, 0);
}

TEST(HullManifestErrors, TopLevelMustBeAnObject) {
  Error e = Rejected("\n  [\"/bin/app\"]\n");
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_EQ(e.details()[0].field, "");
  EXPECT_EQ(e.details()[0].line, 2);
  EXPECT_NE(e.details()[0].message.find("JSON object"), std::string::npos);
}

// ---- invalid JSON ----

TEST(HullManifestJson, MissingCommaReportsItsLine) {
  Error e = Rejected("{\n  \"name\": \"web\"\n  \"rootfs\": \"/r\",\n  \"argv\": [\"/a\"]\n}\n");
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_EQ(e.message(), "hull manifest is not valid JSON");
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_EQ(e.details()[0].line, 3);
  EXPECT_GT(e.details()[0].column, 0);
  EXPECT_NE(e.details()[0].message.find("syntax error"), std::string::npos);
}

TEST(HullManifestJson, YamlOnlySyntaxIsNotJson) {
  // Trailing commas, comments and bare YAML are fine for DecodeYaml but not for a JSON manifest.
  EXPECT_EQ(FirstErrorLine("{\"name\": \"a\", \"rootfs\": \"/r\",\n \"argv\": [\"/a\"],\n}"), 3);
  EXPECT_EQ(FirstErrorLine("name: a\nrootfs: /r\nargv: [/a]\n"), 1);
  EXPECT_EQ(FirstErrorLine("{\"name\": \"a\", # comment\n}"), 1);
}

TEST(HullManifestJson, UnterminatedDocumentReportsTheLastLine) {
  Error e = Rejected("{\n  \"name\": \"web\",\n  \"argv\": [\"/a\"\n");
  EXPECT_EQ(e.message(), "hull manifest is not valid JSON");
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_GE(e.details()[0].line, 3);
}

TEST(HullManifestJson, EmptyTextIsNotJson) {
  Error e = Rejected("");
  EXPECT_EQ(e.message(), "hull manifest is not valid JSON");
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_EQ(e.details()[0].line, 1);
}

TEST(HullManifestJson, DuplicateKeysAreRefusedWithTheirLine) {
  Error e = Rejected(
      "{\n  \"name\": \"a\",\n  \"rootfs\": \"/r\",\n  \"name\": \"b\",\n"
      "  \"argv\": [\"/a\"]\n}");
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_EQ(e.details()[0].field, "name");
  EXPECT_EQ(e.details()[0].line, 4);
  EXPECT_NE(e.details()[0].message.find("duplicate"), std::string::npos);
}

TEST(HullManifestJson, TabIndentationAndUnicodeEscapesAreValidJson) {
  // Both are legal JSON that a YAML decoder alone would refuse; lines must still be right.
  HullManifest m = Parsed(
      "{\n\t\"name\": \"a\",\n\t\"rootfs\": \"/r\",\n\t\"argv\": [\"/a\"],\n"
      "\t\"env\": [\"GREETING=\\ud83d\\ude00 caf\\u00e9 \\/\"]\n}");
  EXPECT_EQ(m.env[0], "GREETING=\xF0\x9F\x98\x80 caf\xC3\xA9 /");
  Error e = Rejected(
      "{\n\t\"name\": \"a\",\n\t\"rootfs\": \"/r\",\n\t\"argv\": [\"/a\"],\n"
      "\t\"cwd\": \"a\"\n}");
  ASSERT_NE(Detail(e, "cwd"), nullptr);
  EXPECT_EQ(Detail(e, "cwd")->line, 5);
}

TEST(HullManifestJson, DeepNestingIsRefusedBeforeParsing) {
  std::string deep = Manifest("\"env\": " + std::string(100000, '[') + std::string(100000, ']'));
  Error e = Rejected(deep);
  ASSERT_EQ(e.details().size(), 1u);
  EXPECT_NE(e.details()[0].message.find("nesting deeper"), std::string::npos);
}

TEST(HullManifestJson, OversizedTextIsTooLarge) {
  std::string big = Manifest("\"env\": [\"A=" + std::string(kMaxManifestBytes, 'x') + "\"]");
  Error e = Rejected(big);
  EXPECT_EQ(e.code(), Code::kTooLarge);
}

// ---- round trip ----

TEST(HullManifestRoundTrip, EverySeedManifestRoundTrips) {
  for (const char* text : {kWebServer, kApiServer, kWorker, kTitan}) {
    HullManifest m = Parsed(text);
    SCOPED_TRACE(m.name);
    HullManifest again = Parsed(m.ToJson().dump());
    EXPECT_EQ(again, m);
    EXPECT_EQ(Parsed(m.ToJson().dump(2)), m);  // pretty-printed too
  }
}

TEST(HullManifestRoundTrip, CanonicalFormHasEveryDefault) {
  HullManifest m = Parsed(R"({"name": "app", "rootfs": "/srv/app", "argv": ["/app"]})");
  Json want = Json::parse(R"({
    "name": "app", "rootfs": "/srv/app", "argv": ["/app"], "env": [],
    "profile": "default", "network": "none", "hostname": "app", "cwd": "/",
    "limits": {"memory_mb": 256, "cpu": 1.0, "pids": 128},
    "mounts": [],
    "bridge": {"name": "hull0", "subnet": "10.88.0.0/24", "mtu": 1500}
  })");
  EXPECT_EQ(m.ToJson(), want);
  EXPECT_EQ(Parsed(m.ToJson().dump()), m);
}

TEST(HullManifestRoundTrip, EveryFieldSetRoundTrips) {
  HullManifest m;
  m.name = "full";
  m.rootfs = "/var/lib/hull/rootfs/full.tar.gz";
  m.argv = {"/bin/full", "--flag", "with space", "quote\"d"};
  m.env = {"A=1", "B==2", "C="};
  m.profile = "java";
  m.network = "bridge";
  m.hostname = "full.example.com";
  m.cwd = "/srv/full";
  m.limits = {8192, 0.25, 1000};
  m.mounts = {{"/srv/a", "/a", true}, {"/srv/b", "/b", false}};
  m.bridge = {"br-full", "192.168.64.0/20", "192.168.70.9", 9000};
  auto from_json = HullManifest::FromJson(m.ToJson());
  ASSERT_TRUE(from_json) << from_json.error().ToString();
  EXPECT_EQ(*from_json, m);
  EXPECT_EQ(Parsed(m.ToJson().dump()), m);
  EXPECT_EQ(m.ToJson()["bridge"]["ip"], "192.168.70.9");
}

TEST(HullManifestRoundTrip, ListsOfProfilesAndModesMatchTheSeed) {
  EXPECT_EQ(HullProfiles(),
            (std::vector<std::string>{"default", "webapp", "node", "dotnet", "beam", "java"}));
  EXPECT_EQ(HullNetworkModes(), (std::vector<std::string>{"none", "host", "bridge"}));
  for (const auto& p : HullProfiles()) {
    EXPECT_EQ(Parsed(Manifest("\"profile\": \"" + p + "\"")).profile, p);
  }
}

// Found by scripts/fuzz.sh: a number too large for JSON used to escape as an exception.
TEST(HullManifestFuzzRegression, HugeNumberIsAnErrorNotAnException) {
  auto r = HullManifest::Parse("{\"name\": \"a\", \"limits\": {\"pids\": 8888888e8888884444444}}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  auto raw = HullManifest::Parse(std::string("8888888e8888884444444\x14.8%FFF8888.8888888888\"re8\n"));
  EXPECT_FALSE(raw);
}

}  // namespace
}  // namespace mentat
