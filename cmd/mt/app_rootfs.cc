#include "cmd/mt/app_rootfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "apis/artifacts/pack.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat::mt {
namespace fs = std::filesystem;
namespace {

struct RootfsRef {
  std::string field;  // "rootfs", "config.rootfs" or "spec.rootfs"
  std::string value;
  Mark mark;
};

bool IsRelative(const Json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  return !s.empty() && s[0] != '/' && s.rfind(kArtifactDigestPrefix, 0) != 0;
}

// The relative rootfs fields of a document that declares a Service.
std::vector<RootfsRef> RelativeRootfs(const Document& doc) {
  std::vector<RootfsRef> out;
  const Json& v = doc.value;
  if (!v.is_object()) return out;
  if (v.contains("kind") && v["kind"] != "Service") return out;
  // A bare hull manifest (seed 003) is hull's own file, whose rootfs is a node path.
  if (IsBareHullManifest(v)) return out;
  auto look = [&](const Json& parent, const std::string& prefix) {
    if (!parent.is_object() || !parent.contains("rootfs") || !IsRelative(parent["rootfs"])) return;
    std::string field = prefix + "rootfs";
    auto m = doc.marks.find(field);
    out.push_back(
        {field, parent["rootfs"].get<std::string>(), m == doc.marks.end() ? Mark{} : m->second});
  };
  look(v, "");
  if (v.contains("config")) look(v["config"], "config.");
  if (v.contains("spec")) look(v["spec"], "spec.");
  return out;
}

// Byte offset of line:column (both 1-based) in text, or npos.
size_t Offset(const std::string& text, Mark m) {
  if (m.line < 1 || m.column < 1) return std::string::npos;
  size_t pos = 0;
  for (int line = 1; line < m.line; ++line) {
    pos = text.find('\n', pos);
    if (pos == std::string::npos) return pos;
    ++pos;
  }
  pos += static_cast<size_t>(m.column - 1);
  return pos < text.size() ? pos : std::string::npos;
}

// Where in `text` the value `value` of the key that starts at `key` sits, quotes excluded;
// npos unless it follows its key on the same line, written plainly or in quotes.
size_t ScalarAt(const std::string& text, size_t key, const std::string& value) {
  if (key == std::string::npos) return key;
  size_t at = key;
  if (text[at] == '"' || text[at] == '\'') {
    at = text.find(text[at], at + 1);
    if (at == std::string::npos) return at;
    ++at;
  } else {
    while (at < text.size() && text[at] != ':' && text[at] != '\n') ++at;
  }
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  if (at >= text.size() || text[at] != ':') return std::string::npos;
  ++at;
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  if (at >= text.size()) return std::string::npos;
  if (text.compare(at, value.size(), value) == 0) return at;
  char q = text[at];
  if ((q == '"' || q == '\'') && text.compare(at + 1, value.size(), value) == 0 &&
      at + 1 + value.size() < text.size() && text[at + 1 + value.size()] == q) {
    return at + 1;
  }
  return std::string::npos;
}

std::string Size(uint64_t bytes) {
  char buf[32];
  if (bytes < 1024) return std::to_string(bytes) + " B";
  if (bytes < (1 << 20)) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", bytes / 1024.0);
  } else if (bytes < (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / 1048576.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / 1073741824.0);
  }
  return buf;
}

std::string TempArchive() {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/mt-rootfs-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) return "";
  ::close(fd);
  return path;
}

struct Packed {
  PackedTree tree;
  bool uploaded = false;
  bool on_server = false;
};

// The app's directory that a relative rootfs names, beside its manifest (the working directory
// for stdin), or what is wrong with it.
std::expected<fs::path, std::string> AppDirectory(const Source& s, const RootfsRef& r) {
  fs::path base = s.path == "<stdin>" ? fs::path(".") : fs::path(s.path).parent_path();
  if (base.empty()) base = ".";
  fs::path dir = (base / r.value).lexically_normal();
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    return std::unexpected("\"" + r.value + "\" does not exist (looked for " + dir.string() + ")");
  }
  if (!fs::is_directory(st)) {
    return std::unexpected("\"" + r.value + "\" is not a directory (" + dir.string() +
                           "): a relative rootfs is the app's directory, packed by mt apply");
  }
  return dir;
}

