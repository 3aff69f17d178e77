// mt version: mt's version and the API version it speaks; needs no server.
#include <iostream>

#include <CLI/CLI.hpp>

#include "apis/object.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {

Command AddVersionCommand(CLI::App& app) {
  auto* version = app.add_subcommand("version", "print the version");
  return {.cli = version, .offline = [] {
            std::cout << "mt version 0.1.0 (api " << kApiVersion << ")\n";
            return kExitOk;
          }};
}

}  // namespace mentat::mt
