#include "apis/hull_manifest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string_view>
#include <tuple>

#include "apis/service.h"

namespace mentat {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxHostnameLength = 64;       // HOST_NAME_MAX
constexpr size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
constexpr size_t kMaxPathLength = 4095;         // PATH_MAX - 1

constexpr int64_t kMinMemoryMb = 4;
constexpr int64_t kMaxMemoryMb = 1048576;  // 1 TiB
constexpr double kMaxCpu = 1024;
constexpr int64_t kMaxPids = 4194304;  // the kernel's PID_MAX_LIMIT
constexpr int64_t kMinMtu = 68;        // the IPv4 minimum
constexpr int64_t kMaxMtu = 65535;
constexpr int kMinPrefix = 8;
constexpr int kMaxPrefix = 30;  // a /31 or /32 leaves no room for gateway + container

const std::vector<std::string>& TopLevelFields() {
  static const std::vector<std::string> fields = {"name",    "rootfs",  "argv",     "env",
                                                  "profile", "network", "hostname", "cwd",
                                                  "limits",  "mounts",  "bridge"};
  return fields;
}

// ---- small text helpers ----

std::string Child(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string Index(const std::string& prefix, size_t i) {
  return prefix + "[" + std::to_string(i) + "]";
}

// A JSON-quoted string, so control characters in user input print visibly.
std::string Quote(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string hint = ClosestMatch(word, candidates);
  return hint.empty() ? "" : ", did you mean \"" + hint + "\"?";
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// ---- paths ----

std::vector<std::string_view> Components(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) parts.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return parts;
}

// "/a//b/./c/" -> "/a/b/c". Only for absolute paths free of "..", so it is purely lexical.
std::string NormalizePath(const std::string& path) {
  std::string out;
  for (auto part : Components(path)) {
    if (part == ".") continue;
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

// True when the normalized `path` is `root` or lies below it.
bool IsUnder(const std::string& path, std::string_view root) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

// What is wrong with a path that must be absolute and free of "..", or "" when nothing is.
// ".." is refused outright rather than resolved: the runtime joins these paths onto roots, and
// a lexical check cannot know where a ".." lands once symlinks are involved.
std::string AbsolutePathProblem(const std::string& path) {
  if (path.empty()) return "must not be empty";
  if (path.find('\0') != std::string::npos) return "must not contain NUL bytes";
  if (path.front() != '/') return "must be an absolute path (start with \"/\"), got " + Quote(path);
  if (path.size() > kMaxPathLength) return "must be at most 4095 bytes long (PATH_MAX)";
  for (auto part : Components(path)) {
    if (part == "..") return "must not contain \"..\" components, got " + Quote(path);
  }
  return "";
}

// ---- names ----

bool IsValidHostname(const std::string& h) {
  if (h.empty() || h.size() > kMaxHostnameLength) return false;
  for (char c : h) {
    if (!IsAlnum(c) && c != '-' && c != '.') return false;
  }
  return h.front() != '-' && h.front() != '.' && h.back() != '-' && h.back() != '.';
}

// The kernel's dev_valid_name(): what `ip link add` would refuse, said before hull runs.
std::string InterfaceNameProblem(const std::string& name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxInterfaceNameLength) {
    return "must be at most 15 characters (IFNAMSIZ), got " + std::to_string(name.size());
  }
  if (name == "." || name == "..") return "must not be \".\" or \"..\"";
  for (char c : name) {
    if (c == '/' || c == ':' || c == '\0' || c == ' ' || (c >= '\t' && c <= '\r')) {
      return "must not contain '/', ':' or whitespace, got " + Quote(name);
    }
  }
  return "";
}

// ---- IPv4 ----

// Dotted quad, decimal, no leading zeros (which some parsers read as octal).
std::optional<uint32_t> ParseIpv4(std::string_view s) {
  uint32_t addr = 0;
  int octets = 0;
  size_t pos = 0;
  while (octets < 4) {
    size_t end = pos;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
    size_t len = end - pos;
    if (len == 0 || len > 3 || (len > 1 && s[pos] == '0')) return std::nullopt;
    int value = 0;
    for (size_t i = pos; i < end; ++i) value = value * 10 + (s[i] - '0');
    if (value > 255) return std::nullopt;
    addr = (addr << 8) | static_cast<uint32_t>(value);
    ++octets;
    if (octets < 4) {
      if (end >= s.size() || s[end] != '.') return std::nullopt;
      pos = end + 1;
    } else if (end != s.size()) {
      return std::nullopt;
    }
  }
  return addr;
}

std::string FormatIpv4(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

struct Ipv4Subnet {
  uint32_t network;
  int prefix;

  uint32_t Mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t Broadcast() const { return network | ~Mask(); }
  bool Contains(uint32_t a) const { return (a & Mask()) == network; }
};

// ---- the decoder ----

// Reads a manifest field by field, recording every problem instead of stopping at the first.
class ManifestDecoder {
 public:
  explicit ManifestDecoder(const SourceMap& marks) : marks_(marks) {}

  Result<HullManifest> Decode(const Json& json) {
    HullManifest m;
    if (!json.is_object()) {
      Fail("", "a hull manifest must be a JSON object");
      return Finish(std::move(m));
    }
    CheckKnownFields(json, "", TopLevelFields());

    bool name_ok = false;
    if (Require(json, "", "name", "the container name")) {
      if (auto v = ReadString(json, "", "name")) {
        m.name = *v;
        name_ok = ValidateName(m.name);
      }
    }
    if (Require(json, "", "rootfs", "an absolute path to a rootfs directory or .tar.gz")) {
      if (auto v = ReadString(json, "", "rootfs")) {
        m.rootfs = *v;
        ValidateRootfs(m.rootfs);
      }
    }
    if (Require(json, "", "argv", "the command to run, argv[0] an absolute path")) {
      if (auto v = ReadStringList(json, "", "argv")) {
        m.argv = *v;
        ValidateArgv(m.argv);
      }
    }
    if (auto v = ReadStringList(json, "", "env")) {
      m.env = *v;
      ValidateEnv(m.env);
    }
    if (auto v = ReadString(json, "", "profile")) {
      m.profile = *v;
      ValidateEnum("profile", m.profile, HullProfiles());
    }
    if (auto v = ReadString(json, "", "network")) {
      m.network = *v;
      ValidateEnum("network", m.network, HullNetworkModes());
    }
    if (json.contains("hostname")) {
      if (auto v = ReadString(json, "", "hostname")) {
        m.hostname = *v;
        if (!IsValidHostname(m.hostname)) Fail("hostname", HostnameMessage(m.hostname));
      }
    } else {
      m.hostname = m.name;
      // A bad name is reported once, at name; a good name can still be a bad hostname.
      if (name_ok && !IsValidHostname(m.hostname)) {
        FailAt("hostname", "name",
               "defaults to the name " + Quote(m.name) +
                   ", which is not a valid hostname (it must not start or end with '-'); "
                   "set \"hostname\" explicitly");
      }
    }
    if (auto v = ReadString(json, "", "cwd")) {
      m.cwd = *v;
      std::string problem = AbsolutePathProblem(m.cwd);
      if (!problem.empty()) Fail("cwd", problem);
    }
    if (const Json* limits = ReadObject(json, "", "limits")) DecodeLimits(*limits, &m.limits);
    if (auto it = json.find("mounts"); it != json.end()) {
      if (!it->is_array()) {
        Fail("mounts", "must be a list of {host, container, readonly} objects");
      } else {
        DecodeMounts(*it, &m.mounts);
      }
    }
    if (const Json* bridge = ReadObject(json, "", "bridge")) DecodeBridge(*bridge, &m.bridge);
    return Finish(std::move(m));
  }

 private:
  // ---- error recording ----

  void Fail(const std::string& field, std::string message) {
    FailAt(field, field, std::move(message));
  }

  // An error about `field` pointing at where `mark_path` is written (for defaulted values).
  void FailAt(const std::string& field, const std::string& mark_path, std::string message) {
    Mark mark = FindMark(marks_, mark_path);
    errors_.push_back({field, mark.line, mark.column, std::move(message)});
  }

  Result<HullManifest> Finish(HullManifest m) {
    if (errors_.empty()) return m;
    // In source order, like a compiler; without marks every line is 0 and the order is kept.
    std::stable_sort(errors_.begin(), errors_.end(), [](const FieldError& a, const FieldError& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return MakeError(Code::kInvalidArgument, "hull manifest is invalid", std::move(errors_));
  }

  void CheckKnownFields(const Json& obj, const std::string& prefix,
                        const std::vector<std::string>& known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
      Fail(Child(prefix, it.key()), "unknown field" + DidYouMean(it.key(), known));
    }
  }

  // Records "required" and returns false when `key` is absent.
  bool Require(const Json& obj, const std::string& prefix, const std::string& key,
               const std::string& what) {
    if (obj.contains(key)) return true;
    Fail(Child(prefix, key), "required: " + what);
    return false;
  }

  // ---- typed reads: nullopt when absent, or (with an error recorded) of the wrong type ----

  std::optional<std::string> ReadString(const Json& obj, const std::string& prefix,
                                        const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (!it->is_string()) {
      Fail(Child(prefix, key), "must be a string");
      return std::nullopt;
    }
    return it->get<std::string>();
  }

  std::optional<std::vector<std::string>> ReadStringList(const Json& obj, const std::string& prefix,
                                                         const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    std::string path = Child(prefix, key);
    if (!it->is_array()) {
      Fail(path, "must be a list of strings");
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      if (!e.is_string()) {
        Fail(Index(path, i), "must be a string");
        ok = false;
        continue;
      }
      out.push_back(e.get<std::string>());
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // Integral floats (512.0) are accepted; out-of-range values saturate so the range check names
  // them rather than a type error.
  std::optional<int64_t> ReadInteger(const Json& obj, const std::string& prefix,
                                     const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    if (it->is_number_unsigned()) {
      uint64_t u = it->get<uint64_t>();
      return u > static_cast<uint64_t>(kMax) ? kMax : static_cast<int64_t>(u);
    }
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_number_float()) {
      double d = it->get<double>();
      if (std::isfinite(d) && d == std::trunc(d)) {
        if (d >= 9.2e18) return kMax;
        if (d <= -9.2e18) return kMin;
        return static_cast<int64_t>(d);
      }
    }
    Fail(Child(prefix, key), "must be an integer");
    return std::nullopt;
  }

  // An integer that must lie in [lo, hi]: nullopt when absent or (error recorded) invalid.
  std::optional<int64_t> ReadIntegerInRange(const Json& obj, const std::string& prefix,
                                            const std::string& key, int64_t lo, int64_t hi,
                                            const std::string& unit) {
    std::optional<int64_t> v = ReadInteger(obj, prefix, key);
    if (!v || (*v >= lo && *v <= hi)) return v;
    Fail(Child(prefix, key), "must be between " + std::to_string(lo) + " and " +
                                 std::to_string(hi) + unit + ", got " + obj.at(key).dump());
    return std::nullopt;
  }

  std::optional<double> ReadNumber(const Json& obj, const std::string& prefix,
                                   const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (!it->is_number()) {
      Fail(Child(prefix, key), "must be a number");
      return std::nullopt;
    }
    return it->get<double>();
  }

  std::optional<bool> ReadBool(const Json& obj, const std::string& prefix, const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (!it->is_boolean()) {
      Fail(Child(prefix, key), "must be a boolean (true or false)");
      return std::nullopt;
    }
    return it->get<bool>();
  }

  // The object at `key`, or nullptr when absent or (with an error recorded) not an object.
  const Json* ReadObject(const Json& obj, const std::string& prefix, const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end()) return nullptr;
    if (!it->is_object()) {
      Fail(Child(prefix, key), "must be an object");
      return nullptr;
    }
    return &*it;
  }

  // ---- field rules ----

  bool ValidateName(const std::string& name) {
    if (name.empty() || name.size() > kMaxNameLength) {
      Fail("name", "must be 1-64 characters long, got " + std::to_string(name.size()));
      return false;
    }
    for (char c : name) {
      if (!IsAlnum(c) && c != '-') {
        Fail("name", "may contain only letters, digits and '-', got " + Quote(name));
        return false;
      }
    }
    return true;
  }

  void ValidateRootfs(const std::string& rootfs) {
    std::string problem = AbsolutePathProblem(rootfs);
    if (!problem.empty()) {
      Fail("rootfs", problem);
      return;
    }
    if (NormalizePath(rootfs) == "/") {
      Fail("rootfs", "must not be the host's root \"/\": give the container its own rootfs");
      return;
    }
    if (rootfs.ends_with(".tar.gz")) return;
    // Anything else is taken as a directory; an archive hull cannot extract would otherwise fail
    // later with a confusing "not a directory".
    for (const char* ext : {".tar", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst", ".zip"}) {
      if (rootfs.ends_with(ext)) {
        Fail("rootfs", std::string("unsupported archive \"") + ext +
                           "\": hull takes a rootfs directory or a .tar.gz archive");
        return;
      }
    }
  }

  void ValidateArgv(const std::vector<std::string>& argv) {
    if (argv.empty()) {
      Fail("argv", "must not be empty: argv[0] is the executable to run");
      return;
    }
    if (argv[0].empty() || argv[0].front() != '/') {
      Fail("argv[0]",
           "must be an absolute path to the executable inside the rootfs, got " + Quote(argv[0]));
    }
    for (size_t i = 0; i < argv.size(); ++i) {
      // execve() takes C strings: a NUL would silently cut the argument short.
      if (argv[i].find('\0') != std::string::npos) {
        Fail(Index("argv", i), "must not contain NUL bytes");
      }
    }
  }

  void ValidateEnv(const std::vector<std::string>& env) {
    for (size_t i = 0; i < env.size(); ++i) {
      const std::string& e = env[i];
      size_t eq = e.find('=');
      if (eq == std::string::npos) {
        Fail(Index("env", i), "must be KEY=VALUE, got " + Quote(e));
      } else if (eq == 0) {
        Fail(Index("env", i), "KEY must not be empty in KEY=VALUE, got " + Quote(e));
      } else if (e.find('\0') != std::string::npos) {
        Fail(Index("env", i), "must not contain NUL bytes");
      }
    }
  }

  void ValidateEnum(const std::string& field, const std::string& value,
                    const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    std::string hint = ClosestMatch(value, allowed);
    Fail(field, "unknown " + field + " " + Quote(value) +
                    (hint.empty() ? "" : ", did you mean \"" + hint + "\"?") + " (one of " +
                    Join(allowed) + ")");
  }

  static std::string HostnameMessage(const std::string& hostname) {
    return "must be a valid hostname: 1-64 characters of letters, digits, '-' and '.', not "
           "starting or ending with '-' or '.', got " +
           Quote(hostname);
  }

  void DecodeLimits(const Json& json, HullLimits* limits) {
    CheckKnownFields(json, "limits", {"memory_mb", "cpu", "pids"});
    if (auto v =
            ReadIntegerInRange(json, "limits", "memory_mb", kMinMemoryMb, kMaxMemoryMb, " (MiB)")) {
      limits->memory_mb = *v;
    }
    if (auto v = ReadNumber(json, "limits", "cpu")) {
      limits->cpu = *v;
      if (!(*v > 0) || *v > kMaxCpu) {
        Fail("limits.cpu",
             "must be greater than 0 and at most 1024 (cores), got " + Json(*v).dump());
      }
    }
    if (auto v = ReadIntegerInRange(json, "limits", "pids", 1, kMaxPids, "")) limits->pids = *v;
  }

  void DecodeMounts(const Json& json, std::vector<HullMount>* mounts) {
    // Normalized container target -> the first mount that uses it.
    std::map<std::string, std::string> targets;
    for (size_t i = 0; i < json.size(); ++i) {
      std::string path = Index("mounts", i);
      const Json& entry = json[i];
      if (!entry.is_object()) {
        Fail(path, "must be an object {host, container, readonly}");
        continue;
      }
      CheckKnownFields(entry, path, {"host", "container", "readonly"});
      HullMount mount;
      if (Require(entry, path, "host", "an absolute path on the host")) {
        if (auto v = ReadString(entry, path, "host")) {
          mount.host = *v;
          ValidateMountHost(Child(path, "host"), mount.host);
        }
      }
      if (Require(entry, path, "container", "an absolute path inside the container")) {
        if (auto v = ReadString(entry, path, "container")) {
          mount.container = *v;
          if (ValidateMountContainer(Child(path, "container"), mount.container)) {
            auto [it, inserted] = targets.emplace(NormalizePath(mount.container), path);
            if (!inserted) {
              Fail(Child(path, "container"), "duplicate mount target " + Quote(mount.container) +
                                                 ", already used by " + it->second);
            }
          }
        }
      }
      if (auto v = ReadBool(entry, path, "readonly")) mount.readonly = *v;
      mounts->push_back(std::move(mount));
    }
  }

  void ValidateMountHost(const std::string& field, const std::string& host) {
    std::string problem = AbsolutePathProblem(host);
    if (!problem.empty()) {
      Fail(field, problem);
      return;
    }
    // Bind-mounting these would hand the container the host itself. /proc, /sys and hull's own
    // state are refused below too: /proc/1/root is the host's root, /sys/fs/cgroup its limits.
    std::string path = NormalizePath(host);
    for (std::string_view system : {"/", "/dev", "/etc", "/boot"}) {
      if (path == system) {
        Fail(field, "must not be the host system path " + Quote(path));
        return;
      }
    }
    for (std::string_view system : {"/proc", "/sys", "/var/lib/hull"}) {
      if (IsUnder(path, system)) {
        Fail(field, "must not be the host system path " + Quote(std::string(system)) +
                        " or anything under it, got " + Quote(host));
        return;
      }
    }
  }

  bool ValidateMountContainer(const std::string& field, const std::string& container) {
    std::string problem = AbsolutePathProblem(container);
    if (!problem.empty()) {
      Fail(field, problem);
      return false;
    }
    std::string path = NormalizePath(container);
    if (path == "/") {
      Fail(field, "must not be \"/\": the rootfs is the container's root");
      return false;
    }
    // hull mounts a fresh /proc and /sys itself; a bind mount there would hide or replace them.
    for (std::string_view reserved : {"/proc", "/sys"}) {
      if (IsUnder(path, reserved)) {
        Fail(field,
             "must not be " + std::string(reserved) + " or under it, got " + Quote(container));
        return false;
      }
    }
    return true;
  }

  void DecodeBridge(const Json& json, HullBridge* bridge) {
    CheckKnownFields(json, "bridge", {"name", "subnet", "ip", "mtu"});
    if (auto v = ReadString(json, "bridge", "name")) {
      bridge->name = *v;
      std::string problem = InterfaceNameProblem(bridge->name);
      if (!problem.empty()) Fail("bridge.name", "must be a valid interface name: " + problem);
    }
    std::optional<Ipv4Subnet> subnet;
    if (auto v = ReadString(json, "bridge", "subnet")) {
      bridge->subnet = *v;
      subnet = ValidateSubnet(bridge->subnet);
    } else if (!json.contains("subnet")) {
      subnet = ValidateSubnet(bridge->subnet);  // the default, for checking ip against it
    }
    if (auto v = ReadString(json, "bridge", "ip")) {
      bridge->ip = *v;
      ValidateBridgeIp(*v, subnet);
    }
    if (auto v = ReadIntegerInRange(json, "bridge", "mtu", kMinMtu, kMaxMtu, "")) {
      bridge->mtu = static_cast<int>(*v);
    }
  }

  std::optional<Ipv4Subnet> ValidateSubnet(const std::string& cidr) {
    const std::string field = "bridge.subnet";
    size_t slash = cidr.find('/');
    std::optional<uint32_t> addr = slash == std::string::npos
                                       ? std::nullopt
                                       : ParseIpv4(std::string_view(cidr).substr(0, slash));
    std::string prefix_text = slash == std::string::npos ? "" : cidr.substr(slash + 1);
    bool prefix_digits = !prefix_text.empty() && prefix_text.size() <= 2 &&
                         std::all_of(prefix_text.begin(), prefix_text.end(),
                                     [](char c) { return c >= '0' && c <= '9'; });
    if (!addr || !prefix_digits) {
      Fail(field, "must be an IPv4 CIDR such as \"10.88.0.0/24\", got " + Quote(cidr));
      return std::nullopt;
    }
    Ipv4Subnet subnet{*addr, std::stoi(prefix_text)};
    if (subnet.prefix < kMinPrefix || subnet.prefix > kMaxPrefix) {
      Fail(field, "prefix length must be between /8 and /30, got " + Quote(cidr));
      return std::nullopt;
    }
    if ((subnet.network & ~subnet.Mask()) != 0) {
      Fail(field, "must be a network address (host bits zero): did you mean \"" +
                      FormatIpv4(subnet.network & subnet.Mask()) + "/" +
                      std::to_string(subnet.prefix) + "\"?");
      return std::nullopt;
    }
    return subnet;
  }

  void ValidateBridgeIp(const std::string& ip, const std::optional<Ipv4Subnet>& subnet) {
    const std::string field = "bridge.ip";
    std::optional<uint32_t> addr = ParseIpv4(ip);
    if (!addr) {
      Fail(field, "must be an IPv4 address such as \"10.88.0.5\", got " + Quote(ip));
      return;
    }
    if (!subnet) return;  // the subnet's own error is reported; nothing to check against
    std::string cidr = FormatIpv4(subnet->network) + "/" + std::to_string(subnet->prefix);
    if (!subnet->Contains(*addr)) {
      Fail(field, Quote(ip) + " is not inside bridge.subnet " + cidr);
    } else if (*addr == subnet->network) {
      Fail(field, Quote(ip) + " is the network address of " + cidr);
    } else if (*addr == subnet->network + 1) {
      Fail(field, Quote(ip) + " is the gateway address of " + cidr + " (the bridge's own)");
    } else if (*addr == subnet->Broadcast()) {
      Fail(field, Quote(ip) + " is the broadcast address of " + cidr);
    }
  }

  const SourceMap& marks_;
  std::vector<FieldError> errors_;
};

}  // namespace

const std::vector<std::string>& HullProfiles() {
  static const std::vector<std::string> profiles = {"default", "webapp", "node",
                                                    "dotnet",  "beam",   "java"};
  return profiles;
}

const std::vector<std::string>& HullNetworkModes() {
  static const std::vector<std::string> modes = {"none", "host", "bridge"};
  return modes;
}

Result<HullManifest> HullManifest::FromJson(const Json& json, const SourceMap& marks) {
  return ManifestDecoder(marks).Decode(json);
}

Json HullManifest::ToJson() const {
  Json mounts_json = Json::array();
  for (const auto& m : mounts) {
    mounts_json.push_back({{"host", m.host}, {"container", m.container}, {"readonly", m.readonly}});
  }
  Json bridge_json = {{"name", bridge.name}, {"subnet", bridge.subnet}, {"mtu", bridge.mtu}};
  if (bridge.ip) bridge_json["ip"] = *bridge.ip;
  return Json{
      {"name", name},
      {"rootfs", rootfs},
      {"argv", argv},
      {"env", env},
      {"profile", profile},
      {"network", network},
      {"hostname", hostname},
      {"cwd", cwd},
      {"limits", {{"memory_mb", limits.memory_mb}, {"cpu", limits.cpu}, {"pids", limits.pids}}},
      {"mounts", std::move(mounts_json)},
      {"bridge", std::move(bridge_json)},
  };
}

}  // namespace mentat
