// NamespacePolicy: the restricted fallback gives every driver a hardened profile and refuses
// the escapes a hostile operator tried by naming no profile (issue 17, finding 2); the
// permissive one admits them; policies pick by namespace; a bad policy names its field.
#include "apis/namespace_policy.h"

#include <gtest/gtest.h>

#include <map>

#include "apis/security_profile.h"
#include "apis/service.h"

namespace mentat {
namespace {

Json Canonical(const std::string& yaml) {
  auto obj = NormalizeManifestText(yaml);
  EXPECT_TRUE(obj) << obj.error().ToString();
  return obj ? *obj : Json();
}

// What the server's admission does with one Service: its namespace's policy, then its profile.
struct Admitted {
  Status status;
  Json service;
};
Admitted Admit(const std::string& yaml, const Json& policy) {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  Json s = Canonical(yaml);
  Status st = ApplyNamespacePolicy(s, policy, {});
  if (st) st = AdmitService(s, profiles);
  return {st, s};
}

std::string FirstField(const Status& st) {
  if (st || st.error().details().empty()) return "";
  return st.error().details()[0].field;
}

TEST(NamespacePolicy, RestrictedGivesEachDriverItsHardenedProfile) {
  const Json& restricted = BuiltinRestrictedPolicy();
  auto exec = Admit("name: a\ndriver: exec\ncommand: /bin/true\nuser: nobody\n", restricted);
  ASSERT_TRUE(exec.status) << exec.status.error().ToString();
  EXPECT_EQ(exec.service["spec"]["security"]["profile"], "exec-restricted");
  auto docker = Admit("name: a\ndriver: docker\nimage: x\n", restricted);
  ASSERT_TRUE(docker.status) << docker.status.error().ToString();
  EXPECT_EQ(docker.service["spec"]["security"]["profile"], "docker-hardened");
  auto sandbox = Admit("name: a\ndriver: sandbox\ncommand: /bin/true\nrootfs: /srv/r\n", restricted);
  ASSERT_TRUE(sandbox.status) << sandbox.status.error().ToString();
  EXPECT_EQ(sandbox.service["spec"]["security"]["profile"], "sandbox");
}

// The finding's manifests, with no security: at all: each refused, naming the field.
TEST(NamespacePolicy, RestrictedRefusesTheEscapesOfAServiceThatNamesNoProfile) {
  const Json& restricted = BuiltinRestrictedPolicy();
  struct Case {
    std::string yaml, field, says;
  };
  const Case cases[] = {
      {"name: a\ndriver: exec\ncommand: /bin/sh\n", "user", "non-root"},
      {"name: a\ndriver: exec\ncommand: /bin/sh\nuser: root\n", "user", "root"},
      {"name: a\ndriver: exec\ncommand: /bin/sh\nuser: \"0:0\"\n", "user", "root"},
      {"name: a\ndriver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/:/host\"]\n",
       "volumes[0].source", "Docker socket"},
      {"name: a\ndriver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/etc:/etc2\"]\n",
       "volumes[0].source", "host system path"},
      {"name: a\ndriver: exec\ncommand: /bin/sh\nuser: nobody\nvolumes: [\"/var/run/docker.sock:/s\"]\n",
       "volumes[0].source", "Docker socket"},
      {"name: a\ndriver: docker\nimage: x\ndocker:\n  privileged: true\n", "docker.privileged", "forbidden"},
      {"name: a\ndriver: docker\nimage: x\ndocker:\n  pid_mode: host\n", "docker.pid_mode", "PID"},
      {"name: a\ndriver: docker\nimage: x\ndocker:\n  cap_add: [SYS_ADMIN]\n", "docker.cap_add[0]",
       "capabilities"},
      {"name: a\ndriver: sandbox\ncommand: /bin/sh\nrootfs: /srv/r\nvolumes: [\"/etc:/e\"]\n",
       "volumes[0].source", "host system path"},
      // Naming a profile the policy does not allow is no way out either.
      {"name: a\ndriver: exec\ncommand: /bin/sh\nsecurity:\n  profile: exec-internal\n",
       "security.profile", "not allowed in this namespace"},
      {"name: a\ndriver: docker\nimage: x\nsecurity:\n  profile: docker-legacy\n", "security.profile",
       "not allowed"},
  };
  for (const auto& c : cases) {
    auto got = Admit(c.yaml, restricted);
    ASSERT_FALSE(got.status) << "admitted:\n" << c.yaml;
    EXPECT_EQ(got.status.error().code(), Code::kForbidden) << c.yaml;
    EXPECT_EQ(FirstField(got.status), c.field) << got.status.error().ToString();
    EXPECT_NE(got.status.error().ToString().find(c.says), std::string::npos)
        << c.says << " not in " << got.status.error().ToString();
  }
}

TEST(NamespacePolicy, PermissiveAdmitsWhatTheServiceAsksFor) {
  const Json& permissive = BuiltinPermissivePolicy();
  auto root = Admit("name: a\ndriver: exec\ncommand: /bin/sh\nuser: root\nvolumes: [\"/:/host\"]\n",
                    permissive);
  EXPECT_TRUE(root.status) << root.status.error().ToString();
  EXPECT_FALSE(root.service["spec"].contains("security")) << "no profile was added";
  auto privileged = Admit("name: a\ndriver: docker\nimage: x\ndocker:\n  privileged: true\n", permissive);
  EXPECT_TRUE(privileged.status);
  // A profile named is still checked.
  auto named = Admit("name: a\ndriver: docker\nimage: x\ndocker:\n  privileged: true\n"
                     "security:\n  profile: docker-hardened\n", permissive);
  EXPECT_FALSE(named.status);
}

TEST(NamespacePolicy, ANamespaceHasTheOneThatNamesItThenTheWildcardThenTheFallback) {
  auto policy = [](const std::string& name, Json namespaces) {
    return Json{{"kind", "NamespacePolicy"},
                {"metadata", {{"name", name}}},
                {"spec", {{"namespaces", namespaces}, {"allowedProfiles", {"*"}}}}};
  };
  std::vector<Json> stored = {policy("a-all", {"*"}), policy("b-ops", {"ops", "infra"})};
  const Json& fallback = BuiltinRestrictedPolicy();
  EXPECT_EQ(NameOf(PolicyFor("ops", stored, fallback)), "b-ops");
  EXPECT_EQ(NameOf(PolicyFor("infra", stored, fallback)), "b-ops");
  EXPECT_EQ(NameOf(PolicyFor("web", stored, fallback)), "a-all");
  EXPECT_EQ(NameOf(PolicyFor("web", {stored[1]}, fallback)), "restricted");
  auto [other, ns] = OverlappingPolicy(policy("c-new", {"web", "infra"}), stored);
  EXPECT_EQ(other, "b-ops");
  EXPECT_EQ(ns, "infra");
  EXPECT_EQ(OverlappingPolicy(policy("b-ops", {"ops"}), stored).first, "") << "itself is no overlap";
}

TEST(NamespacePolicy, AnOpsNamespaceMayAllowExecInternalAndDefaultToIt) {
  auto obj = NormalizeManifestText(
      "kind: NamespacePolicy\nmetadata:\n  name: ops\nspec:\n  namespaces: [ops]\n"
      "  allowedProfiles: [exec-internal, sandbox]\n  defaultProfiles:\n    exec: exec-internal\n");
  ASSERT_TRUE(obj) << obj.error().ToString();
  EXPECT_EQ((*obj)["spec"]["hostSystemPaths"], "forbidden") << "the default";
  auto got = Admit("name: a\nnamespace: ops\ndriver: exec\ncommand: /bin/sh\n", *obj);
  ASSERT_TRUE(got.status) << got.status.error().ToString();
  EXPECT_EQ(got.service["spec"]["security"]["profile"], "exec-internal");
  auto docker = Admit("name: a\nnamespace: ops\ndriver: docker\nimage: x\n", *obj);
  ASSERT_FALSE(docker.status);
  EXPECT_NE(docker.status.error().details()[0].message.find("no default for driver docker"),
            std::string::npos)
      << docker.status.error().ToString();
}

TEST(NamespacePolicy, ABadPolicyNamesEachFieldAndLine) {
  auto bad = NormalizeManifestText(
      "kind: NamespacePolicy\n"            // 1
      "metadata:\n"                        // 2
      "  name: p\n"                        // 3
      "spec:\n"                            // 4
      "  namespaces: [\"*\", web]\n"       // 5
      "  allowedProfiles: [sandbox, \"../x\"]\n"  // 6
      "  defaultProfiles:\n"               // 7
      "    exec: exec-internal\n"          // 8
      "    dokcer: docker-hardened\n"      // 9
      "  hostSystemPaths: sometimes\n"     // 10
      "  allowedProfile: [x]\n");          // 11
  ASSERT_FALSE(bad);
  std::map<std::string, std::pair<int, std::string>> got;
  for (const auto& d : bad.error().details()) got[d.field] = {d.line, d.message};
  EXPECT_EQ(got["spec.namespaces[0]"].first, 5);
  EXPECT_NE(got["spec.namespaces[0]"].second.find("stands alone"), std::string::npos);
  EXPECT_EQ(got["spec.allowedProfiles[1]"].first, 6);
  EXPECT_NE(got["spec.defaultProfiles.exec"].second.find("not in allowedProfiles"), std::string::npos);
  EXPECT_EQ(got["spec.defaultProfiles.exec"].first, 8);
  EXPECT_NE(got["spec.defaultProfiles.dokcer"].second.find("did you mean \"docker\""), std::string::npos);
  EXPECT_EQ(got["spec.hostSystemPaths"].first, 10);
  EXPECT_NE(got["spec.allowedProfile"].second.find("did you mean \"allowedProfiles\""), std::string::npos);
  auto missing = NormalizeManifestText("kind: NamespacePolicy\nmetadata:\n  name: p\nspec: {}\n");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().details()[0].field, "spec.namespaces");
}

}  // namespace
}  // namespace mentat
