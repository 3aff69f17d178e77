// mt schema: the JSON Schema of the Service manifest, for editors and linters, as the Service
// kind registers it (apis/kind_registry.h); needs no server.
#include <iostream>

#include <CLI/CLI.hpp>

#include "apis/kind_registry.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {

Command AddSchemaCommand(CLI::App& app) {
  auto* schema = app.add_subcommand("schema", "print the JSON Schema of the Service manifest");
  return {.cli = schema, .offline = [] {
            const KindInfo* service = KindNamed("Service");
            if (service == nullptr || service->schema == nullptr) {
              return PrintError(Error(Code::kInternal, "the Service kind registers no schema"));
            }
            std::cout << service->schema().dump(2) << "\n";
            return kExitOk;
          }};
}

}  // namespace mentat::mt
