#include "runtimes/exec/exec_driver.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtimes/exec/exec_session.h"
#include "runtimes/registry.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat {

// The spec's resolved security profile (the agent attaches it) says run_as_non_root: true.
static bool RequiresNonRoot(const Json& spec) {
  if (!spec.is_object() || !spec.contains("security") || !spec["security"].is_object()) return false;
  const Json& resolved = spec["security"].value("resolved", Json::object());
  return resolved.is_object() && resolved.value("run_as_non_root", Json(false)) == true;
}

Result<TaskUser> ResolveTaskUser(const std::string& spec) {
  TaskUser u;
  std::string user = spec.substr(0, spec.find(':'));
  std::string group = spec.find(':') == std::string::npos ? "" : spec.substr(spec.find(':') + 1);
  auto numeric = [](const std::string& v) {
    return !v.empty() && v.size() <= 10 && v.find_first_not_of("0123456789") == std::string::npos;
  };
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (numeric(user)) {
    u.uid = static_cast<uid_t>(std::stoul(user));
    ::getpwuid_r(u.uid, &pw, buf.data(), buf.size(), &found);
    u.gid = found ? found->pw_gid : static_cast<gid_t>(u.uid);
  } else {
    ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (!found) return InvalidArgument("user: there is no user \"" + user + "\" on this node");
    u.uid = found->pw_uid;
    u.gid = found->pw_gid;
  }
  std::string name = found ? found->pw_name : "";
  if (!group.empty()) {
    if (numeric(group)) {
      u.gid = static_cast<gid_t>(std::stoul(group));
    } else {
      struct group gr {};
      struct group* g = nullptr;
      std::vector<char> gbuf(16384);
      ::getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &g);
      if (!g) return InvalidArgument("user: there is no group \"" + group + "\" on this node");
      u.gid = g->gr_gid;
    }
  }
  // Supplementary groups: the user's own, as login would give them.
  u.groups = {u.gid};
  if (!name.empty()) {
    int n = 64;
    std::vector<gid_t> groups(n);
    if (::getgrouplist(name.c_str(), u.gid, groups.data(), &n) < 0) {
      groups.resize(n);
      ::getgrouplist(name.c_str(), u.gid, groups.data(), &n);
    }
    groups.resize(std::max(n, 0));
    u.groups = groups;
  }
  return u;
}

Result<ProcessSupervisor::Spawned> SpawnHostProcess(const TaskConfig& config,
                                                    const ProcessSupervisor::SpawnIO& io,
                                                    const std::string& prefix) {
  if (!config.cwd.empty()) {
    struct stat st;
    if (::stat(config.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return InvalidArgument(prefix + "cwd " + config.cwd + " is not a directory on this node");
    }
  }
  // Everything the child needs is built before fork: the user too (getpwnam is not
  // async-signal-safe).
  std::optional<TaskUser> user;
  if (config.spec.is_object() && config.spec.contains("user") && config.spec["user"].is_string()) {
    MT_ASSIGN_OR_RETURN(user, ResolveTaskUser(config.spec["user"].get<std::string>()));
  }
  // Admission refused root by name; a name that is uid 0 on this node is refused here.
  if (RequiresNonRoot(config.spec) && (!user || user->uid == 0)) {
    return InvalidArgument(prefix + "user: its security profile runs tasks as a non-root user, and " +
                           (user ? config.spec["user"].get<std::string>() + " is uid 0 on this node"
                                 : std::string("none is given")));
  }
  std::string path_env;
  for (const auto& e : config.env) {
    if (e.name == "PATH") path_env = e.value;
  }
  std::string path = ResolveOnPath(config.command, path_env);
  ChildArgv argv(Concat({config.command}, config.args));
  ChildArgv envp(EnvStrings(config.env));
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) return ErrnoError(prefix + "pipe2", errno);
  const char* cwd = config.cwd.empty() ? nullptr : config.cwd.c_str();
  const std::vector<int>& join_fds = *io.join_fds;
  const int out_fd = io.out_fd, err_fd = io.err_fd, null_fd = io.null_fd;

  pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    // First the cgroup: whatever the workload forks from here on is inside it. A failure is
    // reported as a negative errno, apart from exec's own.
    if (int e = JoinCgroupInChild(join_fds); e != 0) {
      int neg = -e;
      ssize_t w = ::write(errpipe[1], &neg, sizeof(neg));
      (void)w;
      _exit(127);
    }
    ::setsid();  // own session and process group: signals reach the whole group
    ResetSignalsInChild();
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // Nothing of the agent (listening sockets, the store) may leak into the workload.
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    int err = 0;
    // Groups and gid before uid: after setuid there is no right left to change them. Then the
    // directory, entered as that user.
    if (user && (::setgroups(user->groups.size(), user->groups.data()) != 0 ||
                 ::setgid(user->gid) != 0 || ::setuid(user->uid) != 0)) {
      err = errno;
    } else if (cwd && ::chdir(cwd) != 0) {
      err = errno;
    } else {
      ::execve(path.c_str(), argv.data(), envp.data());
      err = errno;
    }
    ssize_t w = ::write(errpipe[1], &err, sizeof(err));
    (void)w;
    _exit(127);
  }
  int fork_errno = errno;
  ::close(errpipe[1]);
  if (pid < 0) {
    ::close(errpipe[0]);
    return ErrnoError(prefix + "fork", fork_errno);
  }
  if (int child_err = ChildExecError(errpipe[0], pid); child_err != 0) {
    if (child_err < 0) return Internal(prefix + "joining the task's cgroup: " + std::strerror(-child_err));
    return MakeError(child_err == ENOENT ? Code::kInvalidArgument : Code::kInternal,
                     prefix + "cannot run " + config.command +
                         (cwd ? " in " + config.cwd : std::string()) + ": " +
                         std::strerror(child_err));
  }
  return ProcessSupervisor::Spawned{pid, Json::object()};
}

Result<std::unique_ptr<ExecDriver>> ExecDriver::Create(ExecDriverOptions options) {
  std::unique_ptr<ExecDriver> d(new ExecDriver());
  MT_ASSIGN_OR_RETURN(d->supervisor_, ProcessSupervisor::Create(d->Name(), std::move(options)));
  return d;
}

Result<TaskHandle> ExecDriver::Start(const TaskConfig& config) {
  return supervisor_->Start(config, [&](const ProcessSupervisor::SpawnIO& io) {
    return SpawnHostProcess(config, io, Name() + ": ");
  });
}

Json ExecDriver::Capabilities() const {
  return {{"exec", true}, {"signal", true}, {"recover", true}, {"isolation", "none"},
          {"limits", Json::array({"memory", "cpu", "pids"})}};
}

MENTAT_REGISTER_DRIVER(exec, {
  .name = "exec",
  .root = WorkloadRoot::kHost,
  .make = [](const DriverContext& context) -> Result<DriverPtr> {
    ExecDriverOptions options;
    // resources.cpu_mhz becomes a share of one core at this host's clock.
    options.core_mhz = context.core_mhz;
    return CreateDriver<ExecDriver>(std::move(options));
  },
  .probe = [](const DriverContext&) -> Status { return {}; },
});

}  // namespace mentat
