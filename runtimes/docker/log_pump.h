// Follows a container's log stream into its task's stdout.log and stderr.log, indexed at
// Docker's timestamps and rotated (runtimes/logs/log_writer.h): the agent's log endpoint follows
// files, as under the other drivers. After an agent restart it resumes where the files end
// (kLogsSinceFile) without duplicating lines.
#pragma once

#include <atomic>
#include <string>

#include "runtimes/docker/engine_client.h"
#include "runtimes/logs/log_rotate.h"

namespace mentat {

// In the task directory: "SECONDS.NANOS COUNT", where the files end in the container's log.
// Start removes it (a new container's logs start afresh); Adopt writes the adoption time.
inline constexpr const char* kLogsSinceFile = "docker-logs.since";

// The container whose logs are followed, and where to.
struct FollowedContainer {
  std::string task_id;  // names it in the agent's log
  std::string container;  // container id
  std::string task_dir;
  LogLimits log_limits;
  bool tty = false;  // a TTY's output is not framed
};

// Follows the container's logs (reconnecting with backoff) until `stop` or the container stops.
// Blocks: the caller runs it on a thread of its own.
void FollowContainerLogs(docker::EngineClient& engine, const FollowedContainer& c,
                         const std::atomic<bool>& stop);

}  // namespace mentat
