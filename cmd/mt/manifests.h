// Reading manifests for apply, diff and delete -f: files, directories (-R) and stdin, sent to
// the server as {source, text} documents so its errors name the file and line.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat::mt {

struct Source {
  std::string path;  // as the user named it, or "<stdin>"
  std::string text;
};

// Each input is a file, a directory (its .yaml, .yml and .json files, sorted; with
// `recursive`, its subdirectories' too) or "-" for stdin. Files over 1 MiB are refused. A
// directory's bare hull manifests (seed 003: hull's own files, which hull Services name) are
// skipped, each with a note on `notes`; named on their own they are read like any manifest.
Result<std::vector<Source>> CollectSources(const std::vector<std::string>& inputs, bool recursive,
                                           std::ostream& notes);

// The body of POST /v1/apply: [{source, text}]. Errors: invalid UTF-8 (JSON cannot carry it),
// with the file, line and column.
Result<Json> ApplyDocuments(const std::vector<Source>& sources);

// An error of the server's dry-run apply, as diff and delete -f report it: without the
// "; nothing was applied" that only makes sense after `mt apply`.
Error DryRunError(Error e);

// The canonical objects the sources declare, decoded and normalized here with the same code
// the server runs (apis/), keyed by KeyOf: how `mt diff` finds the object an apply item
// names. Server-owned metadata is dropped. Manifests that name no namespace get `ns`.
Result<std::map<ObjectKey, Json>> CanonicalObjects(const std::vector<Source>& sources,
                                                   const std::string& ns);

}  // namespace mentat::mt
