// A command exec'd in a running container (Driver::Exec): its stdin and output travel over a
// hijacked connection to dockerd (engine_client.h), its exit code is the exec's inspect.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtimes/docker/engine_client.h"
#include "runtimes/driver.h"

namespace mentat {

// An exec'd command: a hijacked connection to dockerd carrying its stdin and output.
class DockerExecSession : public ExecSession {
 public:
  DockerExecSession(docker::EngineClient* engine, std::string exec_id, bool tty,
                    std::unique_ptr<docker::HijackedStream> stream, ExecCallbacks cb);
  ~DockerExecSession() override;
  Status WriteStdin(std::string_view data) override { return stream_->Write(data); }
  Status CloseStdin() override;
  Status Resize(unsigned short rows, unsigned short cols) override;
  void Kill() override;
  std::optional<ExitResult> Wait(std::chrono::milliseconds timeout) override;

 private:
  bool Done();
  // The output to the callbacks until the stream ends, then the exit.
  void Pump();

  docker::EngineClient* engine_;
  std::string exec_id_;
  bool tty_;
  std::unique_ptr<docker::HijackedStream> stream_;
  ExecCallbacks cb_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<ExitResult> exit_;
  std::thread thread_;
};

}  // namespace mentat
