// A unified diff of two texts, line by line (longest common subsequence), as `diff -u` prints
// it: a ---/+++ header, then hunks of changes with `context` unchanged lines around them.
#pragma once

#include <string>

namespace mentat::mt {

// "" when the texts are equal. Lines keep their text; a missing final newline is ignored.
std::string UnifiedDiff(const std::string& before, const std::string& after,
                        const std::string& before_label, const std::string& after_label,
                        int context = 3);

}  // namespace mentat::mt
