// mentat-agent: runs the allocations of one node, as a process of its own.
#include <signal.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cmd/mentat-agent/artifact_flags.h"
#include "runtimes/agent/agent.h"

using namespace mentat;

int main(int argc, char** argv) {
  CLI::App app{"mentat-agent: runs the allocations placed on this node"};
  AgentOptions opts;
  opts.server = "http://127.0.0.1:4646";
  opts.data_dir = "/var/lib/mentat/agent";
  std::string log_level = "info";
  app.add_option("--server", opts.server,
                 "URL of mentat-server, or several (a cluster's members), separated by commas")->envname("MENTAT_ADDR")
      ->capture_default_str();
  app.add_option("--node-name", opts.node_name, "this node's name (default: the host name's first label, made a DNS label)");
  app.add_option("--data-dir", opts.data_dir, "task handles and logs")->capture_default_str();
  app.add_option("--token", opts.token, "API token (a node token for this node)")
      ->envname("MENTAT_TOKEN");
  app.add_option("--ca-file", opts.ca_file, "PEM CA bundle that signs an https:// server")
      ->envname("MENTAT_CA_FILE")
      ->check(CLI::ExistingFile);
  opts.listen = "127.0.0.1:0";
  app.add_option("--listen", opts.listen,
                 "HOST:PORT of the agent's own endpoint (allocation logs for mt logs)")
      ->capture_default_str();
  app.add_option("--advertise", opts.advertise, "the URL others reach that endpoint at");
  app.add_option("--tls-cert", opts.tls_cert, "serve that endpoint over HTTPS with this certificate")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", opts.tls_key, "the key of --tls-cert")->check(CLI::ExistingFile);
  std::vector<std::string> labels;
  app.add_option("--label", labels,
                 "KEY=VALUE label of this node, repeatable (e.g. internal-only=true for the "
                 "exec-internal profile)");
  std::string heartbeat = "5s";
  app.add_option("--heartbeat-interval", heartbeat,
                 "how often the node's status is posted (the server's --node-heartbeat-timeout "
                 "must be a few of these)")
      ->capture_default_str();
  app.add_option("--sandbox-init", opts.sandbox_init,
                 "the sandbox-init binary (default: next to this one, or $MENTAT_SANDBOX_INIT)")
      ->check(CLI::ExistingFile);
  app.add_option("--hull-state-dir", opts.hull_state_dir,
                 "hull's state directory for the hull driver's containers (default: "
                 "<data-dir>/hull/state; `HULL_STATE_DIR=... hull ps` lists them)");
  int log_max_file_mb = 10;
  app.add_option("--docker-socket", opts.docker_socket, "dockerd's Engine API socket (the docker driver)")
      ->capture_default_str();
  app.add_option("--docker-publish-ip", opts.docker_publish_ip,
                 "host address docker containers' published ports bind to (default: all)");
  app.add_option("--log-max-file-mb", log_max_file_mb,
                 "rotate a task's stdout.log or stderr.log past this many megabytes, unless its "
                 "spec sets logs.max_file_mb")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--log-max-files", opts.logs.max_files,
                 "rotated files kept per stream (stdout.log.1 .. .N), unless the spec sets "
                 "logs.max_files")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  ArtifactFlags artifact_flags;
  AddArtifactFlags(app, artifact_flags);
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  opts.logs.max_file_bytes = static_cast<int64_t>(log_max_file_mb) << 20;
  if (auto limits = ArtifactLimitsFromFlags(artifact_flags); limits) {
    opts.artifacts = *limits;
  } else {
    std::cerr << "mentat-agent: " << limits.error().message() << "\n";
    return 2;
  }
  if (auto d = mentat::ParseDuration(heartbeat); d && d->count() > 0) {
    opts.heartbeat = *d;
  } else {
    std::cerr << "mentat-agent: --heartbeat-interval: \"" << heartbeat
              << "\" is not a positive duration such as 5s or 500ms\n";
    return 2;
  }
  for (const auto& l : labels) {
    auto eq = l.find('=');
    std::string key = l.substr(0, eq);
    if (key.empty() || key.size() > 253) {
      std::cerr << "mentat-agent: --label \"" << l << "\": want KEY=VALUE\n";
      return 2;
    }
    opts.labels[key] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto agent = Agent::Create(opts);
  if (!agent) {
    std::cerr << "mentat-agent: " << agent.error().ToString() << "\n";
    return 1;
  }
  if (auto st = (*agent)->Start(); !st) {
    std::cerr << "mentat-agent: " << st.error().ToString() << "\n";
    return 1;
  }
  spdlog::info("mentat-agent: node {} serving allocations from {}", (*agent)->node_name(),
               opts.server);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("mentat-agent: {} received, stopping (workloads keep running)", strsignal(sig));
  (*agent)->Stop();
  return 0;
}
