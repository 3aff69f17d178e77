#include "cmd/mt/manifests.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apis/apply.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat::mt {
namespace fs = std::filesystem;

namespace {

// A file found by a directory walk that holds one bare hull manifest.
bool IsHullManifestFile(const std::string& text) {
  auto docs = DecodeYamlStream(text);
  return docs && docs->size() == 1 && IsBareHullManifest(docs->front().value);
}

}  // namespace

Result<std::vector<Source>> CollectSources(const std::vector<std::string>& inputs, bool recursive,
                                           std::ostream& notes) {
  std::vector<Source> out;
  for (const auto& in : inputs) {
    if (in == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      out.push_back({"<stdin>", ss.str()});
      continue;
    }
    std::error_code ec;
    auto status = fs::status(in, ec);
    if (ec || !fs::exists(status)) return NotFound(in + ": no such file or directory");
    std::vector<fs::path> files;
    const bool walked = fs::is_directory(status);
    if (walked) {
      auto add = [&](const fs::directory_entry& e) {
        auto ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
          files.push_back(e.path());
        }
      };
      if (recursive) {
        for (const auto& e : fs::recursive_directory_iterator(in, ec)) add(e);
      } else {
        for (const auto& e : fs::directory_iterator(in, ec)) add(e);
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        return NotFound(in + ": no .yaml, .yml or .json files" +
                        (recursive ? std::string() : std::string(" (use -R for subdirectories)")));
      }
    } else {
      files.push_back(in);
    }
    for (const auto& f : files) {
      std::ifstream stream(f, std::ios::binary);
      if (!stream) return ErrnoError(f.string(), errno);
      std::stringstream ss;
      ss << stream.rdbuf();
      if (ss.str().size() > kMaxManifestBytes) {
        return MakeError(Code::kTooLarge, f.string() + ": " + std::to_string(ss.str().size()) +
                                              " bytes; manifests are limited to " +
                                              std::to_string(kMaxManifestBytes) + " bytes");
      }
      if (walked && IsHullManifestFile(ss.str())) {
        notes << "note: skipped " << f.string()
              << ": a hull manifest (seed 003), not a Mentat object; a hull Service's "
                 "manifest: names it, and `mt apply -f "
              << f.string() << "` alone runs it as a one-replica hull Service\n";
        continue;
      }
      out.push_back({f.string(), ss.str()});
    }
  }
  return out;
}

Result<Json> ApplyDocuments(const std::vector<Source>& sources) {
  Json documents = Json::array();
  for (const auto& s : sources) {
    if (auto ok = CheckUtf8(s.text); !ok) {
      Error e = ok.error();
      for (auto& d : e.mutable_details()) d.source = s.path;
      return std::unexpected(e);
    }
    documents.push_back({{"source", s.path}, {"text", s.text}});
  }
  return documents;
}

Error DryRunError(Error e) {
  const std::string suffix = "; nothing was applied";
  std::string m = e.message();
  if (m.size() > suffix.size() && m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0) {
    m.resize(m.size() - suffix.size());
  }
  return Error(e.code(), m, e.details());
}

Result<std::map<ObjectKey, Json>> CanonicalObjects(const std::vector<Source>& sources,
                                                   const std::string& ns) {
  std::map<ObjectKey, Json> out;
  for (const auto& s : sources) {
    MT_ASSIGN_OR_RETURN(auto docs, DecodeYamlStream(s.text));
    std::string default_name = DefaultNameForFile(s.path, docs.size());  // as the server
    for (auto& doc : docs) {
      DefaultNamespace(doc.value, ns);  // the server's rule for `mt -n NS apply`
      MT_ASSIGN_OR_RETURN(auto objects, NormalizeDocument(doc.value, doc.marks, default_name));
      for (auto& o : objects) {
        EraseServerOwnedMetadata(o);
        ObjectKey key = KeyOf(o);  // before the move: the right of = is evaluated first
        out[key] = std::move(o);
      }
    }
  }
  return out;
}

}  // namespace mentat::mt
