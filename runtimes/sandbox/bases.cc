#include "runtimes/sandbox/bases.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

#include "apis/object.h"
#include "runtimes/sandbox/captured_command.h"
#include "runtimes/sandbox/rootfs_builder.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCurrent = "current";
constexpr const char* kBaseJson = "base.json";

// Every base gets these on top of its recipe: mount points for the sandbox driver, a /tmp, and
// the two account files that `id`, Python's getpass and Node's os.userInfo() read.
struct SkeletonDir {
  const char* path;
  mode_t mode;
};
constexpr SkeletonDir kSkeletonDirs[] = {
    {"/proc", 0555}, {"/sys", 0555},  {"/dev", 0755}, {"/tmp", 01777},
    {"/run", 0755},  {"/root", 0700}, {"/etc", 0755}, {"/app", 0755},
};
constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr const char* kGroup = "root:x:0:\nnogroup:x:65534:\n";

// A base as recorded on disk.
struct BuiltBase {
  BaseInfo info;
  std::map<std::string, std::string> host_packages;
};

std::string JoinNames(const std::vector<std::string>& names, const std::string& sep) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : sep) + n;
  return out;
}

std::string Absolute(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(dir), ec);
  return ec ? fs::absolute(dir).lexically_normal().string() : p.string();
}

// The build `current` points at, if it is complete.
std::optional<BuiltBase> ReadCurrent(const std::string& name_dir) {
  std::error_code ec;
  fs::path target = fs::read_symlink(fs::path(name_dir) / kCurrent, ec);
  if (ec || target.has_parent_path() || target.string().rfind("build-", 0) != 0) {
    return std::nullopt;
  }
  fs::path build = fs::path(name_dir) / target;
  std::ifstream f(build / kBaseJson);
  if (!f || !fs::is_directory(build / "rootfs", ec)) return std::nullopt;
  try {
    Json j = Json::parse(f);
    BuiltBase b;
    b.info.name = j.at("name").get<std::string>();
    b.info.version = j.at("version").get<std::string>();
    b.info.built_at = j.at("built_at").get<std::string>();
    b.info.recipe_hash = j.at("recipe_hash").get<std::string>();
    b.info.size_bytes = j.at("size_bytes").get<int64_t>();
    b.info.rootfs = (build / "rootfs").string();
    if (j.contains("host_packages")) {
      b.host_packages = j["host_packages"].get<std::map<std::string, std::string>>();
    }
    return b;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged record: rebuilt
  }
}

// Up to date: the same recipe, and no package of it upgraded (or downgraded) since. A package
// removed from the host does not matter: the base has its own copy.
bool UpToDate(const BuiltBase& b, const BaseRecipe& r,
              const std::optional<std::map<std::string, std::string>>& installed) {
  if (b.info.recipe_hash != r.hash) return false;
  if (!installed) return true;
  for (const auto& [pkg, version] : *installed) {
    auto was = b.host_packages.find(pkg);
    if (was != b.host_packages.end() && was->second != version) return false;
  }
  return true;
}

// A command of the recipe, run inside the base when we may chroot (which also proves the base
// is complete); otherwise (not root) the same paths on the host, where they came from.
Result<CapturedOutput> RunInBase(const std::string& rootfs, const std::vector<std::string>& argv) {
  CaptureOptions o;
  o.chroot_dir = rootfs;
  o.mount_proc = true;
  auto r = RunCaptured(argv, o);
  if (!r && r.error().code() == Code::kFailedPrecondition) {
    o.chroot_dir.clear();
    o.mount_proc = false;
    r = RunCaptured(argv, o);
  }
  return r;
}

Result<std::string> ProbeVersion(const BaseRecipe& r, const std::string& rootfs) {
  MT_ASSIGN_OR_RETURN(CapturedOutput out, RunInBase(rootfs, r.version_command));
  std::string first_line = out.out.substr(0, out.out.find('\n'));
  if (out.exit_code != 0) {
    return FailedPrecondition("base " + r.name + ": its version command " + r.version_command[0] +
                              " failed in the built base (exit " + std::to_string(out.exit_code) +
                              "): " + first_line);
  }
  std::smatch m;
  std::regex re(r.version_pattern);
  if (!std::regex_search(out.out, m, re)) {
    return FailedPrecondition("base " + r.name + ": the output of " + r.version_command[0] +
                              " has no match for /" + r.version_pattern + "/: " + first_line);
  }
  std::string v = m.size() > 1 && m[1].matched ? m[1].str() : m[0].str();
  std::string formatted = r.version_format;
  formatted.replace(formatted.find("{}"), 2, v);
  return formatted;
}