// Packs `dir` into a temp archive and uploads it if `mode` says so and the server lacks it.
// The first HEAD tells `server_max`, the server's limit (0 while unknown).
Result<Packed> PackAndUpload(const fs::path& dir, RootfsMode mode, ApiClient* client,
                             uint64_t& server_max) {
  std::string archive = TempArchive();
  if (archive.empty()) return Internal("cannot create a temp file for the archive");
  struct Remove {
    std::string path;
    ~Remove() { ::unlink(path.c_str()); }
  } remove{archive};
  Packed p;
  MT_ASSIGN_OR_RETURN(p.tree, PackDirectory(dir.string(), archive));
  if (!client) return p;
  MT_ASSIGN_OR_RETURN(auto have, client->StatArtifact(p.tree.digest, &server_max));
  p.on_server = have.has_value();
  if (p.on_server || mode != RootfsMode::kUpload) return p;
  if (server_max && p.tree.bytes > server_max) {
    return MakeError(Code::kTooLarge, "packed, it is " + Size(p.tree.bytes) +
                                          ", over the server's artifact limit of " +
                                          Size(server_max) + " (mentat-server --max-artifact-mb)");
  }
  MT_RETURN_IF_ERROR(client->PutArtifact(p.tree.digest, archive));
  p.uploaded = true;
  return p;
}

void ReportPacked(std::ostream& progress, const Source& s, const RootfsRef& r, const Packed& p,
                  bool asked_server) {
  progress << "packed " << r.value << " (" << s.path << ":" << r.mark.line
           << "): " << p.tree.entries << (p.tree.entries == 1 ? " entry, " : " entries, ")
           << Size(p.tree.bytes) << ", " << p.tree.digest.substr(0, 19) << "… "
           << (p.uploaded     ? "uploaded"
               : p.on_server  ? "already on the server"
               : asked_server ? "not uploaded (dry run)"
                              : "packed")
           << "\n";
}

}  // namespace

Result<std::vector<PackedRootfs>> ResolveAppRootfs(std::vector<Source>& sources, RootfsMode mode,
                                                   ApiClient* client, std::ostream& progress) {
  std::vector<PackedRootfs> done;
  std::vector<FieldError> errors;
  std::map<std::string, Result<Packed>> packed;  // by directory: each is packed once
  uint64_t server_max = 0;

  auto fail = [&](const Source& s, const RootfsRef& r, const std::string& message) {
    FieldError fe(r.field, r.mark.line, r.mark.column, message);
    fe.source = s.path;
    errors.push_back(std::move(fe));
  };

  for (auto& s : sources) {
    auto docs = DecodeYamlStream(s.text);
    if (!docs) continue;  // the server reports it, with its line
    // Replaced from the end, so that earlier offsets stay right.
    std::vector<std::pair<size_t, std::pair<size_t, std::string>>> edits;
    for (const auto& doc : *docs) {
      for (const auto& r : RelativeRootfs(doc)) {
        size_t at = ScalarAt(s.text, Offset(s.text, r.mark), r.value);
        if (at == std::string::npos) {
          fail(s, r,
               "cannot rewrite this rootfs to its artifact's digest: write it as a plain "
               "or quoted string on one line");
          continue;
        }
        if (HasDotDot(r.value)) {
          fail(s, r,
               "\"" + r.value + "\" must not contain \"..\": the app's directory is at " +
                   "or below the manifest's folder");
          continue;
        }
        std::string digest;
        PackedRootfs out{s.path, r.mark.line, r.value};
        if (mode == RootfsMode::kPlaceholder) {
          digest = std::string(kArtifactDigestPrefix) + std::string(64, '0');
        } else {
          auto dir = AppDirectory(s, r);
          if (!dir) {
            fail(s, r, dir.error());
            continue;
          }
          std::error_code ec;
          std::string key = fs::weakly_canonical(*dir, ec).string();
          auto it = packed.find(key);
          if (it == packed.end()) {
            it = packed.emplace(key, PackAndUpload(*dir, mode, client, server_max)).first;
            if (it->second) ReportPacked(progress, s, r, *it->second, client != nullptr);
          }
          if (!it->second) {
            const Error& e = it->second.error();
            // Errors from the server (unreachable, unauthorized) are the server's to report.
            if (e.code() == Code::kUnavailable || e.code() == Code::kUnauthenticated ||
                e.code() == Code::kForbidden) {
              return std::unexpected(e);
            }
            fail(s, r, "\"" + r.value + "\": " + e.message());
            continue;
          }
          digest = it->second->tree.digest;
          out.bytes = it->second->tree.bytes;
          out.uploaded = it->second->uploaded;
          out.on_server = it->second->on_server;
        }
        out.digest = digest;
        done.push_back(out);
        edits.push_back({at, {r.value.size(), digest}});
      }
    }
    std::sort(edits.begin(), edits.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [at, edit] : edits) s.text.replace(at, edit.first, edit.second);
  }
  if (!errors.empty()) {
    std::string n = std::to_string(errors.size());
    return MakeError(Code::kInvalidArgument,
                     n + (errors.size() == 1 ? " rootfs" : " rootfs fields") +
                         " could not be packed; nothing was applied",
                     std::move(errors));
  }
  return done;
}

}  // namespace mentat::mt
