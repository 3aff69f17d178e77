// log-relay: the one writer of a task's logs (like conmon or Nomad's logmon). The driver starts
// it before the workload, in a session of its own and outside the task's cgroup, with the read
// ends of the workload's stdout and stderr pipes as descriptors 3 and 4, and 5, which it closes
// once it is reading them (the driver starts the workload then):
//   log-relay TASK_DIR MAX_FILE_BYTES MAX_FILES
// It appends every chunk to TASK_DIR/stdout.log or stderr.log with an index record
// (runtimes/logs/log_index.h) and rotates them, and exits once every writer of both pipes is
// gone. It outlives the agent (a restart or a kill -9 of the agent loses nothing) and ignores
// the signals meant for the agent's process group; the driver kills it (SIGKILL) only when a
// task is destroyed while something still holds its pipes.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtimes/logs/log_relay.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: log-relay TASK_DIR MAX_FILE_BYTES MAX_FILES (pipes on fds 3, 4)\n");
    return 2;
  }
  for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT}) ::signal(sig, SIG_IGN);
  mentat::LogLimits limits;
  limits.max_file_bytes = std::strtoll(argv[2], nullptr, 10);
  limits.max_files = std::atoi(argv[3]);
  if (limits.max_file_bytes <= 0) limits.max_file_bytes = mentat::LogLimits{}.max_file_bytes;
  for (int fd : {3, 4}) {
    // Room for the workload to go on writing while a rotation copies; as much as allowed.
    if (::fcntl(fd, F_SETPIPE_SZ, mentat::kRelayPipeBytes) < 0 && ::fcntl(fd, F_GETFD) < 0) {
      std::fprintf(stderr, "log-relay: descriptor %d is not open\n", fd);
      return 2;
    }
  }
  auto report = [](const std::string& what) { std::fprintf(stderr, "log-relay: %s\n", what.c_str()); };
  auto writer = mentat::TaskLogWriter::Open(argv[1], limits);
  if (!writer) report(writer.error().message() + "; the task's output is dropped");
  ::close(5);  // ready
  mentat::RunLogRelay(3, 4, writer ? writer->get() : nullptr, report);
  if (writer && !(*writer)->rotation_warning().empty()) report((*writer)->rotation_warning());
  return 0;
}
