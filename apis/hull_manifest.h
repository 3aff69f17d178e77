// The hull manifest: the JSON file `hull run` takes (seed 003, "Manifest Specification"), as one
// typed struct shared by the hull binary and the hull driver. Parsing fills in every default and
// validates the whole manifest, reporting all problems at once with field paths and lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

// cgroups v2 limits.
struct HullLimits {
  int64_t memory_mb = 256;  // 4 .. 1048576
  double cpu = 1.0;         // fraction of one core: > 0 and <= 1024
  int64_t pids = 128;       // 1 .. 4194304

  bool operator==(const HullLimits&) const = default;
};

// One bind mount of a host path into the container.
struct HullMount {
  std::string host;       // absolute host path; never a host system path (/, /proc, /etc, ...)
  std::string container;  // absolute target inside the container; not "/", /proc or /sys
  bool readonly = false;

  bool operator==(const HullMount&) const = default;
};

// The veth bridge used when network is "bridge". Accepted (and defaulted) in every network mode.
struct HullBridge {
  std::string name = "hull0";           // host bridge device: a valid Linux interface name
  std::string subnet = "10.88.0.0/24";  // IPv4 CIDR, prefix 8..30; the gateway is its first host
  std::optional<std::string> ip;        // static container IPv4; nullopt: leased automatically
  int mtu = 1500;                       // 68 .. 65535

  bool operator==(const HullBridge&) const = default;
};

struct HullManifest {
  // Required.
  std::string name;               // 1-64 characters of [A-Za-z0-9-]
  std::string rootfs;             // absolute directory path or .tar.gz archive
  std::vector<std::string> argv;  // non-empty; argv[0] is an absolute path in the rootfs
  // Optional, with the seed's defaults.
  std::vector<std::string> env;     // "KEY=VALUE"
  std::string profile = "default";  // seccomp profile: one of HullProfiles()
  std::string network = "none";     // one of HullNetworkModes()
  std::string hostname;             // defaults to name
  std::string cwd = "/";
  HullLimits limits;
  std::vector<HullMount> mounts;
  HullBridge bridge;

  // Decodes JSON text (strict JSON: no comments, no trailing commas), then FromJson. Syntax
  // errors carry the line:column of the offending character.
  // Errors: kInvalidArgument (kTooLarge over kMaxManifestBytes).
  static Result<HullManifest> Parse(const std::string& json_text);

  // Validates a decoded manifest and fills in defaults. `marks` (from DecodeYaml) gives lines.
  // Errors: kInvalidArgument "hull manifest is invalid" with one FieldError per problem, all
  // problems at once: unknown fields, wrong types, missing required fields, bad values.
  static Result<HullManifest> FromJson(const Json& json, const SourceMap& marks = {});

  // The canonical form: every field present with its default filled in (bridge.ip omitted when
  // automatic). Parse(ToJson().dump()) gives back an equal manifest.
  Json ToJson() const;

  bool operator==(const HullManifest&) const = default;
};

// The seccomp profiles hull ships: default, webapp, node, dotnet, beam, java.
const std::vector<std::string>& HullProfiles();
// none, host, bridge.
const std::vector<std::string>& HullNetworkModes();

}  // namespace mentat
