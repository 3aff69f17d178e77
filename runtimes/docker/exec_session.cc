// DockerExecSession (exec_session.h): the pump of a hijacked exec stream and a kill that never
// reaches a process that is not the exec's.
#include "runtimes/docker/exec_session.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include <spdlog/spdlog.h>

#include "runtimes/docker/container_exit.h"

namespace mentat {

using namespace std::chrono_literals;

DockerExecSession::DockerExecSession(docker::EngineClient* engine, std::string exec_id, bool tty,
                                     std::unique_ptr<docker::HijackedStream> stream,
                                     ExecCallbacks cb)
    : engine_(engine), exec_id_(std::move(exec_id)), tty_(tty), stream_(std::move(stream)), cb_(std::move(cb)) {
  thread_ = std::thread([this] { Pump(); });
}

DockerExecSession::~DockerExecSession() {
  if (!Done()) Kill();
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status DockerExecSession::CloseStdin() {
  if (tty_) return stream_->Write("\x04");
  stream_->CloseWrite();
  return {};
}

Status DockerExecSession::Resize(unsigned short rows, unsigned short cols) {
  if (!tty_) return FailedPrecondition("resize needs a tty");
  return engine_->ExecResize(exec_id_, rows, cols);
}

void DockerExecSession::Kill() {
  // Docker has no exec kill: the command's pid is in the exec's inspect, as dockerd sees it.
  // A plain kill(pid) could hit another process: the exec may have ended and its pid been
  // reused, or the agent may see another pid namespace. So the process is pinned with a
  // pidfd, shown to be in this container's cgroup, the exec shown still running with that
  // pid, and only then signalled through the pidfd (which never reaches a reused pid).
  // Right after the start the exec may not be running yet, or running without its pid yet
  // (Pid 0, no exit code): a moment.
  auto info = engine_->ExecInspect(exec_id_);
  auto pending = [&] {
    return info && (*info)["ExitCode"].is_null() && (!info->value("Running", false) || info->value("Pid", 0) <= 0);
  };
  for (int i = 0; i < 100 && pending(); ++i) {
    std::this_thread::sleep_for(20ms);
    info = engine_->ExecInspect(exec_id_);
  }
  if (!info || !info->value("Running", false)) return;
  int pid = info->value("Pid", 0);
  std::string container = info->value("ContainerID", "");
  if (pid <= 0 || container.empty()) return;
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd < 0) return;
  std::ifstream cg("/proc/" + std::to_string(pid) + "/cgroup");
  std::string cgroups((std::istreambuf_iterator<char>(cg)), std::istreambuf_iterator<char>());
  auto again = engine_->ExecInspect(exec_id_);
  if (cgroups.find(container) != std::string::npos && again && again->value("Running", false) &&
      again->value("Pid", 0) == pid) {
    ::syscall(SYS_pidfd_send_signal, pfd, SIGKILL, nullptr, 0);
  } else {
    spdlog::warn("docker: exec {}: pid {} is not (or no longer) the exec's; not signalled", exec_id_.substr(0, 12), pid);
  }
  ::close(pfd);
}

std::optional<ExitResult> DockerExecSession::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return exit_.has_value(); })) return std::nullopt;
  return exit_;
}

bool DockerExecSession::Done() {
  std::lock_guard<std::mutex> lock(mu_);
  return exit_.has_value();
}

void DockerExecSession::Pump() {
  docker::StreamDemuxer demux([&](int stream, std::string_view d) {
    if (cb_.output) cb_.output(stream == 2 ? ExecStream::kStderr : ExecStream::kStdout, d);
  });
  while (!stop_) {
    auto chunk = stream_->Read(200ms);
    if (!chunk) continue;
    if (chunk->empty()) break;
    if (tty_) {
      if (cb_.output) cb_.output(ExecStream::kStdout, *chunk);
    } else {
      demux.Feed(*chunk);
    }
  }
  // The exit code is the exec's, once dockerd has recorded it.
  ExitResult r;
  for (int i = 0; i < 100; ++i) {
    auto info = engine_->ExecInspect(exec_id_);
    if (!info) {
      r.message = info.error().message();
      break;
    }
    if (!info->value("Running", false) && !(*info)["ExitCode"].is_null()) {
      SetCodeOrSignal(r, info->value("ExitCode", -1));
      break;
    }
    std::this_thread::sleep_for(20ms);  // dockerd records the exit just after the stream ends
  }
  if (cb_.exit) cb_.exit(r);
  {
    std::lock_guard<std::mutex> lock(mu_);
    exit_ = r;
  }
  cv_.notify_all();
}

}  // namespace mentat
