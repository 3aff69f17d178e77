// Shorthands for the Failures of container.h, shared by the files of `hull run`: each names the
// exit code the CLI must use, so a step's error reaches the user with the right one.
#pragma once

#include <string>
#include <utility>

#include "apis/error.h"
#include "runtimes/hull/container.h"

namespace mentat::hull {

inline std::unexpected<Failure> Fail(int code, Error e) { return std::unexpected(Failure{code, std::move(e)}); }
inline std::unexpected<Failure> Runtime(const std::string& m) { return Fail(kExitRuntime, Error(Code::kInternal, m)); }
inline std::unexpected<Failure> ManifestError(const std::string& field, const std::string& m) {
  return Fail(kExitManifest, Error(Code::kInvalidArgument, "hull manifest is invalid",
                                   {FieldError(field, 0, 0, m)}));
}

}  // namespace mentat::hull
