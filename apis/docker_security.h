// What a Docker container's security settings are, decided once from a canonical Service spec and
// the SecurityProfile it names (seed 001): admission checks the manifest against these rules, and
// the Docker driver applies the resolved settings at container creation and checks the rules again
// there (defence in depth: a spec that reached the agent without admission is still refused).
//
// The manifest may ask for settings in a `docker:` block:
//   docker:
//     privileged: false
//     cap_add: [NET_BIND_SERVICE]
//     cap_drop: [ALL]
//     read_only_rootfs: true
//     no_new_privileges: true
//     seccomp: strict          # default | strict | unconfined
//     apparmor: default        # default | unconfined | a profile name
//     network_mode: bridge     # bridge | host | none
//     pid_mode: ""             # "" | host
//     ipc_mode: ""             # "" | private | shareable | host
// and `user:` at the top level.
#pragma once

#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

// The user a hardened container runs as when the manifest names none: nobody.
inline constexpr const char* kDockerDefaultNonRootUser = "65534:65534";

struct DockerSecurity {
  std::string profile;  // the SecurityProfile name, or "" for none
  std::string user;     // "" = the image's own user
  bool privileged = false;
  bool read_only_rootfs = false;
  bool no_new_privileges = false;
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  std::string seccomp = "default";   // default (Docker's own) | strict (Mentat's JSON) | unconfined
  std::string apparmor = "default";  // default (docker-default when AppArmor is on) | unconfined | NAME
  std::string network_mode = "bridge";
  std::string pid_mode;
  std::string ipc_mode;
};

// The settings of a canonical spec: the profile's defaults (docker-hardened: non-root (65534 when
// no user is given), read-only rootfs, cap_drop ALL, no-new-privileges, strict seccomp; docker-legacy:
// no-new-privileges, read-only rootfs unless docker.read_only_rootfs is false, cap_drop NET_RAW and
// MKNOD), then what the manifest asks for. It does not check the rules: see CheckDockerRules.
// `profile` is the SecurityProfile's spec as stored on the server (a custom profile, or a built-in
// one an operator edited); null takes the built-in profile the spec names.
DockerSecurity ResolveDockerSecurity(const Json& spec, const Json& profile = Json());

struct RuleViolation {
  std::string field;  // e.g. "docker.privileged"
  std::string rule;
};
// The docker rules of a SecurityProfile's spec (built-in or stored) broken by a canonical Service
// spec: user, docker.*. Volumes, ports and ingress are AdmitService's own, for every driver.
std::vector<RuleViolation> DockerRuleViolations(const Json& spec, const Json& profile_spec);

// AdmitService against the spec's profile: `profile` (its spec) when given, else the built-in of
// that name (nothing to check for a name that is not built in): each broken rule a FieldError naming the field (e.g. "docker.privileged", "user",
// "volumes[0].source") and the rule. kForbidden when any is broken. `marks` gives line numbers.
Status CheckDockerRules(const Json& spec, const Json& profile = Json(), const SourceMap& marks = {});

// Root, or a member of a group that owns what root owns (root's group, or the Docker socket's),
// by the user spec alone ("root", "0", "00", "app:root", "1000:docker"). A name that is uid 0 on
// a node is the agent's to refuse: it resolves names.
bool IsRootUser(const std::string& user);

// A Linux capability's name without CAP_, upper case (NET_BIND_SERVICE), or ALL.
bool IsCapabilityName(const std::string& name);

// True for host paths no hardened workload may mount: /, /etc, /proc, /sys, /dev, /boot, /root,
// /var/lib/docker, /var/log, the Docker socket, containerd's, Mentat's and hull's state directories,
// anything under them, and any directory that holds one of them (/var, /run, /var/lib, ...). The
// path is normalized first ("//etc", "/./etc/" are /etc; a ".." makes it forbidden). Lexical: the
// agent also resolves symlinks on the node before it mounts.
bool IsHostSystemPath(const std::string& path);

// True when mounting `path` would expose the Docker socket: the socket itself, or a directory
// holding it (/run, /var/run, /), after the same normalization.
bool ExposesDockerSocket(const std::string& path);

}  // namespace mentat
