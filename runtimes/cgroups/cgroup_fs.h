// File helpers shared by the cgroup v1 and v2 backends: interface files are read and written
// whole, never created (a missing file means the controller or the feature is not there).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat::cgroupfs {

bool Exists(const std::string& path);
// The whole file; kNotFound when it does not exist.
Result<std::string> Read(const std::string& path);
// Replaces the value of an existing interface file (no O_CREAT).
Status Write(const std::string& path, const std::string& value);
// The file as one unsigned number ("max" reads as nullopt).
Result<std::optional<uint64_t>> ReadUint(const std::string& path);
// The value of `key` in a file of "key value" lines (memory.events, cpu.stat, oom_control).
Result<uint64_t> ReadKey(const std::string& path, const std::string& key);
// The pids listed in a cgroup.procs file.
Result<std::vector<pid_t>> ReadPids(const std::string& procs_path);
// A group's process count and the forks its pids.max refused ("max N" in pids.events), read in
// `pids_dir`, its directory in the pids controller; without that controller (nullopt) the
// count is of `members` and no refusal is known.
Status ReadPidCounts(const std::optional<std::string>& pids_dir,
                     const std::function<Result<std::vector<pid_t>>()>& members, uint64_t* count,
                     uint64_t* limit_hits);

// mkdir -p of `rel` under `root`; the directories it made are appended to `made`.
Status MakeDirs(const std::string& root, const std::string& rel, std::vector<std::string>* made);
// rmdir; a directory already gone is fine. kFailedPrecondition while it has members.
Status RemoveDir(const std::string& dir);
// Opens every file of `paths` write-only and close-on-exec: all, or none and the error.
Result<std::vector<int>> OpenForWriting(const std::vector<std::string>& paths);
// "<dir> is not writable" unless the directory exists and is writable.
Status Writable(const std::string& dir);

// SIGKILLs what `members` lists until it lists nothing, or `deadline` passes (kUnavailable).
// `members` is re-read each round: processes forked meanwhile are caught by the next one.
Status KillUntilEmpty(const std::function<Result<std::vector<pid_t>>()>& members,
                      std::chrono::milliseconds deadline, const std::string& what);

// A group found at `path` by Create (left behind by a crash) is reused only when `members`, its
// members, is empty; otherwise kAlreadyExists.
Status CheckVacant(const std::string& path, const Result<std::vector<pid_t>>& members);

// A relative group path must not climb out of the hierarchy ("..") or be empty.
Status CheckGroupPath(const std::string& rel);

// The directories under `dir`, merged into `out` as "<parent>/<name>" -> newest mtime.
void ListChildDirs(const std::string& dir, const std::string& parent, std::map<std::string, int64_t>& out);

}  // namespace mentat::cgroupfs
