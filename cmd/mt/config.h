// Where mt finds its server, token, CA and namespace. Each setting comes from the first of:
// a command-line flag, an environment variable, the config file ($HOME/.mentat/config), a
// default. Each resolved setting remembers its source, for messages and `mt config view`.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "apis/error.h"

namespace mentat::mt {

inline constexpr const char* kDefaultServer = "http://127.0.0.1:4646";

struct Setting {
  std::string value;
  std::string source;  // "--server", "MENTAT_ADDR", "/home/u/.mentat/config:2", "default", ""
};

struct Config {
  Setting server;
  Setting token;
  Setting ca_file;
  Setting ns;
  std::string file;  // the config file consulted ("" when $HOME is unset)
};

// What the command line gave (nullopt: not given).
struct ConfigFlags {
  std::optional<std::string> server, token, ca_file, ns;
};

// The config file's settings, each with its line.
struct ConfigFile {
  std::optional<Setting> server, token, ca_file, ns;
};

// Parses the text of a config file: a YAML map with the keys server, token, ca_file and
// namespace, all strings. Errors (kInvalidArgument) name the file and the line.
Result<ConfigFile> ParseConfigFile(const std::string& path, const std::string& text);

// $HOME/.mentat/config, or "" when HOME is unset.
std::string ConfigFilePath(const std::function<const char*(const char*)>& getenv);

// Flag > environment (MENTAT_ADDR, MENTAT_TOKEN, MENTAT_CA_FILE, MENTAT_NAMESPACE) > file >
// default. A missing file is no error; an unreadable or malformed one is.
Result<Config> ResolveConfig(const ConfigFlags& flags,
                             const std::function<const char*(const char*)>& getenv);

// `mt config view`: every setting and where it came from; the token is never printed.
std::string RenderConfig(const Config& c);

// For "unauthorized:" messages: whether a token was sent and from where.
std::string AuthHintFor(const Config& c);

}  // namespace mentat::mt
