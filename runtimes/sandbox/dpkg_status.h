// Which Debian packages the host has installed, and at which versions, read from dpkg's status
// database. A base records the versions it was built from, so an apt upgrade of, say, python3.11
// rebuilds it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mentat {

inline constexpr const char* kDpkgStatusPath = "/var/lib/dpkg/status";

// Package -> version of those of `packages` that are installed ("install ok installed"). For a
// multi-arch package, the first installed architecture's. nullopt when the status file cannot
// be read (not a Debian host): the caller cannot tell what is installed.
std::optional<std::map<std::string, std::string>> InstalledVersions(
    const std::vector<std::string>& packages, const std::string& status_path = kDpkgStatusPath);

}  // namespace mentat
