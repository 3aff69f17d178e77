#include "cmd/mt/connect.h"

#include "cmd/mt/output.h"

namespace mentat::mt {

ClientOptions ClientOptionsFor(const Config& cfg) {
  ClientOptions co;
  co.token = cfg.token.value;
  co.ca_file = cfg.ca_file.value;
  return co;
}

Result<std::unique_ptr<ApiClient>> Connect(const Config& cfg, const ClientOptions& co) {
  SetAuthHint(AuthHintFor(cfg));
  SetServerHint(cfg.server.source == "default"
                    ? "the default; set --server, MENTAT_ADDR or server: in ~/.mentat/config"
                    : "server from " + cfg.server.source);
  auto client = ApiClient::Create(cfg.server.value, co);
  if (!client) {
    Error e = client.error();
    return std::unexpected(Error(
        e.code(), e.message() + " (server from " + cfg.server.source +
                      (co.ca_file.empty() ? "" : ", CA file from " + cfg.ca_file.source) + ")"));
  }
  if (!co.ca_file.empty() && (*client)->server().rfind("https://", 0) != 0 &&
      cfg.ca_file.source == "--ca-file") {
    PrintWarning("--ca-file is ignored: " + (*client)->server() + " is not an https:// server");
  }
  return client;
}

}  // namespace mentat::mt
