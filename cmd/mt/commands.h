// The commands of mt. Each command's file declares its flags on the command line (Add*Command)
// and runs it: from its parsed flags and a connected client to the process exit code
// (output.h). main.cc only builds the command line from the Add* functions and runs what was
// parsed.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "apis/client.h"
#include "cmd/mt/config.h"

namespace CLI {
class App;
}

namespace mentat::mt {

// What a command that talks to the server is handed once the configuration is resolved and the
// client made.
struct Session {
  ApiClient& client;
  const ClientOptions& options;  // for the extra clients a command makes (exec)
  const std::string& ns;         // the namespace in effect
  bool ns_given;                 // set by -n, MENTAT_NAMESPACE or the config file, not defaulted
};

// A subcommand of mt and how to run it once it is the one parsed. Exactly one runner is set; it
// says how much main prepares first, so that a command needing no server never fails on a bad
// configuration.
struct Command {
  CLI::App* cli = nullptr;
  std::function<int()> offline;                  // needs no configuration nor server
  std::function<int(const Config&)> configured;  // needs the configuration, not a server
  std::function<int(const Session&)> connected;  // needs a client of the server
};

// Each adds its subcommand to `app`, with its flags. main adds them in this order, which is the
// order of `mt --help`.
Command AddApplyCommand(CLI::App& app);
Command AddRunCommand(CLI::App& app);
Command AddGetCommand(CLI::App& app);
Command AddNodesCommand(CLI::App& app);
Command AddDescribeCommand(CLI::App& app);
Command AddLogsCommand(CLI::App& app);
Command AddExecCommand(CLI::App& app);
Command AddDeleteCommand(CLI::App& app);
Command AddDiffCommand(CLI::App& app);
Command AddWaitCommand(CLI::App& app);
Command AddRolloutCommand(CLI::App& app);
Command AddCompletionCommand(CLI::App& app);  // completes `app`'s commands
Command AddConfigCommand(CLI::App& app);
Command AddSnapshotCommand(CLI::App& app);
Command AddClusterCommand(CLI::App& app);
Command AddBaseCommand(CLI::App& app);
Command AddVersionCommand(CLI::App& app);
Command AddSchemaCommand(CLI::App& app);

struct ApplyFlags {
  std::vector<std::string> files;
  bool recursive = false;
  std::string dry_run;  // "", "server" or "none"
  std::string ns;       // -n when given: for manifests that name no namespace
  bool wait = false;
  std::string timeout = "60s";
  std::string applyset;
  bool prune = false;
};
// With --wait, a crash-looping allocation's stderr is shown (its logs, through the server).
int RunApply(ApiClient& client, const ApplyFlags& f);
// mt run: apply, then wait until every applied Service is up, always (f.wait is ignored), and
// say where each runs.
int RunRun(ApiClient& client, const ApplyFlags& f);

struct GetFlags {
  std::vector<std::string> args;  // KIND [NAME...] or KIND/NAME...
  std::string output;             // "", wide, json, yaml, name
  std::string selector;
  std::string ns;
  bool all_namespaces = false;
  bool watch = false;
};
int RunGet(ApiClient& client, const GetFlags& f);

struct DescribeFlags {
  std::vector<std::string> args;
  std::string selector;
  std::string ns;
};
int RunDescribe(ApiClient& client, const DescribeFlags& f);

struct DeleteFlags {
  std::vector<std::string> args;
  std::vector<std::string> files;
  bool recursive = false;
  std::string selector;
  bool all = false;
  bool ignore_not_found = false;
  bool dry_run = false;
  std::string ns;
  bool ns_given = false;
};
int RunDelete(ApiClient& client, const DeleteFlags& f);

struct DiffFlags {
  std::vector<std::string> files;
  bool recursive = false;
  std::string ns;  // -n when given
  std::string applyset;
  bool prune = false;
};
// 0: no changes; 1: changes; 2 and up: the diff could not be computed.
int RunDiff(ApiClient& client, const DiffFlags& f);

struct WaitFlags {
  std::vector<std::string> args;
  std::string for_;  // condition=Ready[=True|False] or delete
  std::string timeout = "60s";
  std::string ns;
};
int RunWait(ApiClient& client, const WaitFlags& f);

struct LogsFlags {
  std::string name;  // an allocation, or a service (all its allocations, each line prefixed)
  bool follow = false;
  long tail = -1;     // the last N lines; -1: all
  // Neither or both: both streams, merged in order, stderr's lines marked. One: only it, raw.
  bool stdout_ = false;
  bool stderr_ = false;
  bool timestamps = false;  // each line prefixed with its time from the agent's index
  std::string since;  // --since: a duration back from now ("5m") or an RFC 3339 time
  std::string ns;
};
// Reads logs through the server, which relays them from the agents.
int RunLogs(ApiClient& client, const LogsFlags& f);

struct RolloutFlags {
  std::string action;  // status, history or undo
  std::string name;    // the service
  std::string ns;
  std::string timeout;      // status: give up after this long ("" or 0: never)
  int64_t revision = 0;     // history: show this revision's template
  int64_t to_revision = 0;  // undo: this revision instead of the previous one
};
int RunRollout(ApiClient& client, const RolloutFlags& f);

struct ExecFlags {
  std::string target;                // an allocation, or a service (its first running one)
  std::vector<std::string> command;  // after --
  bool stdin = false;                // -i: forward stdin
  bool tty = false;                  // -t: a terminal (raw mode locally when stdin is one)
  std::string ns;
};
// Runs a command in an allocation, through the server to its agent. Returns the command's exit
// code, or mt's own (output.h) when it could not be run. `co` makes the extra clients that type
// stdin and send terminal sizes.
int RunExec(ApiClient& client, const ClientOptions& co, const ExecFlags& f);

struct BaseFlags {
  std::string action;  // build or list
  std::string name;    // build: the base
  std::string dir;     // --dir: where bases live (default: the agent's)
  bool force = false;  // build: even when up to date
};
// Builds or lists the sandbox's bases on this machine; needs no server (and no client).
int RunBase(const BaseFlags& f);
// The bases mt has recipes for, "a, b, c": for `mt base build`'s help.
std::string KnownBaseNames();

// mt snapshot save: writes the server's snapshot to `file`, once it is verified.
int RunSnapshotSave(ApiClient& client, const std::string& file);

// A bash completion script generated from the command line's own definition.
std::string BashCompletion(const CLI::App& app);

}  // namespace mentat::mt
