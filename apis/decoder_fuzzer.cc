// libFuzzer target for the manifest decoder: arbitrary bytes through YAML decoding,
// normalization of every document, the YAML encoder's round trip, and the hull manifest
// parser. Built by scripts/fuzz.sh with clang, ASan, UBSan and LeakSanitizer.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "apis/hull_manifest.h"
#include "apis/service.h"
#include "apis/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = mentat::DecodeYamlStream(text);
  if (docs) {
    for (const auto& doc : *docs) {
      auto objs = mentat::NormalizeDocument(doc.value, doc.marks, "fuzz");
      if (!objs) continue;
      for (const auto& obj : *objs) {
        // The canonical form must survive its own YAML encoding unchanged.
        auto again = mentat::DecodeYaml(mentat::EncodeYaml(obj));
        if (!again) abort();
        auto renorm = mentat::NormalizeObject(again->value, again->marks);
        if (!renorm || *renorm != obj) abort();
      }
    }
  }
  (void)mentat::HullManifest::Parse(text);
  return 0;
}
