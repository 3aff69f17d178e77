// mt: the Mentat command line. This file defines the command line and dispatches; each
// command lives in its own file (commands.h), configuration in config.h, output in output.h.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "apis/client.h"
#include "apis/schema.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/config.h"
#include "cmd/mt/connect.h"
#include "cmd/mt/output.h"
#include "runtimes/sandbox/bases.h"

using namespace mentat;
using namespace mentat::mt;

namespace {

std::optional<std::string> Given(const CLI::Option* opt, const std::string& value) {
  if (opt->count() == 0) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mt: the Mentat command line"};
  app.require_subcommand(1);
  std::string server, token, ca_file, ns;
  auto* server_opt = app.add_option("--server,-s", server,
                                    "server URL, http:// or https:// (env MENTAT_ADDR; default " +
                                        std::string(kDefaultServer) + ")");
  auto* token_opt = app.add_option("--token", token, "bearer token (env MENTAT_TOKEN)");
  auto* ca_opt = app.add_option("--ca-file", ca_file,
                                "PEM CA that signs an https server's certificate "
                                "(env MENTAT_CA_FILE)");
  auto* ns_opt = app.add_option("--namespace,-n", ns,
                                "namespace (env MENTAT_NAMESPACE; default "
                                "default)");
  // Global flags may come before or after the command: `mt get services -n staging`.
  app.fallthrough(true);

  ApplyFlags apply_flags;
  auto* apply = app.add_subcommand("apply", "create or update objects from manifests");
  apply->add_option("-f,--filename", apply_flags.files, "file, directory or - for stdin")
      ->required();
  apply->add_flag("-R,--recursive", apply_flags.recursive, "descend into directories");
  apply
      ->add_option("--dry-run", apply_flags.dry_run,
                   "\"server\": validate and admit, persist nothing")
      ->expected(0, 1)
      ->default_str("server");
  apply->add_flag("--wait", apply_flags.wait, "wait until every applied Service is Ready");
  apply->add_option("--timeout", apply_flags.timeout, "how long --wait waits (e.g. 90s, 5m)")
      ->capture_default_str();
  apply->add_option("--applyset", apply_flags.applyset,
                    "label every applied object mentat.io/applyset=NAME");
  apply->add_flag("--prune", apply_flags.prune,
                  "delete the applyset's objects that the manifests no longer declare");

  // mt run: seed 000's boot flow ("mt run service.yaml"), as `nomad job run`.
  ApplyFlags run_flags;
  run_flags.timeout = "5m";
  std::vector<std::string> run_files;
  auto* run = app.add_subcommand(
      "run", "apply manifests, then follow each Service live until it is up (or say why not)");
  run->add_option("file", run_files, "file or directory (the same as -f)");
  run->add_option("-f,--filename", run_flags.files, "file, directory or - for stdin");
  run->add_flag("-R,--recursive", run_flags.recursive, "descend into directories");
  run->add_option("--timeout", run_flags.timeout, "give up after this long (e.g. 90s, 5m)")
      ->capture_default_str();

  GetFlags get_flags;
  auto* get = app.add_subcommand("get", "show objects");
  get->add_option("resources", get_flags.args, "KIND [NAME...] or KIND/NAME...")->required();
  get->add_option("-o,--output", get_flags.output, "wide, json, yaml or name");
  get->add_option("-l,--selector", get_flags.selector, "label selector, e.g. app=web,tier!=db");
  get->add_flag("-A,--all-namespaces", get_flags.all_namespaces, "every namespace");
  get->add_flag("-w,--watch", get_flags.watch, "keep printing changes");

  GetFlags nodes_flags;
  auto* nodes = app.add_subcommand("nodes", "show nodes (the same as get nodes)");
  nodes->add_option("names", nodes_flags.args, "node names");
  nodes->add_option("-o,--output", nodes_flags.output, "wide, json, yaml or name");
  nodes->add_option("-l,--selector", nodes_flags.selector, "label selector");
  nodes->add_flag("-w,--watch", nodes_flags.watch, "keep printing changes");

  DescribeFlags describe_flags;
  auto* describe = app.add_subcommand("describe", "show one object in detail");
  describe->add_option("resources", describe_flags.args, "KIND [NAME...] or KIND/NAME...")
      ->required();
  describe->add_option("-l,--selector", describe_flags.selector, "label selector (with a KIND)");

  LogsFlags logs_flags;
  auto* logs = app.add_subcommand(
      "logs", "print (-f: follow) a service's or an allocation's output: stdout and stderr in order");
  logs->add_option("name", logs_flags.name, "an allocation, or a service (all its allocations)")
      ->required();
  logs->add_flag("-f,--follow", logs_flags.follow,
                 "keep printing: across restarts, new allocations and agent restarts");
  logs->add_option("--tail", logs_flags.tail, "only the last N lines (then, with -f, what follows)");
  logs->add_flag("--stdout", logs_flags.stdout_, "only the standard output stream, as written");
  logs->add_flag("--stderr", logs_flags.stderr_, "only the standard error stream, as written");
  logs->add_flag("--timestamps", logs_flags.timestamps, "each line with when it was written (RFC 3339)");
  logs->add_option("--since", logs_flags.since,
                   "only what was written since: a duration (5m, 1h) or an RFC 3339 time");

  ExecFlags exec_flags;
  auto* exec = app.add_subcommand(
      "exec", "run a command in an allocation, or a service's first running one");
  exec->add_option("name", exec_flags.target, "an allocation, or a service")->required();
  exec->add_option("command", exec_flags.command, "the command and its arguments, after --");
  exec->add_flag("-i,--stdin", exec_flags.stdin, "forward stdin to the command");
  exec->add_flag("-t,--tty", exec_flags.tty,
                 "a terminal for the command (the local one in raw mode while it runs)");

  DeleteFlags delete_flags;
  auto* del = app.add_subcommand("delete", "delete objects by name, selector or manifest");
  del->add_option("resources", delete_flags.args, "KIND NAME... or KIND/NAME...");
  del->add_option("-f,--filename", delete_flags.files,
                  "delete the objects these manifests declare (file, directory or -)");
  del->add_flag("-R,--recursive", delete_flags.recursive, "descend into directories");
  del->add_option("-l,--selector", delete_flags.selector, "delete the objects of KIND it selects");
  del->add_flag("--all", delete_flags.all, "delete every object of KIND in the namespace");
  del->add_flag("--ignore-not-found", delete_flags.ignore_not_found,
                "an object that does not exist is not an error");
  std::string delete_dry_run;
  del->add_option("--dry-run", delete_dry_run,
                  "\"server\": report what would be deleted, delete nothing")
      ->expected(0, 1)
      ->default_str("server");

  DiffFlags diff_flags;
  auto* diff = app.add_subcommand("diff", "show what apply would change, as a unified diff");
  diff->add_option("-f,--filename", diff_flags.files, "file, directory or - for stdin")->required();
  diff->add_flag("-R,--recursive", diff_flags.recursive, "descend into directories");
  diff->add_option("--applyset", diff_flags.applyset, "as apply --applyset");
  diff->add_flag("--prune", diff_flags.prune, "also show what apply --prune would delete");

  WaitFlags wait_flags;
  auto* wait = app.add_subcommand("wait", "wait for a condition, or a deletion");
  wait->add_option("resources", wait_flags.args, "KIND/NAME... or KIND NAME...")->required();
  wait->add_option("--for", wait_flags.for_, "condition=Ready[=True|False], or delete")->required();
  wait->add_option("--timeout", wait_flags.timeout, "give up after this long (e.g. 90s, 5m)")
      ->capture_default_str();

  RolloutFlags rollout_flags;
  auto* rollout = app.add_subcommand("rollout", "follow, list or undo a service's spec rollouts");
  rollout->require_subcommand(1);
  auto* rollout_status =
      rollout->add_subcommand("status", "wait until the service's current rollout completes or fails");
  rollout_status->add_option("service", rollout_flags.name, "the service")->required();
  rollout_status->add_option("--timeout", rollout_flags.timeout,
                             "give up after this long (e.g. 5m; default: wait as long as it takes)");
  auto* rollout_history = rollout->add_subcommand("history", "list the service's spec revisions");
  rollout_history->add_option("service", rollout_flags.name, "the service")->required();
  rollout_history->add_option("--revision", rollout_flags.revision,
                              "print this revision's spec template")
      ->check(CLI::PositiveNumber);
  auto* rollout_undo =
      rollout->add_subcommand("undo", "roll the service back to its previous (or a given) revision");
  rollout_undo->add_option("service", rollout_flags.name, "the service")->required();
  rollout_undo->add_option("--to-revision", rollout_flags.to_revision, "the revision to go back to")
      ->check(CLI::PositiveNumber);

  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  std::string shell;
  completion->add_option("shell", shell, "bash")->required();

  auto* config = app.add_subcommand("config", "show the configuration mt uses");
  config->require_subcommand(1);
  auto* config_view = config->add_subcommand("view", "each setting and where it came from");

  auto* snapshot = app.add_subcommand("snapshot", "save a point-in-time snapshot of the store");
  snapshot->require_subcommand(1);
  auto* snapshot_save = snapshot->add_subcommand("save", "write a snapshot to FILE");
  std::string snapshot_file;
  snapshot_save->add_option("file", snapshot_file, "where to write it")->required();

  BaseFlags base_flags;
  base_flags.dir = kDefaultBasesDir;
  auto* base = app.add_subcommand("base", "build or list the sandbox's bases on this machine");
  base->require_subcommand(1);
  auto* base_build = base->add_subcommand(
      "build", "build a base from its recipe, unless it is built and up to date");
  base_build->add_option("name", base_flags.name, "the base: " + KnownBaseNames())->required();
  base_build->add_option("--dir", base_flags.dir, "where bases live")->capture_default_str();
  base_build->add_flag("--force", base_flags.force, "rebuild even when up to date");
  auto* base_list = base->add_subcommand("list", "the bases built on this machine");
  base_list->add_option("--dir", base_flags.dir, "where bases live")->capture_default_str();

  auto* version = app.add_subcommand("version", "print the version");
  auto* schema = app.add_subcommand("schema", "print the JSON Schema of the Service manifest");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints --help, or the problem and a pointer to --help
    return rc == 0 ? kExitOk : kExitUsage;
  }

