#include "datasets/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "datasets/bytes.h"
#include "engine/error.h"

namespace lethe {

namespace {

namespace fs = std::filesystem;

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// More elements than this in one idx file is a forged or corrupt header, not a dataset.
constexpr uint64_t kMaxIdxElements = uint64_t(1) << 31;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

// Inflates a whole gzip file (one or more members) without ever holding more than max_bytes of output.
std::string gunzip(const std::string& path, const std::string& compressed, size_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw InputError(path + ": cannot initialise gzip decoder");
  struct InflateEnd {
    z_stream* zs;
    ~InflateEnd() { inflateEnd(zs); }
  } end_guard{&zs};

  const auto* in = reinterpret_cast<const unsigned char*>(compressed.data());
  size_t in_left = compressed.size();
  // avail_in is a 32-bit uInt: feed the input in slices that fit.
  constexpr size_t kMaxSlice = size_t(1) << 30;
  auto refill = [&] {
    if (zs.avail_in != 0 || in_left == 0) return;
    const size_t slice = std::min(in_left, kMaxSlice);
    zs.next_in = const_cast<unsigned char*>(in);
    zs.avail_in = static_cast<uInt>(slice);
    in += slice;
    in_left -= slice;
  };

  std::string out;
  std::vector<unsigned char> chunk(size_t(1) << 18);
  for (;;) {
    refill();
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(chunk.size());
    const int ret = inflate(&zs, Z_NO_FLUSH);
    if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR || ret == Z_STREAM_ERROR) {
      throw InputError(path + ": corrupt gzip data (" + (zs.msg ? zs.msg : "zlib error " + std::to_string(ret)) +
                       ")");
    }
    const size_t produced = chunk.size() - zs.avail_out;
    if (produced > max_bytes - out.size()) {
      throw InputError(path + ": decompressed size exceeds the limit of " + std::to_string(max_bytes) +
                       " bytes (a gzip bomb, or not the file expected)");
    }
    out.append(reinterpret_cast<const char*>(chunk.data()), produced);

    const size_t input_left = zs.avail_in + in_left;
    if (ret == Z_STREAM_END) {
      if (input_left == 0) break;
      // Concatenated members are valid gzip; anything else after the stream is not.
      const size_t next = compressed.size() - input_left;
      if (input_left < 2 || static_cast<unsigned char>(compressed[next]) != 0x1f ||
          static_cast<unsigned char>(compressed[next + 1]) != 0x8b) {
        throw InputError(path + ": corrupt gzip data (" + std::to_string(input_left) +
                         " bytes of trailing data after the compressed stream)");
      }
      inflateReset(&zs);
      continue;
    }
    // Output space left over with no input left means the decoder is waiting for bytes that will never come.
    if (input_left == 0 && zs.avail_out != 0) {
      throw InputError(path + ": truncated gzip data (the compressed stream ends early after " +
                       std::to_string(out.size()) + " decompressed bytes)");
    }
  }
  return out;
}

struct IdxLayout {
  std::vector<uint64_t> dims;
  size_t data_offset = 0;
};

uint32_t read_be32(const std::string& bytes, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + at;
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string dims_str(const std::vector<uint64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

// Checks the header of an idx file holding u8 data and that the data fills the rest of the file exactly.
IdxLayout parse_idx(const std::string& path, const std::string& bytes, uint32_t magic, size_t ndims,
                    const std::string& kind) {
  const size_t header = 4 + 4 * ndims;
  if (bytes.size() < 4) {
    throw InputError(path + ": truncated header: the file has " + std::to_string(bytes.size()) + " bytes, " +
                     kind + " need a " + std::to_string(header) + "-byte header");
  }
  const uint32_t found = read_be32(bytes, 0);
  if (found != magic) {
    std::string msg = path + ": bad magic " + hex32(found) + " (expected " + hex32(magic) + " for " + kind + ")";
    if (found == kImagesMagic) msg += "; this looks like an idx images file";
    if (found == kLabelsMagic) msg += "; this looks like an idx labels file";
    throw InputError(msg);
  }
  if (bytes.size() < header) {
    throw InputError(path + ": truncated header: the file has " + std::to_string(bytes.size()) + " bytes, " +
                     kind + " need a " + std::to_string(header) + "-byte header");
  }
  IdxLayout layout;
  layout.data_offset = header;
  uint64_t total = 1;
  for (size_t i = 0; i < ndims; ++i) {
    const uint64_t d = read_be32(bytes, 4 + 4 * i);
    layout.dims.push_back(d);
    if (d == 0) throw InputError(path + ": dimension " + std::to_string(i) + " of " + kind + " is 0");
    // total <= 2^31 and d < 2^32 before the multiply, so the product cannot overflow 64 bits.
    if (total <= kMaxIdxElements) total *= d;
  }
  if (total > kMaxIdxElements) {
    throw InputError(path + ": " + kind + " dimensions " + dims_str(layout.dims) +
                     " are absurd (more than 2^31 elements)");
  }
  const uint64_t actual = bytes.size() - header;
  if (actual != total) {
    const std::string why = actual < total ? "truncated"
                                           : std::to_string(actual - total) + " trailing bytes";
    throw InputError(path + ": " + kind + " of " + dims_str(layout.dims) + " need " + std::to_string(total) +
                     " data bytes after the " + std::to_string(header) + "-byte header, but the file has " +
                     std::to_string(actual) + " (" + why + ")");
  }
  return layout;
}

}  // namespace

std::string read_maybe_gzip(const std::string& path, size_t max_bytes) {
  const std::string bytes = read_file_bytes(path, max_bytes);
  return maybe_gunzip(path, bytes, max_bytes);
}

std::string maybe_gunzip(const std::string& path, const std::string& bytes, size_t max_bytes) {
  return is_gzip(bytes) ? gunzip(path, bytes, max_bytes) : bytes;
}

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t num_classes) {
  LETHE_CHECK(num_classes > 0, "load_idx_pair needs a positive class count");
  const std::string image_bytes = read_maybe_gzip(images_path);
  const std::string label_bytes = read_maybe_gzip(labels_path);
  return parse_idx_pair(images_path, image_bytes, labels_path, label_bytes, num_classes);
}

Dataset parse_idx_pair(const std::string& images_path, const std::string& image_bytes, const std::string& labels_path,
                       const std::string& label_bytes, int64_t num_classes) {
  LETHE_CHECK(num_classes > 0, "parse_idx_pair needs a positive class count");
  const IdxLayout images = parse_idx(images_path, image_bytes, kImagesMagic, 3, "idx images");
  const IdxLayout labels = parse_idx(labels_path, label_bytes, kLabelsMagic, 1, "idx labels");

  if (images.dims[0] != labels.dims[0]) {
    throw InputError(images_path + " has " + std::to_string(images.dims[0]) + " images but " + labels_path +
                     " has " + std::to_string(labels.dims[0]) + " labels");
  }
  const auto n = static_cast<int64_t>(labels.dims[0]);
  const auto* label_data = reinterpret_cast<const unsigned char*>(label_bytes.data()) + labels.data_offset;
  for (int64_t i = 0; i < n; ++i) {
    if (label_data[i] >= num_classes) {
      throw InputError(labels_path + ": label " + std::to_string(label_data[i]) + " at index " +
                       std::to_string(i) + " is out of range for " + std::to_string(num_classes) + " classes");
    }
  }

  Dataset d;
  d.source = images_path;
  d.num_classes = num_classes;
  d.labels = Tensor::empty({n}, DType::I64);
  int64_t* lab = d.labels.i64();
  for (int64_t i = 0; i < n; ++i) lab[i] = label_data[i];

  const auto h = static_cast<int64_t>(images.dims[1]), w = static_cast<int64_t>(images.dims[2]);
  d.images = Tensor::empty({n, 1, h, w});
  float* px = d.images.f32();
  const auto* image_data = reinterpret_cast<const unsigned char*>(image_bytes.data()) + images.data_offset;
  const int64_t total = d.images.numel();
  for (int64_t i = 0; i < total; ++i) px[i] = static_cast<float>(image_data[i]) / 255.0f;
  return d;
}

}  // namespace lethe
