// mt snapshot save: a point-in-time snapshot of the store, checked before it is kept and
// written atomically (a temporary file, then a rename).
#include <filesystem>
#include <fstream>
#include <iostream>

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

}  // namespace mentat::mt