  // Commands that need no server, nor any configuration.
  if (version->parsed()) {
    std::cout << "mt version 0.1.0 (api " << kApiVersion << ")\n";
    return kExitOk;
  }
  if (schema->parsed()) {
    std::cout << ServiceManifestSchema().dump(2) << "\n";
    return kExitOk;
  }
  if (base->parsed()) {
    base_flags.action = base_build->parsed() ? "build" : "list";
    return RunBase(base_flags);
  }
  if (completion->parsed()) {
    if (shell != "bash")
      return UsageError("only bash completion is available, not \"" + shell + "\"");
    std::cout << BashCompletion(app);
    return kExitOk;
  }

  ConfigFlags flags;
  flags.server = Given(server_opt, server);
  flags.token = Given(token_opt, token);
  flags.ca_file = Given(ca_opt, ca_file);
  flags.ns = Given(ns_opt, ns);
  auto cfg = ResolveConfig(flags, [](const char* name) { return std::getenv(name); });
  if (!cfg) return PrintError(cfg.error());
  if (config_view->parsed()) {
    std::cout << RenderConfig(*cfg);
    return kExitOk;
  }
  ClientOptions co = ClientOptionsFor(*cfg);
  auto client = Connect(*cfg, co);
  if (!client) return PrintError(client.error());
  ApiClient& c = **client;
  const std::string& namespace_ = cfg->ns.value;
  bool ns_explicit = cfg->ns.source != "default";