std::string MissingOnHost(const BaseRecipe& r, const std::string& path) {
  std::string out = "base " + r.name + " needs " + path + ", which this host does not have";
  if (!r.provided_by.empty()) return out + " (" + r.provided_by + ")";
  if (r.packages.empty()) return out;
  return out + " (Debian packages: " + JoinNames(r.packages, ", ") + "; apt-get install -y " +
         JoinNames(r.packages, " ") + ")";
}

// Builds the base's rootfs under `dir` (dir/rootfs) and writes dir/base.json.
Result<BaseInfo> BuildInto(const std::string& dir, const BaseRecipe& r,
                           const std::map<std::string, std::string>& host_packages) {
  std::string rootfs = dir + "/rootfs";
  if (mkdir(rootfs.c_str(), 0755) < 0) return ErrnoError("mkdir " + rootfs, errno);
  chmod(rootfs.c_str(), 0755);
  MT_ASSIGN_OR_RETURN(auto builder, RootfsBuilder::Create(rootfs));
  for (const auto& f : r.files) {
    auto added = builder->AddFile(f.path);
    if (!added && added.error().code() == Code::kNotFound) {
      if (f.optional) continue;
      return FailedPrecondition(MissingOnHost(r, f.path));
    }
    MT_RETURN_IF_ERROR(added);
  }
  for (const auto& t : r.trees) {
    auto added = builder->AddTree(t.path, t.exclude);
    if (!added && added.error().code() == Code::kNotFound) {
      if (t.optional) continue;
      return FailedPrecondition(MissingOnHost(r, t.path));
    }
    MT_RETURN_IF_ERROR(added);
  }
  MT_RETURN_IF_ERROR(builder->AddSharedLibraries());
  for (const auto& d : kSkeletonDirs) MT_RETURN_IF_ERROR(builder->AddDirectory(d.path, d.mode));
  MT_RETURN_IF_ERROR(builder->WriteFile("/etc/passwd", kPasswd, 0644));
  MT_RETURN_IF_ERROR(builder->WriteFile("/etc/group", kGroup, 0644));
  if (!r.applets_binary.empty()) {
    MT_ASSIGN_OR_RETURN(CapturedOutput list, RunInBase(rootfs, r.applets_list));
    if (list.exit_code != 0) {
      return FailedPrecondition("base " + r.name + ": listing applets with " + r.applets_list[0] +
                                " failed (exit " + std::to_string(list.exit_code) + ")");
    }
    std::istringstream lines(list.out);
    for (std::string line; std::getline(lines, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || line.find("..") != std::string::npos) continue;
      std::string path = line[0] == '/' ? line : "/" + line;
      if (builder->Exists(path)) continue;
      MT_RETURN_IF_ERROR(builder->AddSymlink(path, r.applets_binary));
    }
  }
  for (const auto& s : r.symlinks) MT_RETURN_IF_ERROR(builder->AddSymlink(s.path, s.target));

  BaseInfo info;
  info.name = r.name;
  info.recipe_hash = r.hash;
  MT_ASSIGN_OR_RETURN(info.version, ProbeVersion(r, rootfs));
  MT_ASSIGN_OR_RETURN(info.size_bytes, builder->SizeBytes());
  info.built_at = NowRfc3339();

  Json j = {{"name", info.name},
            {"version", info.version},
            {"built_at", info.built_at},
            {"recipe_hash", info.recipe_hash},
            {"size_bytes", info.size_bytes},
            {"size", info.size_bytes},
            {"host_packages", host_packages},
            {"files_linked", builder->stats().linked},
            {"files_copied", builder->stats().copied}};
  std::string path = dir + "/" + kBaseJson;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create " + path, errno);
  std::string text = j.dump(2) + "\n";
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  // One syncfs for the whole build (copied files included) before it can become current.
  ok = ok && syncfs(fd) == 0;
  close(fd);
  if (!ok) return ErrnoError("write " + path, errno);
  return info;
}

