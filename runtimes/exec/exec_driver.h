// The exec driver (seed 000): a trusted host process with command, args, env and cwd, in its
// own session and process group, stdout/stderr appended to files in the task directory.
// Exits are observed through pidfds in one epoll thread, so recovered tasks (no longer our
// children) are watched exactly like fresh ones.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "runtimes/driver.h"

namespace mentat {

class ExecDriver : public Driver {
 public:
  static Result<std::unique_ptr<ExecDriver>> Create();
  ~ExecDriver() override;

  std::string Name() const override { return "exec"; }
  Result<TaskHandle> Start(const TaskConfig& config) override;
  Status Recover(const TaskHandle& handle) override;
  Result<std::optional<ExitResult>> Wait(const std::string& id,
                                         std::chrono::milliseconds timeout) override;
  Status Stop(const std::string& id, std::chrono::milliseconds grace, int signal) override;
  Status Destroy(const std::string& id, bool force) override;
  Result<TaskStatus> Inspect(const std::string& id) override;
  Status Signal(const std::string& id, int signal) override;
  Result<ExecSessionPtr> Exec(const std::string& id, const ExecOptions& options,
                              ExecCallbacks callbacks) override;
  Json Fingerprint() override;
  void SetExitHandler(ExitHandler handler) override;

 private:
  struct Task {
    int pid = 0;
    int pidfd = -1;
    uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22: with pid, the process identity
    std::string started_at;
    std::optional<ExitResult> exit;
  };

  ExecDriver() = default;
  void ReaperLoop();
  Status Track(const std::string& id, Task task);
  void OnPidfdReadable(int pidfd);

  int epfd_ = -1;
  int wake_fd_ = -1;
  std::thread reaper_;
  std::mutex mu_;
  std::condition_variable exited_cv_;
  std::map<std::string, Task> tasks_;
  ExitHandler on_exit_;
  bool stopping_ = false;
};

// /proc/<pid>/stat start time in clock ticks since boot; nullopt when the pid does not exist.
std::optional<uint64_t> ProcessStartTicks(int pid);

}  // namespace mentat
