// ProcessSupervisor after the start: exits (the reaper thread), signals, stop, destroy, exec
// sessions, stats.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "runtimes/exec/supervisor.h"

namespace mentat {
namespace {

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// How a pinned process ended: reaped when it is our own child. nullopt: it still runs.
std::optional<ExitResult> ReapExit(int pidfd) {
  ExitResult result;
  siginfo_t info{};
  // Our own child: reap it and learn how it ended. A recovered task is not our child (ECHILD):
  // the kernel keeps its status for its real parent, so the code is unknown.
  errno = 0;
  int rc = waitid(static_cast<idtype_t>(3) /*P_PIDFD*/, pidfd, &info, WEXITED | WNOHANG);
  if (rc == 0 && info.si_pid == 0) return std::nullopt;  // our child, still running
  if (rc == 0) {
    if (info.si_code == CLD_EXITED) {
      result.exit_code = info.si_status;
    } else {
      result.signal = info.si_status;
    }
  } else {
    result.message = "exit status unknown: the task was recovered after an agent restart";
  }
  return result;
}

}  // namespace

void ProcessSupervisor::ReaperLoop() {
  epoll_event events[64];
  while (true) {
    int n = epoll_wait(epfd_, events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_fd_) continue;
      OnPidfdReadable(events[i].data.fd);
    }
  }
}

void ProcessSupervisor::AccountExit(Cgroup& group, std::optional<int64_t> memory_limit,
                                    ExitResult& result) {
  // The leader is gone: what it left running goes with it, as a container's processes go
  // with its init. Then the group's OOM counter says whether the kernel killed anything.
  if (auto st = group.KillAll(); !st) spdlog::warn("{}: {}", driver_, st.error().message());
  auto kills = group.OomKills();
  if (kills && *kills > 0) {
    result.oom_killed = true;
    result.message = "OOM-killed: exceeded its " +
                     (memory_limit ? std::to_string(*memory_limit >> 20) + " MiB " : "") +
                     "memory limit (" + result.message + ")";
  } else if (!kills) {
    spdlog::warn("{}: reading OOM kills of {}: {}", driver_, group.path(), kills.error().message());
  }
  if (auto stats = group.Stats(); stats && stats->pids_limit_hits > 0) {
    result.pids_limit_hits = stats->pids_limit_hits;
    result.message += "; its pids limit refused " + std::to_string(stats->pids_limit_hits) +
                      " fork(s)";
  }
}

void ProcessSupervisor::OnPidfdReadable(int pidfd) {
  std::optional<ExitResult> reaped = ReapExit(pidfd);
  if (!reaped) return;  // spurious wake-up
  ExitResult& result = *reaped;
  Json state;  // the handle's state
  std::shared_ptr<Cgroup> group;
  std::optional<int64_t> memory_limit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd != pidfd) continue;
      state = t.state;
      group = t.cgroup;
      memory_limit = t.memory_limit_bytes;
      break;
    }
  }
  std::string refined;  // what the driver's refine_exit adds to the message
  if (policy_.refine_exit) {
    std::string before = result.message;
    policy_.refine_exit(state, result);
    if (result.message != before) refined = result.message;
  }
  if (result.exit_code) {
    result.message = "exited with code " + std::to_string(*result.exit_code);
  } else if (result.signal) {
    result.message = std::string("killed by signal ") + strsignal(*result.signal);
  }
  if (!refined.empty()) result.message += ": " + refined;
  if (group) AccountExit(*group, memory_limit, result);
  // The exit is reported once the log relay has written the task's last words (as containerd's
  // shim waits for its IO): it exits when the pipes' writers are all gone, which the group's
  // kill above made sure of. A daemon outside any cgroup may hold them: not for long then.
  AwaitLogRelay(state, std::chrono::seconds(1));
  std::string id;
  Driver::ExitHandler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd == pidfd) {
        id = tid;
        epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);
        ::close(pidfd);
        t.pidfd = -1;
        t.exit = result;
        break;
      }
    }
    handler = on_exit_;
  }
  exited_cv_.notify_all();
  if (!id.empty() && handler) handler(id, result);
}

Result<std::optional<ExitResult>> ProcessSupervisor::Wait(const std::string& id,
                                                          std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  exited_cv_.wait_for(lock, timeout, [&] {
    auto t = tasks_.find(id);
    return t == tasks_.end() || t->second.exit.has_value();
  });
  auto t = tasks_.find(id);
  if (t == tasks_.end()) return NotFound(P() + "task " + id + " was destroyed");
  return t->second.exit;
}

Status ProcessSupervisor::Signal(const std::string& id, int sig) {
  int pid = 0;
  uint64_t ticks = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return NotFound(P() + "no task " + id);
    if (it->second.exit) return FailedPrecondition(P() + "task " + id + " has exited");
    if (policy_.signal == SupervisorPolicy::SignalTarget::kProcessGroup) {
      // The pidfd pins the identity of the leader; the group shares its pid as pgid.
      if (PidfdSendSignal(it->second.pidfd, 0) != 0) return NotFound(P() + "task " + id + " is gone");
      if (::kill(-it->second.pid, sig) != 0 && PidfdSendSignal(it->second.pidfd, sig) != 0) {
        return ErrnoError(P() + "signalling " + id, errno);
      }
      return {};
    }
    pid = it->second.pid;
    ticks = it->second.start_ticks;
  }
  // To the first process alone, through a pidfd of its own (the task's may close meanwhile);
  // the start time says it is still ours.
  int pidfd = PidfdOpen(pid);
  if (pidfd < 0) return NotFound(P() + "task " + id + " is gone");
  int rc = -1, err = ESRCH;
  if (ProcessStartTicks(pid) == std::optional<uint64_t>(ticks)) {
    rc = PidfdSendSignal(pidfd, sig);
    err = errno;
  }
  ::close(pidfd);
  if (rc != 0) return ErrnoError(P() + "signalling " + id, err);
  return {};
}

