// mt cluster status: the control plane's members, who leads, and how far each has applied
// (GET /v1/cluster). A table by default, the server's JSON with -o json.
// mt cluster add NAME HOST:PORT, remove NAME, transfer-leader NAME: membership changes (admin),
// each answered once the member asked applied it, then the status as above.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"
#include "cmd/mt/table.h"

namespace mentat::mt {
namespace {

std::string Cell(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

// Prints a cluster status as a table, or as JSON with -o json.
int PrintStatus(const Json& status, const std::string& output) {
  if (!status.is_object() || !status.contains("members") || !status["members"].is_array()) {
    return PrintError(Error(Code::kInternal, "the server's /v1/cluster answer is not a cluster status"));
  }
  if (output == "json") {
    std::cout << status.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "leader: " << Cell(status.value("leader", Json(""))) << "   term: " << Cell(status.value("term", Json(0)))
            << "\n";
  Table t({"NAME", "PEER", "ROLE", "VOTER", "APPLIED", "HEALTHY"});
  for (const auto& m : status["members"]) {
    t.Add({Cell(m.value("name", Json())), Cell(m.value("peerURL", Json())), Cell(m.value("role", Json())),
           Cell(m.value("voter", Json())), Cell(m.value("applied", Json())), Cell(m.value("healthy", Json()))});
  }
  std::cout << t.Render();
  // A member that stopped taking part in the cluster says why.
  for (const auto& m : status["members"]) {
    if (!m.value("reason", Json()).is_string()) continue;
    std::cout << m.value("name", "") << ": " << m["reason"].get<std::string>() << "\n";
  }
  return kExitOk;
}

int RunClusterStatus(ApiClient& client, const std::string& output) {
  auto text = client.GetRaw("/v1/cluster");
  if (!text) return PrintError(text.error());
  return PrintStatus(Json::parse(*text, nullptr, false), output);
}

// What a member added must be started with: every member's peer address, itself included.
std::string InitialCluster(const Json& status) {
  std::string out;
  for (const auto& m : status["members"]) {
    out += (out.empty() ? "" : ",") + m.value("name", "") + "=" + m.value("peerURL", "");
  }
  return out;
}

int RunClusterAdd(ApiClient& client, const std::string& name, const std::string& peer, const std::string& output) {
  auto status = client.PostRaw("/v1/cluster/members", Json{{"name", name}, {"peerURL", peer}}.dump());
  if (!status) return PrintError(status.error());
  if (output != "json") {
    std::cout << "member " << name << " added as a learner; start it with\n"
              << "  mentat-server --name " << name << " --peer-listen " << peer
              << " --initial-cluster-state existing --initial-cluster " << InitialCluster(*status) << " ...\n"
              << "The leader makes it a voter once its log caught up.\n";
  }
  return PrintStatus(*status, output);
}

}  // namespace

Command AddClusterCommand(CLI::App& app) {
  struct Args {
    std::string action, output, name, peer;
  };
  auto a = std::make_shared<Args>();
  auto* cluster = app.add_subcommand("cluster", "show and change the control plane's members");
  cluster->require_subcommand(1);
  auto output_flag = [&](CLI::App* sub) {
    sub->add_option("-o,--output", a->output, "json")->check(CLI::IsMember({"json"}));
    sub->callback([a, sub] { a->action = sub->get_name(); });
  };
  output_flag(cluster->add_subcommand("status", "members, leader, term and how far each applied"));
  auto* add = cluster->add_subcommand("add", "add a member (a learner until its log caught up)");
  add->add_option("name", a->name, "its name (a DNS label)")->required();
  add->add_option("peer", a->peer, "HOST:PORT of its peer port")->required();
  output_flag(add);
  auto* remove = cluster->add_subcommand("remove", "remove a member (not the leader)");
  remove->add_option("name", a->name, "the member")->required();
  output_flag(remove);
  auto* transfer = cluster->add_subcommand("transfer-leader", "hand the leadership to another voter");
  transfer->add_option("name", a->name, "the member to lead")->required();
  output_flag(transfer);
  return {.cli = cluster, .connected = [a](const Session& s) {
            if (a->action == "add") return RunClusterAdd(s.client, a->name, a->peer, a->output);
            Result<Json> status = std::unexpected(Error(Code::kInternal, "no action"));
            if (a->action == "remove") status = s.client.Delete("cluster/members", a->name);
            if (a->action == "transfer-leader") status = s.client.PostRaw("/v1/cluster/leader", Json{{"name", a->name}}.dump());
            if (a->action == "status") return RunClusterStatus(s.client, a->output);
            if (!status) return PrintError(status.error());
            return PrintStatus(*status, a->output);
          }};
}

}  // namespace mentat::mt
