#include "runtimes/hull/state.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtimes/cgroups/cgroups.h"
#include "runtimes/hull/leases.h"
#include "runtimes/hull/seccomp_audit.h"

namespace mentat::hull {
namespace fs = std::filesystem;

std::string ResolveStateDir() {
  if (const char* d = std::getenv("HULL_STATE_DIR"); d && *d) return d;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.hull/state";
  return "/var/lib/hull/state";
}

std::string StateDir::CgroupPath(const std::string& name) const {
  struct stat st {};
  if (::stat(root_.c_str(), &st) != 0) return "hull/" + name;  // Run made the directory: not reached
  std::ostringstream path;
  path << "hull/" << name << "-" << std::hex << st.st_ino;
  return path.str();
}

Json ExitInfo::ToJson() const {
  Json j = Json::object();
  if (exit_code) j["exit_code"] = *exit_code;
  if (signal) {
    j["signal"] = *signal;
    j["signal_name"] = std::string("SIG") + (sigabbrev_np(*signal) ? sigabbrev_np(*signal) : "?");
  }
  if (!exec_error.empty()) j["exec_error"] = exec_error;
  if (!note.empty()) j["note"] = note;
  if (seccomp_syscall) {
    j["seccomp"] = {{"syscall", *seccomp_syscall},
                    {"name", seccomp_syscall_name},
                    {"pid", seccomp_pid},
                    {"comm", seccomp_comm}};
  }
  return j;
}

ExitInfo ExitInfo::FromJson(const Json& j) {
  ExitInfo e;
  if (!j.is_object()) return e;
  if (j.contains("exit_code") && j["exit_code"].is_number_integer()) e.exit_code = j["exit_code"].get<int>();
  if (j.contains("signal") && j["signal"].is_number_integer()) e.signal = j["signal"].get<int>();
  e.exec_error = j.value("exec_error", "");
  e.note = j.value("note", "");
  if (j.contains("seccomp") && j["seccomp"].is_object()) {
    const Json& s = j["seccomp"];
    e.seccomp_syscall = s.value("syscall", -1);
    e.seccomp_syscall_name = s.value("name", "");
    e.seccomp_pid = s.value("pid", 0);
    e.seccomp_comm = s.value("comm", "");
  }
  return e;
}

std::string ExitInfo::Describe() const {
  std::string out;
  if (signal) {
    out = std::string("killed by SIG") + (sigabbrev_np(*signal) ? sigabbrev_np(*signal) : "?");
  } else if (exit_code) {
    out = "exited " + std::to_string(*exit_code);
  } else {
    out = "exited";
  }
  if (!exec_error.empty()) out += " (exec failed: " + exec_error + ")";
  if (!note.empty()) out += " (" + note + ")";
  if (seccomp_syscall) {
    out += "; seccomp killed " + seccomp_comm + " (pid " + std::to_string(seccomp_pid) +
           ") on syscall " + std::to_string(*seccomp_syscall) + " (" +
           (seccomp_syscall_name.empty() ? "unknown" : seccomp_syscall_name) + ")";
  }
  return out;
}

Json ContainerState::ToJson() const {
  Json j = {{"name", name},
            {"status", status},
            {"pid", pid},
            {"start_ticks", start_ticks},
            {"started_at", started_at},
            {"workload_pid", workload_pid},
            {"audit_session", audit_session},
            {"cgroup", cgroup},
            {"cgroup_version", cgroup_version},
            {"root", root},
            {"upper", upper},
            {"work", work},
            {"manifest", manifest.ToJson()}};
  if (!ip.empty()) j["ip"] = ip;
  if (!host_veth.empty()) j["host_veth"] = host_veth;
  if (!lease_dir.empty()) j["lease_dir"] = lease_dir;
  if (rootless_uid >= 0) j["rootless"] = {{"uid", rootless_uid}, {"gid", rootless_gid}};
  if (!warnings.empty()) j["warnings"] = warnings;
  if (finished_at) j["finished_at"] = finished_at;
  if (exit) j["exit"] = exit->ToJson();
  return j;
}

Result<ContainerState> ContainerState::FromJson(const Json& j) {
  if (!j.is_object()) return Internal("state.json is not an object");
  ContainerState s;
  try {
    s.name = j.at("name").get<std::string>();
    s.status = j.at("status").get<std::string>();
    s.pid = j.at("pid").get<pid_t>();
    s.start_ticks = j.at("start_ticks").get<uint64_t>();
    s.started_at = j.at("started_at").get<int64_t>();
    s.finished_at = j.value("finished_at", int64_t{0});
    s.workload_pid = j.value("workload_pid", 0);
    s.audit_session = j.value("audit_session", int64_t{0});
    s.cgroup = j.value("cgroup", "");
    s.cgroup_version = j.value("cgroup_version", "");
    s.root = j.value("root", "");
    s.upper = j.value("upper", "");
    s.work = j.value("work", "");
    s.ip = j.value("ip", "");
    s.host_veth = j.value("host_veth", "");
    s.lease_dir = j.value("lease_dir", "");
    if (j.contains("rootless")) {
      s.rootless_uid = j["rootless"].value("uid", int64_t{-1});
      s.rootless_gid = j["rootless"].value("gid", int64_t{-1});
    }
    s.warnings = j.value("warnings", std::vector<std::string>{});
  } catch (const std::exception& e) {
    return Internal(std::string("state.json: ") + e.what());
  }
  auto m = HullManifest::FromJson(j.value("manifest", Json::object()));
  if (!m) return Internal("state.json: manifest: " + m.error().ToString());
  s.manifest = std::move(*m);
  if (j.contains("exit")) s.exit = ExitInfo::FromJson(j["exit"]);
  return s;
}

Status StateDir::Ensure() const {
  for (const char* sub : {"/containers", "/rootfs-cache"}) {
    std::error_code ec;
    fs::create_directories(root_ + sub, ec);
    if (ec) return Internal("state directory " + root_ + sub + ": " + ec.message());
  }
  return {};
}

Result<ContainerState> StateDir::Load(const std::string& name) const {
  std::ifstream f(StatePath(name));
  if (!f) return NotFound("no container named " + name + " (in " + root_ + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Internal(StatePath(name) + " is not valid JSON");
  return ContainerState::FromJson(j);
}

Status StateDir::Save(const ContainerState& state) const {
  const std::string path = StatePath(state.name);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("writing " + tmp, errno);
  std::string text = state.ToJson().dump(2) + "\n";
  // No fsync, as runc does not fsync its state.json either: the file describes processes, and
  // a crash of the machine, the only thing an fsync guards against, takes them all with it. A
  // crash of hull itself leaves the page cache, and so the renamed file, intact. A file cut
  // short by a power loss reads as "not valid JSON": `hull ps` says so and skips it, and
  // `hull run` of that name replaces it.
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  ::close(fd);
  if (!ok) return ErrnoError("writing " + tmp, err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("renaming " + tmp, errno);
  return {};
}

Result<std::vector<std::string>> StateDir::List() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ + "/containers", ec)) {
    if (fs::exists(e.path() / "state.json")) names.push_back(e.path().filename().string());
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Internal("listing " + root_ + "/containers: " + ec.message());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<ContainerLock> ContainerLock::Acquire(const StateDir& dir, const std::string& name, bool wait) {
  std::error_code ec;
  fs::create_directories(dir.ContainerDir(name), ec);
  if (ec) return Internal("creating " + dir.ContainerDir(name) + ": " + ec.message());
  const std::string path = dir.ContainerDir(name) + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("opening " + path, errno);
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return Conflict("another hull is starting or changing container " + name);
    return ErrnoError("locking " + path, err);
  }
  return ContainerLock(fd);
}

ContainerLock::~ContainerLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  // comm may hold spaces and parentheses: fields start after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  ProcStat st;
  rest >> st.state;
  std::string field;
  // Fields 4..21, then starttime (22).
  for (int i = 4; i <= 21 && rest >> field; ++i) {
  }
  if (!(rest >> st.start_ticks)) return std::nullopt;
  return st;
}

