#include "runtimes/exec/exec_driver.h"

#include "runtimes/exec/exec_session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace mentat {
namespace {

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace

std::optional<uint64_t> ProcessStartTicks(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return std::nullopt;
  // comm (field 2) may hold spaces and parens: fields resume after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  // Field 3 is the first after ')'; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  // A zombie has exited: it is not a running task.
  std::string state = stat.substr(close + 2, 1);
  if (state == "Z" || state == "X") return std::nullopt;
  return std::stoull(field);
}

Result<std::unique_ptr<ExecDriver>> ExecDriver::Create() {
  std::unique_ptr<ExecDriver> d(new ExecDriver());
  d->epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (d->epfd_ < 0) return ErrnoError("epoll_create1", errno);
  d->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (d->wake_fd_ < 0) return ErrnoError("eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d->wake_fd_;
  epoll_ctl(d->epfd_, EPOLL_CTL_ADD, d->wake_fd_, &ev);
  d->reaper_ = std::thread([p = d.get()] { p->ReaperLoop(); });
  return d;
}

ExecDriver::~ExecDriver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) < 0) {
  }
  if (reaper_.joinable()) reaper_.join();
  // Tasks keep running: the driver going away (agent restart) must not stop workloads.
  for (auto& [id, t] : tasks_) {
    if (t.pidfd >= 0) ::close(t.pidfd);
  }
  ::close(wake_fd_);
  ::close(epfd_);
}

void ExecDriver::SetExitHandler(ExitHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  on_exit_ = std::move(handler);
}

Json ExecDriver::Fingerprint() {
  return {{"healthy", true}, {"detail", "host processes"}};
}

Result<TaskHandle> ExecDriver::Start(const TaskConfig& config) {
  if (config.command.empty()) return InvalidArgument("exec: command is required");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(config.id);
    if (it != tasks_.end() && !it->second.exit) {
      return MakeError(Code::kAlreadyExists, "exec: task " + config.id + " is already running");
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(config.task_dir, ec);
  if (ec) return Internal("exec: creating " + config.task_dir + ": " + ec.message());
  if (!config.cwd.empty()) {
    struct stat st;
    if (::stat(config.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return InvalidArgument("exec: cwd " + config.cwd + " is not a directory on this node");
    }
  }

  // Everything the child needs is built before fork.
  std::string path_env;
  for (const auto& e : config.env) {
    if (e.name == "PATH") path_env = e.value;
  }
  std::string path = ResolveOnPath(config.command, path_env);
  std::vector<std::string> argv_s = {config.command};
  argv_s.insert(argv_s.end(), config.args.begin(), config.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  bool has_path = false;
  for (const auto& e : config.env) {
    env_s.push_back(e.name + "=" + e.value);
    has_path |= e.name == "PATH";
  }
  if (!has_path) env_s.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string out_path = config.task_dir + "/stdout.log";
  std::string err_path = config.task_dir + "/stderr.log";
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (out_fd < 0) return ErrnoError("exec: opening " + out_path, errno);
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (err_fd < 0) {
    ::close(out_fd);
    return ErrnoError("exec: opening " + err_path, errno);
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    ::close(out_fd);
    ::close(err_fd);
    ::close(null_fd);
    return ErrnoError("exec: pipe2", errno);
  }
  const char* cwd = config.cwd.empty() ? nullptr : config.cwd.c_str();

  pid_t pid = ::fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setsid();  // own session and process group: Stop kills the whole group
    ResetSignalsInChild();
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // Nothing of the agent (listening sockets, the store) may leak into the workload.
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    int err = 0;
    if (cwd && ::chdir(cwd) != 0) {
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
  ::close(out_fd);
  ::close(err_fd);
  ::close(null_fd);
  if (pid < 0) {
    ::close(errpipe[0]);
    return ErrnoError("exec: fork", fork_errno);
  }
  if (int child_err = ChildExecError(errpipe[0], pid); child_err != 0) {
    return MakeError(child_err == ENOENT ? Code::kInvalidArgument : Code::kInternal,
                     "exec: cannot run " + config.command +
                         (cwd ? " in " + config.cwd : std::string()) + ": " +
                         std::strerror(child_err));
  }

  Task task;
  task.pid = pid;
  task.start_ticks = ProcessStartTicks(pid).value_or(0);
  task.started_at = NowRfc3339();
  task.pidfd = PidfdOpen(pid);
  if (task.pidfd < 0) {
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return ErrnoError("exec: pidfd_open", e);
  }
  TaskHandle handle;
  handle.driver = "exec";
  handle.id = config.id;
  handle.state = {{"pid", pid},
                  {"startTicks", task.start_ticks},
                  {"startedAt", task.started_at},
                  {"taskDir", config.task_dir}};
  MT_RETURN_IF_ERROR(Track(config.id, std::move(task)));
  spdlog::debug("exec: started {} as pid {}", config.id, pid);
  return handle;
}

Status ExecDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != "exec") return InvalidArgument("exec: handle belongs to " + handle.driver);
  int pid = handle.state.value("pid", 0);
  uint64_t want = handle.state.value("startTicks", uint64_t{0});
  if (pid <= 0) return InvalidArgument("exec: handle has no pid");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(handle.id);
    if (it != tasks_.end() && !it->second.exit) return {};  // already attached
  }
  Task task;
  task.pid = pid;
  task.start_ticks = want;
  task.started_at = handle.state.value("startedAt", "");
  // Open the pidfd first, then check identity: after that the pid cannot be recycled under us.
  task.pidfd = PidfdOpen(pid);
  if (task.pidfd < 0) return NotFound("exec: task " + handle.id + " (pid " + std::to_string(pid) + ") is gone");
  auto ticks = ProcessStartTicks(pid);
  if (!ticks || *ticks != want) {
    ::close(task.pidfd);
    return NotFound("exec: task " + handle.id + " (pid " + std::to_string(pid) + ") is gone" +
                    (ticks ? "; the pid now belongs to another process" : ""));
  }
  return Track(handle.id, std::move(task));
}

Status ExecDriver::Track(const std::string& id, Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it != tasks_.end() && it->second.pidfd >= 0) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
    ::close(it->second.pidfd);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = task.pidfd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, task.pidfd, &ev) != 0) {
    int e = errno;
    ::close(task.pidfd);
    return ErrnoError("exec: epoll_ctl", e);
  }
  tasks_[id] = std::move(task);
  return {};
}

