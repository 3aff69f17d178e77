#include "store/state_image.h"

#include <zlib.h>

#include <fstream>
#include <iterator>

namespace mentat {
namespace {

constexpr uint8_t kTrailer = 0xff;
constexpr size_t kTrailerSize = 1 + 8 + 4;

void PutU(std::string& out, uint64_t v, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint64_t GetU(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

unsigned long Crc(unsigned long crc, std::string_view bytes) {
  return crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
}

}  // namespace

void StateImageWriter::Add(uint8_t column, std::string_view key, std::string_view value) {
  const size_t start = out_.size();
  out_.push_back(static_cast<char>(column));
  PutU(out_, key.size(), 4);
  out_ += key;
  PutU(out_, value.size(), 4);
  out_ += value;
  crc_ = Crc(crc_, std::string_view(out_).substr(start));
  ++count_;
}

void StateImageWriter::Finish() {
  const size_t start = out_.size();
  out_.push_back(static_cast<char>(kTrailer));
  PutU(out_, count_, 8);
  crc_ = Crc(crc_, std::string_view(out_).substr(start));
  PutU(out_, crc_, 4);
}

std::string StateImageWriter::Take() { return std::exchange(out_, std::string()); }

Status ReadStateImage(const std::string& path, const ImageRecordFn& record) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("state image " + path + " cannot be opened");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return InvalidArgument("state image " + path + ": " + why); };
  if (bytes.size() < kTrailerSize || static_cast<uint8_t>(bytes[bytes.size() - kTrailerSize]) != kTrailer) {
    return bad("truncated (no trailer)");
  }
  const std::string_view all(bytes);
  const size_t body = bytes.size() - 4;
  if (Crc(0, all.substr(0, body)) != GetU(all, body, 4)) return bad("its CRC does not match");
  const uint64_t count = GetU(all, bytes.size() - 12, 8);
  const size_t end = bytes.size() - kTrailerSize;
  // Two passes: the records are checked for shape before the first is handed out.
  for (int pass = 0; pass < 2; ++pass) {
    size_t at = 0;
    uint64_t seen = 0;
    while (at < end) {
      if (end - at < 9) return bad("record " + std::to_string(seen) + " is truncated");
      uint8_t column = static_cast<uint8_t>(all[at]);
      uint64_t klen = GetU(all, at + 1, 4);
      if (end - at - 5 < klen + 4) return bad("record " + std::to_string(seen) + " is truncated");
      std::string_view key = all.substr(at + 5, klen);
      uint64_t vlen = GetU(all, at + 5 + klen, 4);
      if (end - at - 9 - klen < vlen) return bad("record " + std::to_string(seen) + " is truncated");
      std::string_view value = all.substr(at + 9 + klen, vlen);
      at += 9 + klen + vlen;
      ++seen;
      if (pass == 1) MT_RETURN_IF_ERROR(record(column, key, value));
    }
    if (seen != count) {
      return bad("it says " + std::to_string(count) + " records but holds " + std::to_string(seen));
    }
  }
  return {};
}

}  // namespace mentat
