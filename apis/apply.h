// The rules of applying manifests that the API server (POST /v1/apply) and `mt` (diff,
// delete -f, which work out locally what the server will do) must share, written once here.
// The namespace rule, DefaultNamespace (`mt -n NS apply`), is in apis/service.h beside
// NormalizeDocument, which the object PUT route uses as well.
#pragma once

#include <cstddef>
#include <string>

#include "apis/object.h"

namespace mentat {

// The name a nameless manifest gets from the file it came from: the file's base name up to its
// first '.', when that is a DNS label ("dir/api-service.yaml" -> "api-service"); otherwise ""
// (no name: "" , "<stdin>", "dir/My_App.yaml", "dir/.hidden.yaml").
std::string NameFromSource(const std::string& source);

// The default name for the documents of one file (NormalizeDocument's `default_name`): the
// file's NameFromSource when the file holds exactly one document; "" when it holds several
// (or none), since one name cannot name them all.
std::string DefaultNameForFile(const std::string& source, size_t documents);

// Removes the metadata the server owns (resourceVersion, uid, generation, creationTimestamp,
// deletionTimestamp) from an object, so that an applied manifest never sets them and a manifest
// compares with the stored object as its author wrote it. Every other field, and an object
// whose metadata is not an object, is left as it is.
void EraseServerOwnedMetadata(Json& object);

}  // namespace mentat
