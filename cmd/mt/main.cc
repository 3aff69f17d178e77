// mt: the Mentat command line. This file builds the command line from the commands' files
// (commands.h: each declares its own flags), adds the global flags, and runs the command parsed
// with what it needs: nothing, the configuration (config.h), or a client of the server.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "apis/client.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/config.h"
#include "cmd/mt/connect.h"
#include "cmd/mt/output.h"

using namespace mentat;
using namespace mentat::mt;

namespace {

// --server, --token, --ca-file and -n: what they were given, and whether they were.
struct GlobalFlags {
  std::string server, token, ca_file, ns;
  CLI::Option* server_opt = nullptr;
  CLI::Option* token_opt = nullptr;
  CLI::Option* ca_opt = nullptr;
  CLI::Option* ns_opt = nullptr;
};

void AddGlobalFlags(CLI::App& app, GlobalFlags& g) {
  g.server_opt = app.add_option("--server,-s", g.server,
                                "server URL, http:// or https://, or a cluster's, separated by commas (env MENTAT_ADDR; default " +
                                    std::string(kDefaultServer) + ")");
  g.token_opt = app.add_option("--token", g.token, "bearer token (env MENTAT_TOKEN)");
  g.ca_opt = app.add_option("--ca-file", g.ca_file,
                            "PEM CA that signs an https server's certificate "
                            "(env MENTAT_CA_FILE)");
  g.ns_opt = app.add_option("--namespace,-n", g.ns,
                            "namespace (env MENTAT_NAMESPACE; default "
                            "default)");
  // Global flags may come before or after the command: `mt get services -n staging`.
  app.fallthrough(true);
}

std::optional<std::string> Given(const CLI::Option* opt, const std::string& value) {
  if (opt->count() == 0) return std::nullopt;
  return value;
}

// Prepares what `command` needs, no more (a command that needs no server never fails on a bad
// configuration), and runs it.
int Run(const Command& command, const GlobalFlags& g) {
  if (command.offline) return command.offline();
  ConfigFlags flags;
  flags.server = Given(g.server_opt, g.server);
  flags.token = Given(g.token_opt, g.token);
  flags.ca_file = Given(g.ca_opt, g.ca_file);
  flags.ns = Given(g.ns_opt, g.ns);
  auto cfg = ResolveConfig(flags, [](const char* name) { return std::getenv(name); });
  if (!cfg) return PrintError(cfg.error());
  if (command.configured) return command.configured(*cfg);
  ClientOptions co = ClientOptionsFor(*cfg);
  auto client = Connect(*cfg, co);
  if (!client) return PrintError(client.error());
  Session session{**client, co, cfg->ns.value, cfg->ns.source != "default"};
  return command.connected(session);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mt: the Mentat command line"};
  app.require_subcommand(1);
  GlobalFlags global;
  AddGlobalFlags(app, global);
  // In the order of `mt --help`.
  const std::vector<Command> commands = {
      AddApplyCommand(app),   AddRunCommand(app),      AddGetCommand(app),
      AddNodesCommand(app),   AddDescribeCommand(app), AddLogsCommand(app),
      AddExecCommand(app),    AddDeleteCommand(app),   AddDiffCommand(app),
      AddWaitCommand(app),    AddRolloutCommand(app),  AddCompletionCommand(app),
      AddConfigCommand(app),  AddSnapshotCommand(app), AddClusterCommand(app),
      AddBaseCommand(app),
      AddVersionCommand(app), AddSchemaCommand(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints --help, or the problem and a pointer to --help
    return rc == 0 ? kExitOk : kExitUsage;
  }
  for (const Command& command : commands) {
    if (command.cli->parsed()) return Run(command, global);
  }
  return UsageError("no command given");
}