Status ProcessSupervisor::Stop(const std::string& id, std::chrono::milliseconds grace, int sig) {
  auto st = Signal(id, sig);
  if (!st && st.error().code() != Code::kFailedPrecondition) return st;
  if (st) MT_RETURN_IF_ERROR(Wait(id, grace));
  // Whatever is left, the leader or what it left behind (even daemons that escaped its process
  // group and session), is killed.
  MT_RETURN_IF_ERROR(KillTree(id));
  MT_ASSIGN_OR_RETURN(auto killed, Wait(id, std::chrono::seconds(5)));
  if (!killed) {
    return Internal(P() + "task " + id + " (pid " +
                    std::to_string(Inspect(id).value_or(TaskStatus{}).pid) + ") survived SIGKILL");
  }
  return {};
}

Status ProcessSupervisor::KillTree(const std::string& id) {
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    Task& t = it->second;
    group = t.cgroup;
    if (!t.exit) {
      // The pidfd pins the leader while it runs, and with it its process group's id.
      ::kill(-t.pid, SIGKILL);
      if (t.pidfd >= 0) PidfdSendSignal(t.pidfd, SIGKILL);
    } else if (!group) {
      // No cgroup to go by: stragglers of its process group, as well as can be done.
      ::kill(-t.pid, SIGKILL);
    }
  }
  if (group) return group->KillAll();
  return {};
}

Status ProcessSupervisor::Destroy(const std::string& id, bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    if (!it->second.exit && !force) {
      return FailedPrecondition(P() + "task " + id + " is still running");
    }
  }
  if (force) MT_RETURN_IF_ERROR(Stop(id, std::chrono::milliseconds(0), SIGKILL));
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    group = it->second.cgroup;
  }
  if (group) {
    // Kept track of until its group is gone, so that a failed removal is retried.
    MT_RETURN_IF_ERROR(group->KillAll());
    if (auto st = group->Destroy(); !st) {
      return MakeError(Code::kUnavailable, P() + "task " + id + ": " + st.error().message());
    }
  }
  {
    Json state = PreviousState(id);
    // Every writer of its pipes was in the group: the relay drains them and exits.
    StopLogRelay(state, std::chrono::seconds(2));
    if (policy_.release_task) MT_RETURN_IF_ERROR(policy_.release_task(id, state));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it != tasks_.end()) {
    if (it->second.pidfd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
      ::close(it->second.pidfd);
    }
    tasks_.erase(it);
  }
  return {};
}

Result<ExecSessionPtr> ProcessSupervisor::Exec(const std::string& id, const ExecOptions& options,
                                               ExecCallbacks callbacks,
                                               const ExecPrepare& prepare) {
  auto not_running = [&] { return NotFound(P() + "task " + id + " is not running"); };
  int pid = 0;
  uint64_t ticks = 0;
  Json state;
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.exit || it->second.pidfd < 0) return not_running();
    pid = it->second.pid;
    ticks = it->second.start_ticks;
    state = it->second.state;
    group = it->second.cgroup;
  }
  // A pidfd of the session's own pins the process while the command joins it.
  const int pidfd = PidfdOpen(pid);
  if (pidfd < 0) return not_running();
  // The task's context is read from the live process, so a recovered task (whose TaskConfig
  // is gone with the old agent) gets the same environment, directory and user as a fresh one.
  // The start time is checked after the read: a pid recycled meanwhile is not mistaken for it.
  auto context = ReadProcessContext(pid);
  if (!context || !Running(id) || ProcessStartTicks(pid) != std::optional<uint64_t>(ticks)) {
    ::close(pidfd);
    return not_running();
  }
  std::function<int()> enter;
  if (prepare) {
    auto prepared = prepare(ExecTarget{pid, pidfd, &state}, *context);
    if (!prepared) {
      ::close(pidfd);
      return std::unexpected(prepared.error());
    }
    enter = std::move(*prepared);
  }
  // The command joins the task's cgroup: its limits, its usage, and its fate on Stop.
  std::vector<int> join_fds;
  if (group) {
    auto fds = group->OpenProcsFiles();
    if (!fds) {
      ::close(pidfd);
      return std::unexpected(fds.error());
    }
    join_fds = std::move(*fds);
  }
  auto session = StartExecSession(*context, options, std::move(callbacks), join_fds, enter);
  for (int fd : join_fds) ::close(fd);
  ::close(pidfd);
  return session;
}

Result<TaskStats> ProcessSupervisor::Stats(const std::string& id) {
  std::shared_ptr<Cgroup> group;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return NotFound(P() + "no task " + id);
    group = it->second.cgroup;
  }
  if (!group) {
    return FailedPrecondition(P() + "task " + id + " runs without a cgroup" +
                              (cgroups_unusable_.empty() ? "" : ": " + cgroups_unusable_));
  }
  MT_ASSIGN_OR_RETURN(CgroupStats cs, group->Stats());
  return TaskStats{cs.memory_bytes, cs.memory_peak_bytes, cs.cpu_usage_ns, cs.pids,
                   cs.pids_limit_hits};
}

Result<TaskStatus> ProcessSupervisor::Inspect(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound(P() + "no task " + id);
  TaskStatus s;
  s.pid = it->second.pid;
  s.started_at = it->second.started_at;
  s.state = it->second.exit ? TaskState::kExited : TaskState::kRunning;
  s.exit = it->second.exit;
  return s;
}

}  // namespace mentat
