#include "datasets/bytes.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "engine/error.h"

namespace lethe {

namespace fs = std::filesystem;

std::string read_file_bytes(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw InputError(path + ": cannot open (no such file)");
  if (ec) throw InputError(path + ": cannot open (" + ec.message() + ")");
  if (!fs::is_regular_file(st)) throw InputError(path + ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw InputError(path + ": cannot read its size (" + ec.message() + ")");
  if (size > max_bytes) {
    throw InputError(path + ": the file is " + std::to_string(size) + " bytes, over the limit of " +
                     std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size) {
    throw InputError(path + ": read " + std::to_string(in.gcount()) + " of " + std::to_string(size) + " bytes");
  }
  return bytes;
}

uint16_t load_u16(const unsigned char* p, bool big_endian) {
  return big_endian ? static_cast<uint16_t>((p[0] << 8) | p[1]) : static_cast<uint16_t>(p[0] | (p[1] << 8));
}

uint32_t load_u32(const unsigned char* p, bool big_endian) {
  if (big_endian) return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

uint64_t load_u64(const unsigned char* p, bool big_endian) {
  const uint64_t first = load_u32(p, big_endian), second = load_u32(p + 4, big_endian);
  return big_endian ? (first << 32) | second : (second << 32) | first;
}

ByteCursor::ByteCursor(std::string context, const char* data, size_t size, bool big_endian)
    : context_(std::move(context)),
      data_(reinterpret_cast<const unsigned char*>(data)),
      pos_(0),
      end_(size),
      big_endian_(big_endian) {}

ByteCursor::ByteCursor(const ByteCursor& parent, size_t begin, size_t end)
    : context_(parent.context_), data_(parent.data_), pos_(begin), end_(end), big_endian_(parent.big_endian_) {}

const unsigned char* ByteCursor::take(size_t n, const char* what) {
  if (n > remaining()) {
    fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes but only " +
             std::to_string(remaining()) + " remain",
         pos_);
  }
  const unsigned char* p = data_ + pos_;
  pos_ += n;
  return p;
}

uint32_t ByteCursor::u32(const char* what) { return load_u32(take(4, what), big_endian_); }

ByteCursor ByteCursor::sub(size_t n, const char* what) {
  const size_t begin = pos_;
  take(n, what);
  return ByteCursor(*this, begin, begin + n);
}

void ByteCursor::fail(const std::string& message, size_t offset) const {
  throw InputError(context_ + ": " + message + " (at byte " + std::to_string(offset) + ")");
}

}  // namespace lethe
