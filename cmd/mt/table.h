// Aligned text tables in the style of kubectl: columns padded to their widest cell, three
// spaces apart.
#pragma once

#include <string>
#include <vector>

namespace mentat {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {
    widths_.resize(header_.size());
    Fit(header_);
  }
  void Add(std::vector<std::string> row) {
    Fit(row);
    rows_.push_back(std::move(row));
  }
  std::string Render() const {
    std::string out = RenderRow(header_);
    for (const auto& r : rows_) out += RenderRow(r);
    return out;
  }
  // A row aligned to the widths seen so far (used for watch output, after Render).
  std::string RenderRow(const std::vector<std::string>& row) const {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        size_t w = i < widths_.size() ? widths_[i] : row[i].size();
        line += std::string(w > row[i].size() ? w - row[i].size() : 0, ' ') + "   ";
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();  // an empty last cell
    return line + "\n";
  }

 private:
  void Fit(const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths_.size(); ++i) {
      widths_[i] = std::max(widths_[i], row[i].size());
    }
  }
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<size_t> widths_;
};

}  // namespace mentat
