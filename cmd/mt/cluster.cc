// mt cluster status: the control plane's members, who leads, and how far each has applied
// (GET /v1/cluster). A table by default, the server's JSON with -o json.
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

int RunClusterStatus(ApiClient& client, const std::string& output) {
  auto text = client.GetRaw("/v1/cluster");
  if (!text) return PrintError(text.error());
  Json status = Json::parse(*text, nullptr, false);
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
  return kExitOk;
}

}  // namespace

Command AddClusterCommand(CLI::App& app) {
  auto output = std::make_shared<std::string>();
  auto* cluster = app.add_subcommand("cluster", "show the control plane's members");
  cluster->require_subcommand(1);
  auto* status = cluster->add_subcommand("status", "members, leader, term and how far each applied");
  status->add_option("-o,--output", *output, "json")->check(CLI::IsMember({"json"}));
  // status is the only action so far: require_subcommand(1) makes it the parsed one.
  return {.cli = cluster,
          .connected = [output](const Session& s) { return RunClusterStatus(s.client, *output); }};
}

}  // namespace mentat::mt