// Holds an exclusive flock on a file until destroyed.
class FileLock {
 public:
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("open " + path, errno);
    while (flock(fd, LOCK_EX) < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return ErrnoError("flock " + path, e);
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() { close(fd_); }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// <recipe hash>-<time>: builds of one base are serialised by its lock, and the time (in
// microseconds, base 36) orders them.
std::string UniqueId(const std::string& hash) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::string t;
  for (; us > 0; us /= 36) t.insert(t.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[us % 36]);
  return hash.substr(0, 12) + "-" + t;
}

// Points `current` at `build` atomically (a new link renamed over the old one).
Status SwitchCurrent(const std::string& name_dir, const std::string& build) {
  std::string tmp = name_dir + "/.current-" + build;
  unlink(tmp.c_str());
  if (symlink(build.c_str(), tmp.c_str()) < 0) return ErrnoError("symlink " + tmp, errno);
  std::string current = name_dir + "/" + kCurrent;
  if (rename(tmp.c_str(), current.c_str()) < 0) return ErrnoError("rename " + tmp, errno);
  int dfd = open(name_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return {};
}

// Removes what a crashed build left, and builds older than `keep`.
void Prune(const std::string& name_dir, const std::vector<std::string>& keep) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(name_dir, ec)) {
    std::string n = e.path().filename().string();
    bool stale_tmp = n.rfind(".tmp-", 0) == 0 || n.rfind(".current-", 0) == 0;
    bool old_build =
        n.rfind("build-", 0) == 0 && std::find(keep.begin(), keep.end(), n) == keep.end();
    if (stale_tmp || old_build) fs::remove_all(e.path(), ec);
  }
}

}  // namespace

std::vector<std::string> KnownBases() {
  std::vector<std::string> names;
  for (const auto& e : EmbeddedBaseRecipes()) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  return names;
}

Result<BaseInfo> EnsureBase(const std::string& bases_dir, const std::string& name) {
  MT_ASSIGN_OR_RETURN(BaseRecipe recipe, KnownBaseRecipe(name));
  return EnsureBaseFromRecipe(bases_dir, recipe);
}

Result<BaseInfo> EnsureBaseFromRecipe(const std::string& bases_dir, const BaseRecipe& recipe,
                                      const EnsureBaseOptions& options) {
  std::string root = Absolute(bases_dir);
  std::string name_dir = root + "/" + recipe.name;
  auto installed = InstalledVersions(recipe.packages, options.dpkg_status);

  // Fast path, no lock: `current` only ever points at a complete build.
  if (!options.force_rebuild) {
    if (auto b = ReadCurrent(name_dir); b && UpToDate(*b, recipe, installed)) return b->info;
  }
  std::error_code ec;
  fs::create_directories(name_dir, ec);
  if (ec) return Internal("creating " + name_dir + ": " + ec.message());
  MT_ASSIGN_OR_RETURN(auto lock, FileLock::Acquire(name_dir + "/.lock"));
  // Another caller may have built it while we waited for the lock.
  auto current = ReadCurrent(name_dir);
  if (current && UpToDate(*current, recipe, installed) && (!options.force_rebuild)) {
    return current->info;
  }

  if (installed) {
    std::vector<std::string> missing;
    for (const auto& p : recipe.packages) {
      if (!installed->count(p)) missing.push_back(p);
    }
    if (!missing.empty()) {
      return FailedPrecondition(
          "base " + recipe.name +
          " needs Debian packages this host does not have: " + JoinNames(missing, ", ") +
          "; install them with: apt-get install -y " + JoinNames(missing, " "));
    }
  }

  std::string previous;
  if (fs::path link = fs::read_symlink(name_dir + "/" + kCurrent, ec); !ec) {
    previous = link.string();
  }
  Prune(name_dir, {previous});  // a crash's leftovers (and builds older than the current one)
  std::string id = UniqueId(recipe.hash);
  std::string tmp = name_dir + "/.tmp-" + id;
  if (mkdir(tmp.c_str(), 0755) < 0) return ErrnoError("mkdir " + tmp, errno);
  auto built = BuildInto(tmp, recipe, installed.value_or(std::map<std::string, std::string>{}));
  if (!built) {
    fs::remove_all(tmp, ec);
    return built;
  }
  std::string build = "build-" + id;
  if (rename(tmp.c_str(), (name_dir + "/" + build).c_str()) < 0) {
    int e = errno;
    fs::remove_all(tmp, ec);
    return ErrnoError("rename " + tmp, e);
  }
  MT_RETURN_IF_ERROR(SwitchCurrent(name_dir, build));
  Prune(name_dir, {build, previous});
  built->rootfs = name_dir + "/" + build + "/rootfs";
  return built;
}

Result<std::vector<BaseInfo>> ListBases(const std::string& bases_dir) {
  std::vector<BaseInfo> out;
  std::string root = Absolute(bases_dir);
  std::error_code ec;
  if (!fs::exists(root, ec)) return out;
  fs::directory_iterator it(root, ec);
  if (ec) return Internal("reading " + root + ": " + ec.message());
  for (const auto& e : it) {
    if (!e.is_directory(ec)) continue;
    if (auto b = ReadCurrent(e.path().string())) out.push_back(b->info);
  }
  std::sort(out.begin(), out.end(),
            [](const BaseInfo& a, const BaseInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace mentat
