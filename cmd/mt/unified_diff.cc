#include "cmd/mt/unified_diff.h"

#include <algorithm>
#include <sstream>
#include <vector>

namespace mentat::mt {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) lines.push_back(line);
  return lines;
}

struct Op {
  char kind;    // ' ', '-', '+'
  size_t a, b;  // line index in before / after (valid for ' ' and the side it names)
};

// Manifests are short, so the quadratic LCS table is fine (and simple to trust).
std::vector<Op> Script(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t n = a.size(), m = b.size();
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', i++, j++});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({'-', i++, j});  // deletions first, as diff -u prints them
    } else {
      ops.push_back({'+', i, j++});
    }
  }
  return ops;
}

std::string Range(size_t start, size_t count) {
  // diff -u numbers from 1; an empty range names the line before it.
  std::string s = std::to_string(count == 0 ? start : start + 1);
  if (count != 1) s += "," + std::to_string(count);
  return s;
}

}  // namespace

std::string UnifiedDiff(const std::string& before, const std::string& after,
                        const std::string& before_label, const std::string& after_label,
                        int context) {
  auto a = Lines(before), b = Lines(after);
  auto ops = Script(a, b);
  if (std::all_of(ops.begin(), ops.end(), [](const Op& o) { return o.kind == ' '; })) return "";
  std::string out = "--- " + before_label + "\n+++ " + after_label + "\n";
  size_t k = 0;
  while (k < ops.size()) {
    // Find the next change, then extend the hunk while changes are within 2*context lines.
    while (k < ops.size() && ops[k].kind == ' ') ++k;
    if (k == ops.size()) break;
    size_t start = k >= static_cast<size_t>(context) ? k - context : 0;
    size_t end = k;  // one past the last change in the hunk
    size_t scan = k;
    while (scan < ops.size()) {
      if (ops[scan].kind != ' ') {
        end = scan + 1;
        ++scan;
        continue;
      }
      size_t run = scan;
      while (run < ops.size() && ops[run].kind == ' ') ++run;
      if (run == ops.size() || run - scan > static_cast<size_t>(2 * context)) break;
      scan = run;
    }
    size_t stop = std::min(ops.size(), end + context);
    size_t a_start = ops[start].a, b_start = ops[start].b, a_count = 0, b_count = 0;
    std::string body;
    for (size_t x = start; x < stop; ++x) {
      const Op& o = ops[x];
      if (o.kind == ' ') {
        body += " " + a[o.a] + "\n";
        ++a_count, ++b_count;
      } else if (o.kind == '-') {
        body += "-" + a[o.a] + "\n";
        ++a_count;
      } else {
        body += "+" + b[o.b] + "\n";
        ++b_count;
      }
    }
    out += "@@ -" + Range(a_start, a_count) + " +" + Range(b_start, b_count) + " @@\n" + body;
    k = stop;
  }
  return out;
}

}  // namespace mentat::mt
