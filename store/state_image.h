// A state image: the whole of a state machine's data as one byte stream, to send a member that
// is too far behind to catch up from the log (a Raft snapshot). It is a sequence of records,
// each a column (a small number), a key and a value, then a trailer with the count of records
// and a CRC-32 of everything before it. A reader checks the trailer before anything is used,
// so a truncated or corrupted image is refused whole.
//
//   record:  u8 column (< 0xff), u32 key length, key, u32 value length, value
//   trailer: u8 0xff, u64 record count, u32 CRC-32 of all preceding bytes
// Integers are big-endian.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "apis/error.h"

namespace mentat {

class StateImageWriter {
 public:
  void Add(uint8_t column, std::string_view key, std::string_view value);
  // Ends the image with its trailer; nothing may be added after.
  void Finish();
  // The bytes written since the last Take.
  std::string Take();
  size_t pending() const { return out_.size(); }

 private:
  std::string out_;
  uint64_t count_ = 0;
  unsigned long crc_ = 0;
};

// Reads the image in the file `path`: first checks it whole (InvalidArgument naming what is
// wrong: truncated, a bad CRC, a count that does not match), then calls `record` for each
// record in order; an error from `record` stops the reading and is returned.
using ImageRecordFn = std::function<Status(uint8_t column, std::string_view key, std::string_view value)>;
Status ReadStateImage(const std::string& path, const ImageRecordFn& record);

}  // namespace mentat