void ExecDriver::ReaperLoop() {
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

void ExecDriver::OnPidfdReadable(int pidfd) {
  ExitResult result;
  siginfo_t info{};
  // Our own child: reap it and learn how it ended. A recovered task is not our child (ECHILD):
  // the kernel keeps its status for its real parent, so the code is unknown.
  errno = 0;
  int rc = waitid(static_cast<idtype_t>(3) /*P_PIDFD*/, pidfd, &info, WEXITED | WNOHANG);
  if (rc == 0 && info.si_pid == 0) return;  // our child, still running: spurious wake-up
  if (rc == 0) {
    if (info.si_code == CLD_EXITED) {
      result.exit_code = info.si_status;
    } else {
      result.signal = info.si_status;
    }
  } else {
    result.message = "exit status unknown: the task was recovered after an agent restart";
  }
  std::string id;
  ExitHandler handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [tid, t] : tasks_) {
      if (t.pidfd == pidfd) {
        id = tid;
        epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);
        ::close(pidfd);
        t.pidfd = -1;
        if (result.exit_code) {
          result.message = "exited with code " + std::to_string(*result.exit_code);
        } else if (result.signal) {
          result.message = std::string("killed by signal ") + strsignal(*result.signal);
        }
        t.exit = result;
        break;
      }
    }
    handler = on_exit_;
  }
  exited_cv_.notify_all();
  if (!id.empty() && handler) handler(id, result);
}

Result<std::optional<ExitResult>> ExecDriver::Wait(const std::string& id,
                                                   std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound("exec: no task " + id);
  exited_cv_.wait_for(lock, timeout, [&] {
    auto t = tasks_.find(id);
    return t == tasks_.end() || t->second.exit.has_value();
  });
  auto t = tasks_.find(id);
  if (t == tasks_.end()) return NotFound("exec: task " + id + " was destroyed");
  return t->second.exit;
}

Status ExecDriver::Signal(const std::string& id, int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound("exec: no task " + id);
  if (it->second.exit) return FailedPrecondition("exec: task " + id + " has exited");
  // The pidfd pins the identity of the leader; the group shares its pid as pgid.
  if (PidfdSendSignal(it->second.pidfd, 0) != 0) return NotFound("exec: task " + id + " is gone");
  if (::kill(-it->second.pid, sig) != 0 && PidfdSendSignal(it->second.pidfd, sig) != 0) {
    return ErrnoError("exec: signalling " + id, errno);
  }
  return {};
}

Status ExecDriver::Stop(const std::string& id, std::chrono::milliseconds grace, int sig) {
  auto st = Signal(id, sig);
  if (!st) {
    if (st.error().code() == Code::kFailedPrecondition) return {};
    return st;
  }
  MT_ASSIGN_OR_RETURN(auto exited, Wait(id, grace));
  if (exited) {
    // The leader is gone; make sure no stragglers of its group remain.
    ::kill(-Inspect(id).value_or(TaskStatus{}).pid, SIGKILL);
    return {};
  }
  int pid = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    pid = it->second.pid;
    ::kill(-pid, SIGKILL);
    if (it->second.pidfd >= 0) PidfdSendSignal(it->second.pidfd, SIGKILL);
  }
  MT_ASSIGN_OR_RETURN(auto killed, Wait(id, std::chrono::seconds(5)));
  if (!killed) return Internal("exec: task " + id + " (pid " + std::to_string(pid) + ") survived SIGKILL");
  return {};
}

Status ExecDriver::Destroy(const std::string& id, bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return {};
    if (!it->second.exit && !force) {
      return FailedPrecondition("exec: task " + id + " is still running");
    }
  }
  if (force) MT_RETURN_IF_ERROR(Stop(id, std::chrono::milliseconds(0), SIGKILL));
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

Result<ExecSessionPtr> ExecDriver::Exec(const std::string& id, const ExecOptions& options,
                                        ExecCallbacks callbacks) {
  int pid = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.exit || it->second.pidfd < 0) {
      return NotFound("exec: task " + id + " is not running");
    }
    pid = it->second.pid;
  }
  // The task's context is read from the live process, so a recovered task (whose TaskConfig
  // is gone with the old agent) gets the same environment, directory and user as a fresh one.
  // The start time is checked after the read: a pid recycled meanwhile is not mistaken for it.
  auto context = ReadProcessContext(pid);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(id);
    if (!context || it == tasks_.end() || it->second.exit ||
        ProcessStartTicks(pid) != std::optional<uint64_t>(it->second.start_ticks)) {
      return NotFound("exec: task " + id + " is not running");
    }
  }
  return StartExecSession(*context, options, std::move(callbacks));
}

Result<TaskStatus> ExecDriver::Inspect(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound("exec: no task " + id);
  TaskStatus s;
  s.pid = it->second.pid;
  s.started_at = it->second.started_at;
  s.state = it->second.exit ? TaskState::kExited : TaskState::kRunning;
  s.exit = it->second.exit;
  return s;
}

}  // namespace mentat
