// A command started next to a running host process, in that process's context: the exec
// driver's Driver::Exec. The context (environment, working directory, user and groups) is read
// from /proc/<pid> of the task, so it is right for recovered tasks too, whose TaskConfig the
// agent no longer has.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "runtimes/driver.h"

namespace mentat {

// Where an exec'd command runs. Read from a live process by ProcessContext.
struct ProcessContext {
  std::vector<std::string> env;  // "K=V"
  std::string cwd;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // Where paths (the command, cwd) are looked up from the agent: empty for the host, or
  // /proc/<pid>/root for a task with a root of its own.
  std::string root;
};

// The context of process `pid` (its environment as it was exec'd, its current directory, its
// real uid/gid and supplementary groups). kNotFound when it has gone.
Result<ProcessContext> ReadProcessContext(int pid);

// `command` as execvp would find it on `path_env` (a default PATH when empty), resolved before
// fork because the child may only call async-signal-safe functions.
std::string ResolveOnPath(const std::string& command, const std::string& path_env,
                          const std::string& root = "");

// In a freshly forked child: no blocked signals, every handler back to its default.
void ResetSignalsInChild();

// After fork, in the parent: waits on the close-on-exec pipe through which the child reports
// why it could not exec. Returns that errno (the child has exited and is reaped), or 0 when the
// exec succeeded. Closes `errpipe_read`.
int ChildExecError(int errpipe_read, pid_t pid);

// Forks and execs `options.command` in `context`, in a new session (a process group of its own,
// killed as a whole), with pipes or a pseudo-terminal. One thread per session pumps its output
// to `callbacks` and reaps it.
// `cgroup_procs_fds` (from Cgroup::OpenProcsFiles, may be empty): the child joins that cgroup
// before exec, so the command counts against the task's limits and dies with its tree.
// `enter` (may be empty) runs in the child just before it changes to the working directory and
// user: a confining driver joins the task's namespaces and restrictions there. It returns 0 or
// an errno, and must be async-signal-safe.
Result<ExecSessionPtr> StartExecSession(const ProcessContext& context, const ExecOptions& options,
                                        ExecCallbacks callbacks,
                                        const std::vector<int>& cgroup_procs_fds = {},
                                        const std::function<int()>& enter = {});

}  // namespace mentat
