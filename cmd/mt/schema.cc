// mt schema: the JSON Schema of the Service manifest, for editors and linters; needs no server.
#include <iostream>

#include <CLI/CLI.hpp>

#include "apis/schema.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {

Command AddSchemaCommand(CLI::App& app) {
  auto* schema = app.add_subcommand("schema", "print the JSON Schema of the Service manifest");
  return {.cli = schema, .offline = [] {
            std::cout << ServiceManifestSchema().dump(2) << "\n";
            return kExitOk;
          }};
}

}  // namespace mentat::mt
