#include "runtimes/sandbox/base_recipe.h"

#include <algorithm>
#include <optional>
#include <regex>
#include <set>

#include "apis/service.h"
#include "apis/sha256.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

// Part of every recipe's hash: bump it when the builder changes what it makes of a recipe, so
// that bases built by an older builder are rebuilt.
constexpr const char* kBuilderVersion = "mentat-base-builder/1";

bool IsCleanAbsolutePath(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string part = p.substr(start, end - start);
    if (part == "." || part == "..") return false;
    if (part.empty() && end != p.size()) return false;  // "//"
    start = end + 1;
  }
  return true;
}

// Checks one recipe document field by field, collecting every problem with its line.
class RecipeParser {
 public:
  RecipeParser(std::string name, const Document& doc) : name_(std::move(name)), doc_(doc) {}

  Result<BaseRecipe> Parse() {
    const Json& v = doc_.value;
    BaseRecipe r;
    r.name = name_;
    if (!v.is_object()) {
      Fail("", "a recipe is a mapping (name, packages, files, trees, symlinks, version)");
      return Finish(r);
    }
    static const std::vector<std::string> known = {"name",  "description", "provided_by",
                                                   "packages", "files", "trees",
                                                   "symlinks", "applets", "version"};
    for (const auto& [key, _] : v.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) UnknownField(key, key, known);
    }
    if (v.contains("name")) {
      auto n = Str(v["name"], "name");
      if (n && *n != name_) Fail("name", "is \"" + *n + "\" but the file is " + name_ + ".yaml");
    }
    if (v.contains("description"))
      r.description = Str(v["description"], "description").value_or("");
    if (v.contains("provided_by"))
      r.provided_by = Str(v["provided_by"], "provided_by").value_or("");
    if (v.contains("packages")) r.packages = StrList(v["packages"], "packages");
    if (v.contains("files")) r.files = Paths(v["files"], "files", /*tree=*/false);
    if (v.contains("trees")) r.trees = Paths(v["trees"], "trees", /*tree=*/true);
    if (v.contains("symlinks")) Symlinks(v["symlinks"], &r);
    if (v.contains("applets")) Applets(v["applets"], &r);
    if (!v.contains("version")) {
      Fail("version", "is required: {command: [...], pattern: REGEX}");
    } else {
      Version(v["version"], &r);
    }
    if (r.files.empty() && r.trees.empty()) Fail("files", "a base needs at least one file or tree");
    return Finish(r);
  }

 private:
  void Fail(const std::string& path, const std::string& message) {
    Mark m = FindMark(doc_.marks, path);
    FieldError e(path, m.line, m.column, message);
    e.source = "runtimes/sandbox/bases/" + name_ + ".yaml";
    errors_.push_back(std::move(e));
  }

  void UnknownField(const std::string& path, const std::string& key,
                    const std::vector<std::string>& known) {
    std::string hint = ClosestMatch(key, known);
    Fail(path,
         "unknown field" + (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
  }

  std::optional<std::string> Str(const Json& v, const std::string& path) {
    if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
      Fail(path, "must be a non-empty string");
      return std::nullopt;
    }
    return v.get<std::string>();
  }

  std::optional<std::string> AbsPath(const Json& v, const std::string& path) {
    auto s = Str(v, path);
    if (s && !IsCleanAbsolutePath(*s)) {
      Fail(path, "must be an absolute path without . or .. (\"" + *s + "\")");
      return std::nullopt;
    }
    return s;
  }

  std::vector<std::string> StrList(const Json& v, const std::string& path) {
    std::vector<std::string> out;
    if (!v.is_array()) {
      Fail(path, "must be a list of strings");
      return out;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (auto s = Str(v[i], path + "[" + std::to_string(i) + "]")) out.push_back(*s);
    }
    return out;
  }

  std::vector<RecipePath> Paths(const Json& v, const std::string& path, bool tree) {
    std::vector<RecipePath> out;
    if (!v.is_array()) {
      Fail(path, "must be a list of paths, or of {path, optional" +
                     std::string(tree ? ", exclude}" : "}"));
      return out;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      std::string p = path + "[" + std::to_string(i) + "]";
      RecipePath rp;
      if (v[i].is_string()) {
        rp.path = AbsPath(v[i], p).value_or("");
      } else if (v[i].is_object()) {
        std::vector<std::string> known = {"path", "optional"};
        if (tree) known.push_back("exclude");
        for (const auto& [key, _] : v[i].items()) {
          if (std::find(known.begin(), known.end(), key) == known.end()) {
            UnknownField(p + "." + key, key, known);
          }
        }
        if (!v[i].contains("path")) {
          Fail(p + ".path", "is required");
        } else {
          rp.path = AbsPath(v[i]["path"], p + ".path").value_or("");
        }
        if (v[i].contains("optional")) {
          if (!v[i]["optional"].is_boolean()) {
            Fail(p + ".optional", "must be true or false");
          } else {
            rp.optional = v[i]["optional"].get<bool>();
          }
        }
        if (v[i].contains("exclude")) rp.exclude = StrList(v[i]["exclude"], p + ".exclude");
      } else {
        Fail(p, "must be a path or {path, optional}");
      }
      if (!rp.path.empty()) out.push_back(std::move(rp));
    }
    return out;
  }

  void Symlinks(const Json& v, BaseRecipe* r) {
    if (!v.is_object()) {
      Fail("symlinks", "must be a mapping of path: target");
      return;
    }
    for (const auto& [link, target] : v.items()) {
      std::string p = "symlinks." + link;
      if (!IsCleanAbsolutePath(link)) {
        Fail(p, "the link must be an absolute path without . or ..");
        continue;
      }
      if (auto t = Str(target, p)) r->symlinks.push_back({link, *t});
    }
  }

  void Applets(const Json& v, BaseRecipe* r) {
    if (!v.is_object()) {
      Fail("applets", "must be {binary: PATH, list: [COMMAND...]}");
      return;
    }
    for (const auto& [key, _] : v.items()) {
      if (key != "binary" && key != "list") UnknownField("applets." + key, key, {"binary", "list"});
    }
    if (v.contains("binary"))
      r->applets_binary = AbsPath(v["binary"], "applets.binary").value_or("");
    if (v.contains("list")) r->applets_list = StrList(v["list"], "applets.list");
    if (r->applets_binary.empty() || r->applets_list.empty()) {
      Fail("applets", "needs both binary and list");
    }
  }

  void Version(const Json& v, BaseRecipe* r) {
    if (!v.is_object()) {
      Fail("version", "must be {command: [...], pattern: REGEX, format: \"... {} ...\"}");
      return;
    }
    for (const auto& [key, _] : v.items()) {
      if (key != "command" && key != "pattern" && key != "format") {
        UnknownField("version." + key, key, {"command", "pattern", "format"});
      }
    }
    if (!v.contains("command")) {
      Fail("version.command", "is required");
    } else {
      r->version_command = StrList(v["command"], "version.command");
      if (!r->version_command.empty() && !IsCleanAbsolutePath(r->version_command[0])) {
        Fail("version.command[0]", "must be an absolute path: bases do not search a PATH");
      }
    }
    if (!v.contains("pattern")) {
      Fail("version.pattern", "is required");
    } else if (auto p = Str(v["pattern"], "version.pattern")) {
      try {
        std::regex re(*p);
        r->version_pattern = *p;
      } catch (const std::regex_error& e) {
        Fail("version.pattern", std::string("is not a valid regular expression: ") + e.what());
      }
    }
    if (v.contains("format")) {
      auto f = Str(v["format"], "version.format");
      if (f && f->find("{}") == std::string::npos) {
        Fail("version.format", "must contain {} where the version goes");
      } else if (f) {
        r->version_format = *f;
      }
    }
  }

  Result<BaseRecipe> Finish(BaseRecipe& r) {
    if (!errors_.empty()) {
      return MakeError(Code::kInvalidArgument, "base recipe " + name_ + " is invalid",
                       std::move(errors_));
    }
    return std::move(r);
  }

  std::string name_;
  const Document& doc_;
  std::vector<FieldError> errors_;
};

}  // namespace