  if (snapshot_save->parsed()) return RunSnapshotSave(c, snapshot_file);
  if (apply->parsed()) {
    apply_flags.ns = ns_explicit ? namespace_ : "";
    return RunApply(c, apply_flags);
  }
  if (run->parsed()) {
    run_flags.files.insert(run_flags.files.begin(), run_files.begin(), run_files.end());
    if (run_flags.files.empty()) return UsageError("run needs a manifest: mt run FILE, or -f FILE");
    run_flags.ns = ns_explicit ? namespace_ : "";
    return RunRun(c, run_flags);
  }
  if (get->parsed()) {
    get_flags.ns = namespace_;
    return RunGet(c, get_flags);
  }
  if (nodes->parsed()) {
    nodes_flags.args.insert(nodes_flags.args.begin(), "nodes");
    nodes_flags.ns = namespace_;
    return RunGet(c, nodes_flags);
  }
  if (logs->parsed()) {
    logs_flags.ns = namespace_;
    return RunLogs(c, logs_flags);
  }
  if (exec->parsed()) {
    exec_flags.ns = namespace_;
    return RunExec(c, co, exec_flags);
  }
  if (describe->parsed()) {
    describe_flags.ns = namespace_;
    return RunDescribe(c, describe_flags);
  }
  if (del->parsed()) {
    delete_flags.ns = namespace_;
    delete_flags.ns_given = ns_explicit;
    if (!delete_dry_run.empty() && delete_dry_run != "server" && delete_dry_run != "none") {
      return UsageError("--dry-run must be \"server\" or \"none\"");
    }
    delete_flags.dry_run = delete_dry_run == "server";
    return RunDelete(c, delete_flags);
  }
  if (diff->parsed()) {
    diff_flags.ns = ns_explicit ? namespace_ : "";
    return RunDiff(c, diff_flags);
  }
  if (rollout->parsed()) {
    rollout_flags.ns = namespace_;
    rollout_flags.action = rollout_status->parsed()    ? "status"
                           : rollout_history->parsed() ? "history"
                                                       : "undo";
    return RunRollout(c, rollout_flags);
  }
  if (wait->parsed()) {
    wait_flags.ns = namespace_;
    return RunWait(c, wait_flags);
  }
  return UsageError("no command given");
}
