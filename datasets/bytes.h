#pragma once
// Bounds-checked access to binary files: a whole-file reader with a size cap, and a cursor that decodes little- or
// big-endian integers from a byte range and throws InputError (naming the file and the offset) instead of ever
// stepping past the range's end.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lethe {

// Reads a whole file exactly as it is on disk (no decompression: a raw pixel file may start with any bytes, gzip's
// magic included). Throws InputError naming the file if it is missing, not a regular file, larger than max_bytes
// or cannot be read in full.
std::string read_file_bytes(const std::string& path, size_t max_bytes);

// Unaligned loads in either byte order.
uint16_t load_u16(const unsigned char* p, bool big_endian);
uint32_t load_u32(const unsigned char* p, bool big_endian);
uint64_t load_u64(const unsigned char* p, bool big_endian);

class ByteCursor {
 public:
  // Reads data[0, size). `context` opens every error message: the file name, plus where a decompressed stream came
  // from. Offsets in messages count from data[0].
  ByteCursor(std::string context, const char* data, size_t size, bool big_endian = false);

  size_t pos() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }
  bool at_end() const { return pos_ == end_; }
  bool big_endian() const { return big_endian_; }
  const std::string& context() const { return context_; }

  // `what` names the thing being read, for the message if it does not fit.
  uint32_t u32(const char* what);
  // Returns a pointer to the next n bytes and steps over them.
  const unsigned char* take(size_t n, const char* what);
  void skip(size_t n, const char* what) { take(n, what); }
  // A cursor over the next n bytes (same context, offsets still counted from data[0]); this one steps over them.
  ByteCursor sub(size_t n, const char* what);

  // Throws InputError "<context>: <message> (at byte <offset>)".
  [[noreturn]] void fail(const std::string& message, size_t offset) const;

 private:
  ByteCursor(const ByteCursor& parent, size_t begin, size_t end);
  std::string context_;
  const unsigned char* data_;
  size_t pos_, end_;
  bool big_endian_;
};

}  // namespace lethe
