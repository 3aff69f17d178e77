#include "runtimes/cgroups/cgroup_fs.h"

#include <filesystem>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <sstream>
#include <thread>

namespace mentat::cgroupfs {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Result<std::string> Read(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound(path + " does not exist");
    return ErrnoError("reading " + path, e);
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return ErrnoError("reading " + path, e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status Write(const std::string& path, const std::string& value) {
  // O_TRUNC only matters for plain files (simulated trees); cgroupfs accepts and ignores it.
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound(path + " does not exist");
    return ErrnoError("writing " + value + " to " + path, e);
  }
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  int e = errno;
  ::close(fd);
  if (n < 0) return ErrnoError("writing " + value + " to " + path, e);
  return {};
}

Result<std::optional<uint64_t>> ReadUint(const std::string& path) {
  MT_ASSIGN_OR_RETURN(std::string s, Read(path));
  std::istringstream in(s);
  std::string word;
  in >> word;
  if (word == "max") return std::optional<uint64_t>();
  try {
    size_t used = 0;
    uint64_t v = std::stoull(word, &used);
    if (used == word.size()) return std::optional<uint64_t>(v);
  } catch (...) {
  }
  return Internal(path + ": expected a number, read \"" + s + "\"");
}

Result<uint64_t> ReadKey(const std::string& path, const std::string& key) {
  MT_ASSIGN_OR_RETURN(std::string s, Read(path));
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string k;
    uint64_t v = 0;
    if (fields >> k >> v && k == key) return v;
  }
  return NotFound(path + " has no " + key);
}

Status ReadPidCounts(const std::optional<std::string>& pids_dir,
                     const std::function<Result<std::vector<pid_t>>()>& members, uint64_t* count,
                     uint64_t* limit_hits) {
  if (!pids_dir) {
    MT_ASSIGN_OR_RETURN(auto pids, members());
    *count = pids.size();
    return {};
  }
  MT_ASSIGN_OR_RETURN(auto n, ReadUint(*pids_dir + "/pids.current"));
  *count = n.value_or(0);
  *limit_hits = ReadKey(*pids_dir + "/pids.events", "max").value_or(0);
  return {};
}

Result<std::vector<pid_t>> ReadPids(const std::string& procs_path) {
  MT_ASSIGN_OR_RETURN(std::string s, Read(procs_path));
  std::vector<pid_t> pids;
  std::istringstream in(s);
  pid_t p;
  while (in >> p) pids.push_back(p);
  return pids;
}

Status MakeDirs(const std::string& root, const std::string& rel, std::vector<std::string>* made) {
  std::string dir = root;
  std::istringstream parts(rel);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    dir += "/" + part;
    if (::mkdir(dir.c_str(), 0755) == 0) {
      made->push_back(dir);
    } else if (errno != EEXIST) {
      return ErrnoError("creating " + dir, errno);
    }
  }
  return {};
}

Status RemoveDir(const std::string& dir) {
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
  int e = errno;
  if (e == EBUSY || e == ENOTEMPTY) {
    return MakeError(Code::kFailedPrecondition, "removing " + dir + ": it still has members");
  }
  return ErrnoError("removing " + dir, e);
}

Result<std::vector<int>> OpenForWriting(const std::vector<std::string>& paths) {
  std::vector<int> fds;
  for (const auto& f : paths) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      for (int x : fds) ::close(x);
      return ErrnoError("opening " + f, e);
    }
    fds.push_back(fd);
  }
  return fds;
}

Status Writable(const std::string& dir) {
  if (!Exists(dir)) return FailedPrecondition(dir + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0) return FailedPrecondition(dir + " is not writable");
  return {};
}

Status KillUntilEmpty(const std::function<Result<std::vector<pid_t>>()>& members,
                      std::chrono::milliseconds deadline, const std::string& what) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    MT_ASSIGN_OR_RETURN(auto pids, members());
    if (pids.empty()) return {};
    if (std::chrono::steady_clock::now() >= end) {
      return Unavailable(what + ": " + std::to_string(pids.size()) +
                         " member(s) survived SIGKILL, e.g. pid " + std::to_string(pids[0]));
    }
    for (pid_t p : pids) ::kill(p, SIGKILL);
    // SIGKILLed processes leave the group once they have exited; re-read shortly.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Status CheckVacant(const std::string& path, const Result<std::vector<pid_t>>& members) {
  if (!members) return std::unexpected(members.error());
  if (members->empty()) return {};
  return MakeError(Code::kAlreadyExists, "cgroup " + path + " already exists and has " +
                                             std::to_string(members->size()) + " member(s)");
}

Status CheckGroupPath(const std::string& rel) {
  if (rel.empty() || rel.front() == '/') {
    return InvalidArgument("cgroup path \"" + rel + "\" must be relative and not empty");
  }
  std::istringstream parts(rel);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part == ".." || part == ".") {
      return InvalidArgument("cgroup path \"" + rel + "\" must not contain . or ..");
    }
  }
  return {};
}

void ListChildDirs(const std::string& dir, const std::string& parent, std::map<std::string, int64_t>& out) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_directory(ec)) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) continue;
    std::string rel = parent + "/" + e.path().filename().string();
    out[rel] = std::max<int64_t>(out[rel], st.st_mtime);
  }
}

}  // namespace mentat::cgroupfs
