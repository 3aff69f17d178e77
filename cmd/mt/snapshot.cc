// mt snapshot save: a point-in-time snapshot of the store, checked before it is kept and
// written atomically (a temporary file, then a rename).
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"
#include "store/snapshot.h"

namespace mentat::mt {

int RunSnapshotSave(ApiClient& client, const std::string& file) {
  auto text = client.GetRaw("/v1/snapshot");
  if (!text) return PrintError(text.error());
  // Check it before keeping it: a snapshot that fails later, at restore, is no backup.
  auto info = VerifySnapshot(*text);
  if (!info) return PrintError(info.error());
  std::string tmp = file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << *text;
    f.flush();
    if (!f) return PrintError(Error(Code::kInternal, "writing " + tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return PrintError(Error(Code::kInternal, "renaming " + tmp + ": " + ec.message()));
  std::cout << "snapshot of " << info->objects << " objects at revision " << info->revision
            << " saved to " << file << "\n";
  return kExitOk;
}

Command AddSnapshotCommand(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto* snapshot = app.add_subcommand("snapshot", "save a point-in-time snapshot of the store");
  snapshot->require_subcommand(1);
  auto* save = snapshot->add_subcommand("save", "write a snapshot to FILE");
  save->add_option("file", *file, "where to write it")->required();
  // save is the only action: require_subcommand(1) makes it the parsed one.
  return {.cli = snapshot,
          .connected = [file](const Session& s) { return RunSnapshotSave(s.client, *file); }};
}

}  // namespace mentat::mt
