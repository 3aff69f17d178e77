#include "cmd/mt/config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "apis/yaml.h"
#include "cmd/mt/commands.h"
#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

std::unexpected<Error> FileError(const std::string& path, int line, const std::string& message) {
  FieldError d("", line, 0, message);
  d.source = path;
  return MakeError(Code::kInvalidArgument, "invalid config file " + path, {d});
}

}  // namespace

Result<ConfigFile> ParseConfigFile(const std::string& path, const std::string& text) {
  ConfigFile out;
  auto doc = DecodeYamlStream(text);
  if (!doc) {
    // The decoder reports "line:column: problem"; point it at the file.
    Error e = doc.error();
    for (auto& d : e.mutable_details()) d.source = path;
    if (e.details().empty()) return FileError(path, 0, e.message());
    return MakeError(Code::kInvalidArgument, "invalid config file " + path, e.details());
  }
  if (doc->empty()) return out;  // an empty file sets nothing
  if (doc->size() > 1) return FileError(path, (*doc)[1].first_line, "expected one YAML document");
  const Document& d = (*doc)[0];
  if (!d.value.is_object()) {
    return FileError(path, d.first_line,
                     "expected a map of settings (server:, token:, ca_file:, namespace:)");
  }
  for (auto it = d.value.begin(); it != d.value.end(); ++it) {
    int line = FindMark(d.marks, it.key()).line;
    std::optional<Setting>* slot = it.key() == "server"      ? &out.server
                                   : it.key() == "token"     ? &out.token
                                   : it.key() == "ca_file"   ? &out.ca_file
                                   : it.key() == "namespace" ? &out.ns
                                                             : nullptr;
    if (!slot) {
      return FileError(path, line,
                       "unknown setting \"" + it.key() +
                           "\"; the settings are server, token, ca_file and namespace");
    }
    if (!it.value().is_string() || it.value().get<std::string>().empty()) {
      return FileError(path, line, it.key() + ": must be a non-empty string");
    }
    *slot = Setting{it.value().get<std::string>(), path + ":" + std::to_string(line)};
  }
  return out;
}

std::string ConfigFilePath(const std::function<const char*(const char*)>& getenv) {
  const char* home = getenv("HOME");
  if (!home || !*home) return "";
  return std::string(home) + "/.mentat/config";
}

Result<Config> ResolveConfig(const ConfigFlags& flags,
                             const std::function<const char*(const char*)>& getenv) {
  Config c;
  c.file = ConfigFilePath(getenv);
  ConfigFile file;
  std::error_code ec;
  if (!c.file.empty() && std::filesystem::exists(c.file, ec)) {
    std::ifstream in(c.file, std::ios::binary);
    if (!in.is_open() || !std::filesystem::is_regular_file(c.file, ec)) {
      return MakeError(Code::kInvalidArgument,
                       "cannot read config file " + c.file + ": " +
                           (in.is_open() ? "not a regular file" : std::strerror(errno)));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    MT_ASSIGN_OR_RETURN(file, ParseConfigFile(c.file, ss.str()));
  }
  auto pick = [&](const std::optional<std::string>& flag, const char* flag_name,
                  const char* env_name, const std::optional<Setting>& from_file,
                  const std::string& fallback) {
    if (flag) return Setting{*flag, flag_name};
    const char* env = getenv(env_name);
    if (env && *env) return Setting{env, env_name};
    if (from_file) return *from_file;
    return Setting{fallback, fallback.empty() ? "" : "default"};
  };
  c.server = pick(flags.server, "--server", "MENTAT_ADDR", file.server, kDefaultServer);
  c.token = pick(flags.token, "--token", "MENTAT_TOKEN", file.token, "");
  c.ca_file = pick(flags.ca_file, "--ca-file", "MENTAT_CA_FILE", file.ca_file, "");
  c.ns = pick(flags.ns, "--namespace", "MENTAT_NAMESPACE", file.ns, "default");
  return c;
}

std::string RenderConfig(const Config& c) {
  std::string out;
  auto line = [&](const std::string& key, const std::string& value, const std::string& source) {
    out += key + ": " + value + (source.empty() ? "" : "    # from " + source) + "\n";
  };
  line("server", c.server.value, c.server.source);
  line("token",
       c.token.value.empty() ? "<none>"
                             : "<set, " + std::to_string(c.token.value.size()) + " characters>",
       c.token.source);
  line("ca_file", c.ca_file.value.empty() ? "<system CAs>" : c.ca_file.value, c.ca_file.source);
  line("namespace", c.ns.value, c.ns.source);
  out +=
      "# config file: " + (c.file.empty() ? std::string("none ($HOME is unset)") : c.file) + "\n";
  return out;
}

std::string AuthHintFor(const Config& c) {
  const std::string how = "set --token, MENTAT_TOKEN or token: in ~/.mentat/config";
  if (c.token.value.empty()) return "no token was sent: " + how;
  return "the token from " + c.token.source + " was refused: " + how;
}

Command AddConfigCommand(CLI::App& app) {
  auto* config = app.add_subcommand("config", "show the configuration mt uses");
  config->require_subcommand(1);
  config->add_subcommand("view", "each setting and where it came from");
  // view is the only action: require_subcommand(1) makes it the parsed one.
  return {.cli = config, .configured = [](const Config& c) {
            std::cout << RenderConfig(c);
            return kExitOk;
          }};
}

}  // namespace mentat::mt