bool InitAlive(const ContainerState& s) {
  if (s.pid <= 0) return false;
  auto st = ReadProcStat(s.pid);
  return st && st->start_ticks == s.start_ticks && st->state != 'Z' && st->state != 'X';
}

namespace {

std::optional<ExitInfo> ReadInitStatus(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line) || line.empty()) return std::nullopt;
  Json j = Json::parse(line, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return ExitInfo::FromJson(j);
}

}  // namespace

Status Refresh(const StateDir& dir, ContainerState& s, const ExitInfo* hint, bool locked) {
  if (s.status != "running") return {};
  if (InitAlive(s)) return {};
  std::optional<ContainerLock> lock;
  if (!locked) {
    MT_ASSIGN_OR_RETURN(auto l, ContainerLock::Acquire(dir, s.name, true));
    lock.emplace(std::move(l));
  }
  // Another hull may have recorded the exit meanwhile.
  MT_ASSIGN_OR_RETURN(ContainerState fresh, dir.Load(s.name));
  if (fresh.status != "running" || fresh.pid != s.pid || fresh.start_ticks != s.start_ticks) {
    s = std::move(fresh);
    return {};
  }
  ExitInfo info;
  if (auto st = ReadInitStatus(dir.ExitStatusPath(s.name))) {
    info = *st;
  } else if (hint) {
    info = *hint;
  } else {
    info.note = "PID 1 is gone and left no status";
  }
  // A process killed by the profile: its syscall, from the kernel's audit record. Any process
  // of the container counts (a shell's child as much as the shell). A PID 1 that died of SIGSYS
  // has a record on its way: wait for it.
  auto wait = info.signal == SIGSYS ? std::chrono::milliseconds(2000) : std::chrono::milliseconds(0);
  if (auto kill = AwaitSeccompKill(s.audit_session, s.workload_pid, wait)) {
    info.seccomp_syscall = kill->syscall;
    info.seccomp_syscall_name = kill->name;
    info.seccomp_pid = kill->pid;
    info.seccomp_comm = kill->comm;
  }
  s.status = "exited";
  s.exit = info;
  s.finished_at = static_cast<int64_t>(std::time(nullptr));
  // The cgroup goes with the container: PID 1's death killed the namespace; catch stragglers.
  if (!s.cgroup.empty()) {
    auto host = CgroupHost::Probe();
    if (auto g = host->Open(s.cgroup)) {
      (*g)->KillAll();
      (*g)->Destroy();
    }
  }
  ReleaseNetwork(dir, s);
  return dir.Save(s);
}

}  // namespace mentat::hull
