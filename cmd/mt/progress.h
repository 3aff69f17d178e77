// A live block of status lines, one per object. On a terminal it is redrawn in place (cursor
// up, clear line), each line cut to the terminal's width so nothing wraps; otherwise each line
// is printed again only when it changes, so logs and CI output stay readable.
#pragma once

#include <string>
#include <vector>

namespace mentat::mt {

struct ProgressLine {
  std::string name;    // "service/web"
  std::string ready;   // "1/2"
  std::string phase;   // "Starting"
  std::string detail;  // the status message
  bool done = false;
};

class ProgressDisplay {
 public:
  // tty: redraw in place; width: columns to fit (0 = unlimited).
  ProgressDisplay(bool tty, int width) : tty_(tty), width_(width) {}
  void Update(const std::vector<ProgressLine>& lines);
  // A message that goes above the block (on a terminal the block is drawn again below it).
  void Note(const std::string& text);

 private:
  std::vector<std::string> Render(const std::vector<ProgressLine>& lines) const;
  void Draw();

  bool tty_;
  int width_;
  std::vector<ProgressLine> lines_;
  std::vector<std::string> printed_;  // non-TTY: what each line said when last printed
  size_t drawn_ = 0;                  // TTY: lines on screen below the cursor's row
};

}  // namespace mentat::mt
