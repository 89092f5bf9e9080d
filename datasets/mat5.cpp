#include "datasets/mat5.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "datasets/bytes.h"
#include "engine/error.h"

namespace lethe {

namespace {

// Data element types (the "mi" types of the MAT-file format reference).
enum : uint32_t {
  miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9,
  miINT64 = 12, miUINT64 = 13, miMATRIX = 14, miCOMPRESSED = 15, miUTF8 = 16, miUTF16 = 17, miUTF32 = 18
};
// Array classes that are not numeric, or have another layout after the array flags.
constexpr uint32_t kFirstNumericClass = 6, kLastNumericClass = 15, kFunctionClass = 16, kOpaqueClass = 17;
constexpr uint32_t kComplexFlag = 0x0800;

constexpr size_t kHeaderBytes = 128;
// SVHN's extra_32x32.mat, the largest file this reader is meant for, is 1.3 GB.
constexpr size_t kMaxFileBytes = size_t(1) << 33;
// zlib cannot expand data by more than about 1032:1, so a reservation beyond that would be a forged size.
constexpr size_t kMaxDeflateRatio = 1032;

const char kHdf5Signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

std::string mi_type_name(uint32_t type) {
  static const std::array<const char*, 19> names = {
      nullptr,   "miINT8",  "miUINT8",  "miINT16",  "miUINT16",  "miINT32",     "miUINT32",
      "miSINGLE", nullptr,  "miDOUBLE", nullptr,    nullptr,     "miINT64",     "miUINT64",
      "miMATRIX", "miCOMPRESSED", "miUTF8", "miUTF16", "miUTF32"};
  if (type < names.size() && names[type]) return names[type];
  return "unknown type " + std::to_string(type);
}

// Bytes per element of a numeric data type; 0 for anything else.
size_t numeric_size(uint32_t type) {
  switch (type) {
    case miINT8: case miUINT8: return 1;
    case miINT16: case miUINT16: return 2;
    case miINT32: case miUINT32: case miSINGLE: return 4;
    case miDOUBLE: case miINT64: case miUINT64: return 8;
    default: return 0;
  }
}

std::string class_name(uint32_t cls) {
  static const std::array<const char*, 18> names = {
      nullptr, "cell", "struct", "object", "char", "sparse", "double", "single", "int8",
      "uint8", "int16", "uint16", "int32",  "uint32", "int64", "uint64", "function handle", "opaque"};
  if (cls < names.size() && names[cls]) return names[cls];
  return "unknown class " + std::to_string(cls);
}

std::string dims_str(const std::vector<uint64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

std::string number_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

double value_at(const unsigned char* p, uint32_t type, bool big_endian) {
  switch (type) {
    case miINT8: return static_cast<int8_t>(p[0]);
    case miUINT8: return p[0];
    case miINT16: return static_cast<int16_t>(load_u16(p, big_endian));
    case miUINT16: return load_u16(p, big_endian);
    case miINT32: return static_cast<int32_t>(load_u32(p, big_endian));
    case miUINT32: return load_u32(p, big_endian);
    case miSINGLE: {
      const uint32_t bits = load_u32(p, big_endian);
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    case miDOUBLE: {
      const uint64_t bits = load_u64(p, big_endian);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    case miINT64: return static_cast<double>(static_cast<int64_t>(load_u64(p, big_endian)));
    case miUINT64: return static_cast<double>(load_u64(p, big_endian));
    default: LETHE_CHECK(false, "value_at of a non-numeric type");
  }
  return 0.0;
}

struct Element {
  uint32_t type;
  size_t offset;    // of the tag
  ByteCursor data;  // the element's data, without padding
};

// Reads one data element (either tag format) and steps over its data and padding.
Element next_element(ByteCursor& c) {
  const size_t offset = c.pos();
  const uint32_t first = c.u32("a data element tag");
  if ((first >> 16) != 0) {
    // Small data element: byte count in the upper half of the first word, data in the tag's second word.
    const uint32_t bytes = first >> 16;
    if (bytes > 4) {
      c.fail("small data element of type " + mi_type_name(first & 0xFFFF) + " claims " + std::to_string(bytes) +
                 " bytes; at most 4 fit in its tag",
             offset);
    }
    ByteCursor word = c.sub(4, "a small data element");
    return {first & 0xFFFF, offset, word.sub(bytes, "a small data element")};
  }
  const uint32_t bytes = c.u32("a data element tag");
  if (bytes > c.remaining()) {
    c.fail("truncated: a data element of type " + mi_type_name(first) + " declares " + std::to_string(bytes) +
               " bytes but only " + std::to_string(c.remaining()) + " remain",
           offset);
  }
  Element e{first, offset, c.sub(bytes, "data element")};
  // Everything but a compressed element is padded to 8 bytes; a file may end without the final padding.
  if (first != miCOMPRESSED) c.skip(std::min<size_t>((8 - bytes % 8) % 8, c.remaining()), "padding");
  return e;
}

// Decodes one miMATRIX element; appends it to `out` if it is a real numeric array. When `owner` is given, it is the
// buffer holding nothing but this element, and a uint8 array's bytes are moved out of it rather than copied (SVHN's
// extra set would otherwise hold 1.6 GB twice).
void parse_matrix(const Element& el, std::vector<MatArray>& out, std::string* owner) {
  ByteCursor m = el.data;
  if (m.at_end()) return;  // an empty placeholder array

  const Element flags = next_element(m);
  if (flags.type != miUINT32 || flags.data.remaining() != 8) {
    m.fail("the array flags of the miMATRIX element at byte " + std::to_string(el.offset) +
               " must be an miUINT32 element of 8 bytes, not " + mi_type_name(flags.type) + " of " +
               std::to_string(flags.data.remaining()) + " bytes",
           flags.offset);
  }
  ByteCursor flag_words = flags.data;
  const uint32_t flag_word = flag_words.u32("array flags");
  const uint32_t cls = flag_word & 0xFF;
  if (cls == kFunctionClass || cls == kOpaqueClass) return;  // another layout follows; skipped by its size
  if (cls < 1 || cls > kOpaqueClass) m.fail("unknown array class " + std::to_string(cls), flags.offset);

  const Element dims_el = next_element(m);
  if (dims_el.type != miINT32 || dims_el.data.remaining() % 4 != 0 || dims_el.data.remaining() < 8) {
    m.fail("the dimensions of an array must be an miINT32 element of at least 2 values, not " +
               mi_type_name(dims_el.type) + " of " + std::to_string(dims_el.data.remaining()) + " bytes",
           dims_el.offset);
  }
  std::vector<uint64_t> dims;
  ByteCursor dim_words = dims_el.data;
  while (!dim_words.at_end()) {
    const auto d = static_cast<int32_t>(dim_words.u32("a dimension"));
    if (d < 0) m.fail("array dimension " + std::to_string(d) + " is negative", dims_el.offset);
    dims.push_back(static_cast<uint64_t>(d));
  }

  const Element name_el = next_element(m);
  if (numeric_size(name_el.type) != 1 && name_el.type != miUTF8) {
    m.fail("an array name must be an miINT8 element, not " + mi_type_name(name_el.type), name_el.offset);
  }
  ByteCursor name_bytes = name_el.data;
  const size_t name_len = name_bytes.remaining();
  const std::string name(reinterpret_cast<const char*>(name_bytes.take(name_len, "array name")), name_len);
  const std::string what = "array '" + name + "' (" + class_name(cls) + " " + dims_str(dims) + ")";

  // Cell, struct, object, char and sparse arrays, and complex ones, are skipped by the matrix's size.
  if (cls < kFirstNumericClass || cls > kLastNumericClass || (flag_word & kComplexFlag) != 0) return;

  // Every element takes at least one byte, so a count beyond the bytes left is a forged size: refuse it before
  // multiplying further or allocating. A zero dimension makes the array empty whatever the others are.
  uint64_t numel = std::find(dims.begin(), dims.end(), 0) != dims.end() ? 0 : 1;
  for (uint64_t d : dims) {
    if (numel == 0) break;
    if (d > m.remaining() || numel > m.remaining() / d) {
      m.fail(what + " needs more elements than the " + std::to_string(m.remaining()) +
                 " bytes left in its miMATRIX element can hold",
             dims_el.offset);
    }
    numel *= d;
  }

  MatArray a;
  a.name = name;
  a.cls = static_cast<MatClass>(cls);
  a.dims = dims;
  if (numel == 0 && m.at_end()) {
    out.push_back(std::move(a));
    return;
  }
  const Element real = next_element(m);
  const size_t elem_size = numeric_size(real.type);
  if (elem_size == 0) {
    m.fail("the real part of " + what + " has type " + mi_type_name(real.type) + ", not a numeric type",
           real.offset);
  }
  const size_t real_bytes = real.data.remaining();
  if (real_bytes % elem_size != 0 || real_bytes / elem_size != numel) {
    m.fail(what + " has " + std::to_string(numel) + " elements but its real part holds " +
               std::to_string(real_bytes) + " bytes of " + mi_type_name(real.type) + " (" +
               std::to_string(elem_size) + " bytes each)",
           real.offset);
  }
  const bool big = m.big_endian();
  ByteCursor real_cursor = real.data;
  const unsigned char* src = real_cursor.take(real_bytes, "real part");

  if (a.cls == MatClass::UInt8) {
    if (real.type == miUINT8 && owner) {
      const size_t start = real.data.pos();
      owner->erase(0, start);
      owner->resize(real_bytes);
      a.u8 = std::move(*owner);
      owner->clear();
      out.push_back(std::move(a));
      return;  // `owner` no longer holds the element; nothing more is read from it
    }
    if (real.type == miUINT8) {
      a.u8.assign(reinterpret_cast<const char*>(src), real_bytes);
    } else {
      a.u8.resize(real_bytes / elem_size);
      for (size_t k = 0; k < a.u8.size(); ++k) {
        const double v = value_at(src + k * elem_size, real.type, big);
        if (!(v >= 0.0 && v <= 255.0 && v == std::floor(v))) {
          m.fail("element " + std::to_string(k) + " of uint8 " + what + " is " + number_str(v) +
                     ", not a uint8 value",
                 real.offset);
        }
        a.u8[k] = static_cast<char>(static_cast<uint8_t>(v));
      }
    }
  } else {
    a.values.resize(real_bytes / elem_size);
    for (size_t k = 0; k < a.values.size(); ++k) a.values[k] = value_at(src + k * elem_size, real.type, big);
  }
  out.push_back(std::move(a));
}

// Inflates a miCOMPRESSED element (a zlib stream) into the data elements it holds, within `budget_left` bytes.
std::string inflate_element(const ByteCursor& c, const Element& el, size_t& budget_left) {
  const std::string where = "the miCOMPRESSED element at byte " + std::to_string(el.offset);
  ByteCursor data = el.data;
  const size_t size = data.remaining();
  const unsigned char* in = data.take(size, "compressed data");

  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw InputError(c.context() + ": cannot initialise the zlib decoder");
  struct InflateEnd {
    z_stream* zs;
    ~InflateEnd() { inflateEnd(zs); }
  } end_guard{&zs};
  // A data element's byte count is a u32, so the whole input fits in one avail_in.
  zs.next_in = const_cast<unsigned char*>(in);
  zs.avail_in = static_cast<uInt>(size);

  std::string out;
  bool reserved = false;
  std::vector<unsigned char> chunk(size_t(1) << 18);
  for (;;) {
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(chunk.size());
    const int ret = inflate(&zs, Z_NO_FLUSH);
    if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR) {
      c.fail("corrupt zlib data in " + where + " (" +
                 (zs.msg ? std::string(zs.msg) : "zlib error " + std::to_string(ret)) + ")",
             el.offset + 8 + (size - zs.avail_in));
    }
    const size_t produced = chunk.size() - zs.avail_out;
    if (produced > budget_left - out.size()) {
      throw InputError(c.context() + ": decompressing " + where + " exceeds the limit on decompressed data (" +
                       std::to_string(budget_left) + " bytes were left of it): a zip bomb, or a corrupt size");
    }
    out.append(reinterpret_cast<const char*>(chunk.data()), produced);
    // The first tag says how large the content will be: reserve it once (bounded by what zlib could produce)
    // instead of growing a gigabyte string by doubling.
    if (!reserved && out.size() >= 8) {
      reserved = true;
      const auto* tag = reinterpret_cast<const unsigned char*>(out.data());
      if ((load_u32(tag, c.big_endian()) >> 16) == 0) {
        const uint64_t expected = 8 + uint64_t(load_u32(tag + 4, c.big_endian()));
        const uint64_t bound = std::min<uint64_t>(
            {expected, budget_left, static_cast<uint64_t>(size) * kMaxDeflateRatio + 1024});
        out.reserve(static_cast<size_t>(bound));
      }
    }
    if (ret == Z_STREAM_END) {
      if (zs.avail_in != 0) {
        c.fail(std::to_string(zs.avail_in) + " bytes follow the end of the zlib stream in " + where,
               el.offset + 8 + (size - zs.avail_in));
      }
      break;
    }
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      c.fail("truncated zlib data in " + where + " (the stream ends after " + std::to_string(out.size()) +
                 " decompressed bytes)",
             el.offset + 8 + size);
    }
  }
  budget_left -= out.size();
  return out;
}

// Reads the data elements of `c` to its end. `owner` is the buffer `c` reads when that is a decompressed stream
// this parser may take apart; such a stream may not hold another compressed element.
void parse_elements(ByteCursor& c, std::vector<MatArray>& out, std::string* owner, size_t& budget_left) {
  while (!c.at_end()) {
    // Zero padding after the last element is harmless.
    if (c.remaining() < 8) {
      ByteCursor tail = c;
      const unsigned char* p = tail.take(tail.remaining(), "padding");
      if (std::all_of(p, p + c.remaining(), [](unsigned char b) { return b == 0; })) return;
    }
    const Element e = next_element(c);
    if (e.type == miMATRIX) {
      parse_matrix(e, out, owner && c.at_end() ? owner : nullptr);
    } else if (e.type == miCOMPRESSED) {
      if (owner) c.fail("a compressed element inside a compressed element", e.offset);
      std::string inflated = inflate_element(c, e, budget_left);
      ByteCursor inner(c.context() + " (in the data decompressed from the miCOMPRESSED element at byte " +
                           std::to_string(e.offset) + ")",
                       inflated.data(), inflated.size(), c.big_endian());
      parse_elements(inner, out, &inflated, budget_left);
    } else if (numeric_size(e.type) == 0 && e.type != miUTF8 && e.type != miUTF16 && e.type != miUTF32) {
      // Only arrays belong at the top level; stray numeric or text elements are skipped, anything else is not
      // MAT data.
      c.fail("unexpected data element of " + mi_type_name(e.type) + " (expected miMATRIX or miCOMPRESSED)",
             e.offset);
    }
  }
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The header's descriptive text, trimmed, for messages.
std::string header_text(const std::string& bytes) {
  std::string text = bytes.substr(0, std::min<size_t>(bytes.size(), 116));
  for (char& ch : text)
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) ch = '?';
  while (!text.empty() && (text.back() == ' ' || text.back() == '?')) text.pop_back();
  return text;
}

// Checks the 128-byte header; returns whether the file is big-endian.
bool check_header(const std::string& path, const std::string& bytes) {
  const bool hdf5 = (bytes.size() >= 520 && std::memcmp(bytes.data() + 512, kHdf5Signature, 8) == 0) ||
                    (bytes.size() >= 8 && std::memcmp(bytes.data(), kHdf5Signature, 8) == 0);
  if (hdf5 || starts_with(bytes, "MATLAB 7.3 MAT-file")) {
    throw InputError(path + ": is a MATLAB v7.3 (HDF5) file; Lethe reads the level-5 format (save with -v7, or "
                            "download the official SVHN files)");
  }
  const bool says_matlab = starts_with(bytes, "MATLAB");
  if (bytes.size() < kHeaderBytes) {
    if (says_matlab) {
      throw InputError(path + ": truncated: a level-5 MAT file starts with a 128-byte header, but the file has " +
                       std::to_string(bytes.size()) + " bytes");
    }
    throw InputError(path + ": not a MATLAB level-5 MAT file (" + std::to_string(bytes.size()) +
                     " bytes, shorter than the 128-byte header)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  // Level 4 files start with a numeric header whose first four bytes hold a small type code, so contain a zero.
  if (p[0] == 0 || p[1] == 0 || p[2] == 0 || p[3] == 0) {
    throw InputError(path + ": not a MATLAB level-5 MAT file (no text header; it may be a MATLAB v4 file, which "
                            "Lethe does not read: save with -v7)");
  }
  bool big;
  if (p[126] == 'I' && p[127] == 'M') big = false;
  else if (p[126] == 'M' && p[127] == 'I') big = true;
  else {
    throw InputError(path + ": not a MATLAB level-5 MAT file: no 'IM' or 'MI' endian indicator at byte 126 "
                            "(header text: \"" + header_text(bytes) + "\")");
  }
  const uint16_t version = load_u16(p + 124, big);
  if (version != 0x0100) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04x", version);
    throw InputError(path + ": unsupported MAT-file version " + buf + " at byte 124 (level-5 files say 0x0100)");
  }
  return big;
}

const MatArray* find_array(const std::vector<MatArray>& arrays, const std::string& name) {
  for (const MatArray& a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

std::string arrays_found(const std::vector<MatArray>& arrays) {
  std::string s;
  for (const MatArray& a : arrays)
    s += (s.empty() ? "" : ", ") + a.name + " (" + class_name(static_cast<uint32_t>(a.cls)) + " " +
         dims_str(a.dims) + ")";
  return (s.empty() ? "none" : s) + "; char, cell, struct, sparse and complex arrays are not read";
}

}  // namespace

uint64_t MatArray::numel() const {
  // A zero anywhere empties the array, whatever the other dimensions are (the parser accepts 0x2^31x2^31x2^31 as
  // empty), so it must be seen before multiplying. Without a zero, the parser has bounded the product.
  if (dims.empty() || std::find(dims.begin(), dims.end(), uint64_t{0}) != dims.end()) return 0;
  uint64_t n = 1;
  for (uint64_t d : dims) {
    LETHE_CHECK(n <= std::numeric_limits<uint64_t>::max() / d, "MAT array dimensions overflow");
    n *= d;
  }
  return n;
}

std::vector<MatArray> parse_mat5(const std::string& path, const std::string& bytes, size_t max_decompressed_bytes) {
  const bool big = check_header(path, bytes);
  ByteCursor c(path, bytes.data(), bytes.size(), big);
  c.skip(kHeaderBytes, "header");
  std::vector<MatArray> arrays;
  size_t budget_left = max_decompressed_bytes;
  parse_elements(c, arrays, nullptr, budget_left);
  return arrays;
}

std::vector<MatArray> read_mat5(const std::string& path) {
  return parse_mat5(path, read_file_bytes(path, kMaxFileBytes));
}

Dataset svhn_from_mat(const std::string& path, const std::vector<MatArray>& arrays) {
  const MatArray* x = find_array(arrays, "X");
  const MatArray* y = find_array(arrays, "y");
  if (!x || !y) {
    throw InputError(path + ": no array named '" + (x ? "y" : "X") + "' (SVHN files hold X, uint8 32x32x3xN, and "
                     "y, N labels 1..10); numeric arrays found: " + arrays_found(arrays));
  }
  if (x->cls != MatClass::UInt8) {
    throw InputError(path + ": array 'X' is of class " + class_name(static_cast<uint32_t>(x->cls)) +
                     "; SVHN's X is uint8 32x32x3xN");
  }
  // MATLAB drops trailing singleton dimensions, so a single image is 32x32x3.
  const std::vector<uint64_t>& xd = x->dims;
  const bool shape_ok = (xd.size() == 4 || xd.size() == 3) && xd[0] == 32 && xd[1] == 32 && xd[2] == 3;
  if (!shape_ok) {
    throw InputError(path + ": array 'X' has dimensions " + dims_str(xd) + "; SVHN's X is 32x32x3xN");
  }
  const uint64_t n = xd.size() == 4 ? xd[3] : 1;
  if (n == 0) throw InputError(path + ": array 'X' holds no images (dimensions " + dims_str(xd) + ")");
  if (x->u8.size() != n * 3072) {
    throw InputError(path + ": array 'X' of dimensions " + dims_str(xd) + " holds " +
                     std::to_string(x->u8.size()) + " bytes, not " + std::to_string(n * 3072));
  }

  const uint64_t y_count = y->numel();
  const auto non_singleton = std::count_if(y->dims.begin(), y->dims.end(), [](uint64_t d) { return d != 1; });
  if (y_count != n || non_singleton > 1) {
    throw InputError(path + ": array 'y' has dimensions " + dims_str(y->dims) + "; expected " + std::to_string(n) +
                     "x1, one label per image in X");
  }
  const bool y_bytes = y->cls == MatClass::UInt8;
  if ((y_bytes ? y->u8.size() : y->values.size()) != n) {
    throw InputError(path + ": array 'y' of dimensions " + dims_str(y->dims) + " holds " +
                     std::to_string(y_bytes ? y->u8.size() : y->values.size()) + " values, not " +
                     std::to_string(n));
  }

  Dataset d;
  d.source = path;
  d.num_classes = 10;
  d.labels = Tensor::empty({static_cast<int64_t>(n)}, DType::I64);
  int64_t* labels = d.labels.i64();
  for (uint64_t i = 0; i < n; ++i) {
    const double v = y_bytes ? static_cast<unsigned char>(y->u8[i]) : y->values[i];
    if (!(v >= 1.0 && v <= 10.0 && v == std::floor(v))) {
      throw InputError(path + ": y(" + std::to_string(i + 1) + ") (label index " + std::to_string(i) + ") is " +
                       number_str(v) + "; SVHN labels are integers 1..10");
    }
    // SVHN writes digit 0 as label 10.
    labels[i] = v == 10.0 ? 0 : static_cast<int64_t>(v);
  }

  std::array<float, 256> scale{};
  for (int k = 0; k < 256; ++k) scale[static_cast<size_t>(k)] = static_cast<float>(k) / 255.0f;
  d.images = Tensor::empty({static_cast<int64_t>(n), 3, 32, 32});
  float* px = d.images.f32();
  const auto* src = reinterpret_cast<const unsigned char*>(x->u8.data());
  // X is column-major: element (row r, col c, channel ch, image i) is at r + 32c + 1024ch + 3072i.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
    for (int64_t ch = 0; ch < 3; ++ch) {
      const unsigned char* plane = src + i * 3072 + ch * 1024;
      float* out = px + i * 3072 + ch * 1024;
      for (int64_t r = 0; r < 32; ++r)
        for (int64_t col = 0; col < 32; ++col) out[r * 32 + col] = scale[plane[r + 32 * col]];
    }
  }
  return d;
}

Dataset load_svhn(const std::string& path) { return svhn_from_mat(path, read_mat5(path)); }

}  // namespace lethe
