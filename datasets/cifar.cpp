#include "datasets/cifar.h"

#include <array>
#include <vector>

#include "datasets/bytes.h"
#include "engine/error.h"

namespace lethe {

namespace {

constexpr int64_t kPixelBytes = 3 * 32 * 32;
// The largest official file (CIFAR-100 train.bin) is 154 MB; anything far beyond that is not a CIFAR batch.
constexpr size_t kMaxFileBytes = size_t(1) << 31;

bool is_cifar10(CifarVariant v) { return v == CifarVariant::Cifar10; }
const char* variant_name(CifarVariant v) { return is_cifar10(v) ? "CIFAR-10" : "CIFAR-100"; }
const char* record_layout(CifarVariant v) {
  return is_cifar10(v) ? "1 label byte + 3072 pixel bytes" : "a coarse and a fine label byte + 3072 pixel bytes";
}

// A hint for a file of the other CIFAR variant, which has records one byte longer or shorter.
std::string other_variant_hint(size_t file_bytes, CifarVariant v) {
  const int64_t other = is_cifar10(v) ? kPixelBytes + 2 : kPixelBytes + 1;
  if (file_bytes == 0 || file_bytes % static_cast<size_t>(other) != 0) return "";
  return std::string("; its length is a multiple of ") + std::to_string(other) + ", the " +
         (is_cifar10(v) ? "CIFAR-100" : "CIFAR-10") + " record size: it looks like a " +
         (is_cifar10(v) ? "CIFAR-100" : "CIFAR-10") + " file";
}

// Checks a file's length and every label byte, before anything is allocated; returns the record count.
int64_t check_cifar(const std::string& path, const std::string& bytes, CifarVariant v) {
  const auto record = static_cast<size_t>(cifar_record_bytes(v));
  if (bytes.empty()) {
    throw InputError(path + ": empty file; a " + std::string(variant_name(v)) + " file holds records of " +
                     std::to_string(record) + " bytes (" + record_layout(v) + ")");
  }
  if (bytes.size() % record != 0) {
    throw InputError(path + ": length " + std::to_string(bytes.size()) + " bytes is not a multiple of the " +
                     variant_name(v) + " record size " + std::to_string(record) + " (" + record_layout(v) +
                     "): " + std::to_string(bytes.size() / record) + " whole records and a partial record of " +
                     std::to_string(bytes.size() % record) + " bytes (truncated, or not a " + variant_name(v) +
                     " file)" + other_variant_hint(bytes.size(), v));
  }
  const size_t n = bytes.size() / record;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  // Both CIFAR-100 labels are checked whichever one is used: a bad byte in either means a corrupt record.
  struct LabelByte {
    size_t offset;  // within the record
    unsigned limit;
    const char* kind;
  };
  const std::vector<LabelByte> label_bytes =
      is_cifar10(v) ? std::vector<LabelByte>{{0, 10, "label"}}
                    : std::vector<LabelByte>{{0, 20, "coarse label"}, {1, 100, "fine label"}};
  for (size_t i = 0; i < n; ++i) {
    for (const LabelByte& label : label_bytes) {
      const size_t at = i * record + label.offset;
      if (p[at] >= label.limit) {
        throw InputError(path + ": record " + std::to_string(i) + " (byte offset " + std::to_string(at) + "): " +
                         label.kind + " " + std::to_string(p[at]) + " is out of range 0.." +
                         std::to_string(label.limit - 1) + " (a corrupt " + variant_name(v) +
                         " file, or the wrong variant)" + other_variant_hint(bytes.size(), v));
      }
    }
  }
  return static_cast<int64_t>(n);
}

// Decodes `n` checked records into rows [first, first + n) of `d`.
void decode_cifar(const std::string& bytes, int64_t n, CifarVariant v, Dataset& d, int64_t first) {
  std::array<float, 256> scale{};
  for (int k = 0; k < 256; ++k) scale[static_cast<size_t>(k)] = static_cast<float>(k) / 255.0f;
  const int64_t record = cifar_record_bytes(v);
  const int64_t label_bytes = record - kPixelBytes;
  // CIFAR-100 records hold the coarse label first, then the fine one.
  const int64_t label_index = v == CifarVariant::Cifar100Fine ? 1 : 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  float* px = d.images.f32() + first * kPixelBytes;
  int64_t* labels = d.labels.i64() + first;
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* rec = p + i * record;
    labels[i] = rec[label_index];
    // The record's pixels are already channel-planar and row-major, i.e. [3, 32, 32].
    const unsigned char* pixels = rec + label_bytes;
    float* out = px + i * kPixelBytes;
    for (int64_t k = 0; k < kPixelBytes; ++k) out[k] = scale[pixels[k]];
  }
}

Dataset empty_cifar(int64_t n, CifarVariant v, const std::string& source) {
  Dataset d;
  d.source = source;
  d.num_classes = cifar_num_classes(v);
  d.images = Tensor::empty({n, 3, 32, 32});
  d.labels = Tensor::empty({n}, DType::I64);
  return d;
}

}  // namespace

int64_t cifar_num_classes(CifarVariant v) {
  if (v == CifarVariant::Cifar10) return 10;
  return v == CifarVariant::Cifar100Fine ? 100 : 20;
}

int64_t cifar_record_bytes(CifarVariant v) { return is_cifar10(v) ? kPixelBytes + 1 : kPixelBytes + 2; }

Dataset parse_cifar(const std::string& path, const std::string& bytes, CifarVariant v) {
  const int64_t n = check_cifar(path, bytes, v);
  Dataset d = empty_cifar(n, v, path);
  decode_cifar(bytes, n, v, d, 0);
  return d;
}

Dataset load_cifar(const std::vector<std::string>& files, CifarVariant v) {
  LETHE_CHECK(!files.empty(), "load_cifar needs at least one file");
  // Every file is read and checked before the (single) image tensor is allocated.
  std::vector<std::string> contents;
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const std::string& path : files) {
    contents.push_back(read_file_bytes(path, kMaxFileBytes));
    counts.push_back(check_cifar(path, contents.back(), v));
    total += counts.back();
  }
  std::string source;
  for (const std::string& path : files) source += (source.empty() ? "" : ", ") + path;
  Dataset d = empty_cifar(total, v, source);
  int64_t first = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    decode_cifar(contents[f], counts[f], v, d, first);
    first += counts[f];
    std::string().swap(contents[f]);  // release each file once decoded
  }
  return d;
}

}  // namespace lethe
