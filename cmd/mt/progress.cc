#include "cmd/mt/progress.h"

#include <algorithm>
#include <iostream>

#include "cmd/mt/output.h"

namespace mentat::mt {
namespace {

const char* PhaseColour(const ProgressLine& l) {
  if (l.done) return colour::kGreen;
  if (l.phase == "Pending" || l.phase == "Degraded" || l.phase == "Failed") return colour::kRed;
  return colour::kYellow;
}

std::string Pad(const std::string& s, size_t width) {
  return s + std::string(width > s.size() ? width - s.size() : 0, ' ');
}

}  // namespace

std::vector<std::string> ProgressDisplay::Render(const std::vector<ProgressLine>& lines) const {
  size_t wn = 0, wr = 0, wp = 0;
  for (const auto& l : lines) {
    wn = std::max(wn, l.name.size());
    wr = std::max(wr, l.ready.size());
    wp = std::max(wp, l.phase.size());
  }
  std::vector<std::string> out;
  for (const auto& l : lines) {
    std::string head = Pad(l.name, wn) + "   " + Pad(l.ready, wr) + "   ";
    std::string phase = Pad(l.phase, wp);
    std::string detail = l.detail;
    if (width_ > 0) {
      // Cut to the width so no line wraps: a wrapped line would break the redraw.
      size_t room = static_cast<size_t>(width_ - 1);
      size_t used = head.size() + phase.size() + 3;
      if (used >= room) {
        detail.clear();
      } else if (detail.size() > room - used) {
        detail = detail.substr(0, room - used > 3 ? room - used - 3 : 0) + "...";
      }
    }
    std::string line = head + Paint(Stream::kOut, PhaseColour(l), phase);
    if (!detail.empty()) line += "   " + detail;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.push_back(line);
  }
  return out;
}

void ProgressDisplay::Draw() {
  auto rendered = Render(lines_);
  if (tty_) {
    std::string frame;
    if (drawn_ > 0) frame += "\033[" + std::to_string(drawn_) + "A";
    for (const auto& l : rendered) frame += "\r\033[K" + l + "\n";
    std::cout << frame << std::flush;
    drawn_ = rendered.size();
    return;
  }
  // Compared unpadded: a longer phase elsewhere must not reprint every line.
  printed_.resize(rendered.size());
  for (size_t i = 0; i < rendered.size(); ++i) {
    const auto& l = lines_[i];
    std::string key = l.ready + "|" + l.phase + "|" + l.detail + (l.done ? "|done" : "");
    if (key == printed_[i]) continue;
    std::cout << rendered[i] << "\n";
    printed_[i] = key;
  }
  std::cout << std::flush;
}

void ProgressDisplay::Update(const std::vector<ProgressLine>& lines) {
  lines_ = lines;
  Draw();
}

void ProgressDisplay::Note(const std::string& text) {
  if (tty_ && drawn_ > 0) {
    // Clear the block, print the note where it was, and draw the block again below it.
    std::cout << "\033[" << drawn_ << "A\r\033[J";
    drawn_ = 0;
  }
  std::cout << text << "\n";
  if (tty_) Draw();
  std::cout << std::flush;
}

}  // namespace mentat::mt