Result<BaseRecipe> ParseBaseRecipe(const std::string& name, const std::string& yaml_text) {
  if (!IsDnsLabel(name)) {
    return InvalidArgument("a base name is 1-63 characters of a-z, 0-9 and -: \"" + name + "\"");
  }
  auto doc = DecodeYaml(yaml_text);
  if (!doc) {
    Error e = doc.error();
    return MakeError(e.code(), "base recipe " + name + ": " + e.message(), e.details());
  }
  MT_ASSIGN_OR_RETURN(BaseRecipe r, RecipeParser(name, *doc).Parse());
  r.text = yaml_text;
  r.hash = Sha256Hex(std::string(kBuilderVersion) + "\n" + yaml_text);
  return r;
}

Result<BaseRecipe> KnownBaseRecipe(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& e : EmbeddedBaseRecipes()) {
    if (name == e.name) return ParseBaseRecipe(e.name, e.text);
    names.push_back(e.name);
  }
  std::sort(names.begin(), names.end());
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  std::string hint = ClosestMatch(name, names);
  if (hint.empty()) {
    // "pyton" or "nodejs" for python312 or node22: compare with the names' letters alone.
    auto letters = [](const std::string& s) { return s.substr(0, s.find_first_of("0123456789")); };
    std::vector<std::string> stems;
    for (const auto& n : names) stems.push_back(letters(n));
    std::string stem = ClosestMatch(letters(name), stems);
    for (size_t i = 0; i < names.size() && !stem.empty(); ++i) {
      if (stems[i] == stem) hint = names[i];
    }
  }
  return NotFound("no base named \"" + name + "\"" +
                  (hint.empty() ? "" : ", did you mean \"" + hint + "\"?") +
                  " (known bases: " + known + ")");
}

}  // namespace mentat
