#include "datasets/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <system_error>
#include <tuple>
#include <vector>

#include "datasets/bytes.h"
#include "engine/error.h"
#include "kernels/resize.h"

// Declarations only: the decoder is compiled in stb_image_impl.cpp.
#define STBI_NO_STDIO
#include <stb_image.h>

namespace lethe {

namespace {

namespace fs = std::filesystem;

// More pixels than this in one image is a forged header or not a training image; 2^26 pixels of RGBA is the
// largest buffer stb_image is then asked for (256 MiB).
constexpr uint64_t kMaxImagePixels = uint64_t(1) << 26;
// An image file larger than this is not a training image.
constexpr uint64_t kMaxImageFileBytes = uint64_t(256) << 20;
// The whole decoded folder as f32; beyond this the user wants --resize (or a smaller folder).
constexpr uint64_t kMaxFolderElements = uint64_t(1) << 33;
constexpr int64_t kMaxResizeSide = 4096;

struct ImageInfo {
  int64_t height = 0, width = 0;
  int channels = 0;  // as stored: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
};

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

int checked_length(const std::string& name, const std::string& bytes) {
  if (bytes.empty()) throw InputError(name + ": empty file (expected a PNG, JPEG or BMP image)");
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    throw InputError(name + ": " + std::to_string(bytes.size()) + " bytes is too large for an image file");
  }
  return static_cast<int>(bytes.size());
}

// stb_image grows its buffer to a PNG chunk's declared length before checking that the bytes exist, so a forged
// length in a tiny file asks for gigabytes. Every chunk (length, type, data, CRC) must fit in the file.
void check_png_chunks(const std::string& name, const std::string& bytes) {
  static const char kSignature[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() < 8 || bytes.compare(0, 8, kSignature, 8) != 0) return;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  uint64_t at = 8;
  while (at + 8 <= bytes.size()) {
    const uint64_t length = load_u32(p + at, /*big_endian=*/true);
    if (length > bytes.size() - at - 8 || bytes.size() - at - 8 - length < 4) {
      throw InputError(name + ": PNG chunk at byte offset " + std::to_string(at) + " declares " +
                       std::to_string(length) + " data bytes, but only " + std::to_string(bytes.size() - at - 8) +
                       " bytes follow its header (a truncated or corrupt file)");
    }
    if (bytes.compare(at + 4, 4, "IEND") == 0) return;
    at += 12 + length;
  }
}

// stb_image 2.27 (the version Debian ships) has two Huffman-table faults, both fixed upstream in 2.28: it writes past
// a table when a JPEG DHT segment defines more than 256 codes, and it decodes a scan with a table no DHT segment
// defined, whose contents are then whatever its (uninitialised) allocation held, so a symbol index can leave the
// table. This walks the markers the way stb's decoder does, so it sees every DHT and SOS stb would process, and
// refuses either fault before stb reads the file. Where stb would give up, the walk stops or, where simpler,
// carries on: checking more than stb reads is harmless.
// A scan header (SOS at byte offset `sos`) names a DC and an AC table per component; stb decodes with the DC table
// in baseline scans and first DC scans of progressive ones, and with the AC table in baseline and AC scans.
void check_scan_tables(const std::string& name, const std::string& bytes, size_t sos, bool progressive,
                       const bool (&defined)[2][4]) {
  const auto at = [&](size_t i) -> unsigned { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0; };
  const unsigned components = at(sos + 4);
  if (components < 1 || components > 4) return;  // stb refuses the scan
  const size_t selection = sos + 5 + 2 * size_t{components};  // spectral start, end, successive approximation
  const unsigned spectral_start = at(selection), high_bit = at(selection + 2) >> 4;
  const bool uses_dc = !progressive || (spectral_start == 0 && high_bit == 0);  // DC refinement reads raw bits
  const bool uses_ac = !progressive || spectral_start > 0;
  for (unsigned i = 0; i < components; ++i) {
    const unsigned tables = at(sos + 6 + 2 * i), dc = tables >> 4, ac = tables & 15;
    if (dc > 3 || ac > 3) return;  // stb refuses the scan
    for (const auto& [used, table_class, id] : {std::tuple{uses_dc, 0u, dc}, std::tuple{uses_ac, 1u, ac}}) {
      if (used && !defined[table_class][id]) {
        throw InputError(name + ": corrupt JPEG: the scan at byte offset " + std::to_string(sos) + " decodes with " +
                         (table_class == 0 ? "DC" : "AC") + " Huffman table " + std::to_string(id) +
                         ", which no DHT segment before it defines");
      }
    }
  }
}

void check_jpeg_huffman_tables(const std::string& name, const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  const auto at = [&](size_t i) -> uint64_t { return i < size ? b[i] : 0; };  // stb reads zeros past the end
  const auto be16 = [&](size_t i) { return (at(i) << 8) | at(i + 1); };
  if (size < 2 || b[0] != 0xFF) return;  // stb needs FF (FF...) D8 at the start
  size_t pos = 0;
  bool first = true;
  bool progressive = false;
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][table id]
  for (;;) {
    // stbi__get_marker: skip bytes up to an FF (stb does so before the frame header and gives up after it), then
    // FF fill bytes; the next byte is the marker.
    while (pos < size && b[pos] != 0xFF) ++pos;
    while (pos < size && b[pos] == 0xFF) ++pos;
    if (pos >= size) return;
    const unsigned marker = b[pos++];
    if (first) {
      if (marker != 0xD8) return;  // no SOI: stb refuses the file
      first = false;
      continue;
    }
    if (marker == 0xC4) {  // DHT: tables of 1 + 16 + n bytes until the segment length is used up
      const size_t segment = pos - 2;
      int64_t remaining = static_cast<int64_t>(be16(pos)) - 2;
      pos += 2;
      while (remaining > 0) {
        const uint64_t table_class = at(pos) >> 4, table_id = at(pos) & 15;
        if (table_class > 1 || table_id > 3) return;  // stb refuses the segment
        defined[table_class][table_id] = true;
        uint64_t codes = 0;
        for (size_t i = 0; i < 16; ++i) codes += at(pos + 1 + i);
        if (codes > 256) {
          throw InputError(name + ": corrupt JPEG: the Huffman table (DHT segment at byte offset " +
                           std::to_string(segment) + ") defines " + std::to_string(codes) +
                           " codes, at most 256 are possible");
        }
        pos += 17 + codes;
        remaining -= 17 + static_cast<int64_t>(codes);
      }
      if (remaining != 0) return;  // stb refuses the segment
    } else if (marker == 0xDB) {  // DQT: tables of 65 or 129 bytes
      int64_t remaining = static_cast<int64_t>(be16(pos)) - 2;
      pos += 2;
      while (remaining > 0) {
        const uint64_t precision = at(pos) >> 4;
        if (precision > 1) return;  // stb refuses the segment
        pos += precision ? 129 : 65;
        remaining -= precision ? 129 : 65;
      }
      if (remaining != 0) return;
    } else if (marker == 0xDD || marker == 0xDC) {  // DRI, DNL: 4 bytes
      pos += 4;
    } else if ((marker >= 0xE0 && marker <= 0xEF) || marker == 0xFE || marker == 0xC0 || marker == 0xC1 ||
               marker == 0xC2) {  // APPn, COM, SOF0..2: skipped by their length
      if (marker == 0xC2) progressive = true;
      const uint64_t length = be16(pos);
      if (length < 2) return;
      pos += length;
    } else if (marker == 0xDA) {  // SOS: the scan header, then entropy-coded data
      check_scan_tables(name, bytes, pos - 2, progressive, defined);
      pos += be16(pos);
      // The entropy decoder reads FF 00 (a stuffed FF) and FF Dn (restart) as data and stops at the first other
      // marker, or earlier; in both cases the next marker stb processes is that one.
      for (;;) {
        while (pos < size && b[pos] != 0xFF) ++pos;
        const size_t run = pos;
        while (pos < size && b[pos] == 0xFF) ++pos;
        if (pos >= size) return;
        if (b[pos] == 0x00 || (b[pos] >= 0xD0 && b[pos] <= 0xD7)) {
          ++pos;
          continue;
        }
        pos = run;
        break;
      }
    } else {
      return;  // EOI, or a marker stb does not know: it stops there
    }
  }
}

// The densest coding of each format: BMP stores at least 1 bit per pixel; deflate (PNG) expands at most 1032:1 on
// 1-bit pixels; a baseline JPEG block costs at least 2 bits (DC and end-of-block codes) per 64 pixels.
uint64_t max_pixels_per_byte(const std::string& bytes) {
  if (bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return 8;
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0xFF && static_cast<unsigned char>(bytes[1]) == 0xD8)
    return 256;
  return 8 * 1032;
}

// Reads the header only: dimensions and stored channels, with absurd sizes refused before any pixel is decoded.
// Every decode goes through here first.
ImageInfo probe_image(const std::string& name, const std::string& bytes) {
  const int length = checked_length(name, bytes);
  check_jpeg_huffman_tables(name, bytes);
  check_png_chunks(name, bytes);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), length, &w, &h, &comp)) {
    throw InputError(name + ": cannot decode image (" + stb_reason() + "); expected a PNG, JPEG or BMP file");
  }
  if (w <= 0 || h <= 0) {
    throw InputError(name + ": image header gives dimensions " + size_str(h, w) + " (height x width), not positive");
  }
  const uint64_t pixels = static_cast<uint64_t>(w) * static_cast<uint64_t>(h);
  if (pixels > kMaxImagePixels) {
    throw InputError(name + ": image header gives dimensions " + size_str(h, w) + " (height x width), " +
                     std::to_string(pixels) + " pixels, over the limit of 2^26 (a corrupt header, or not an image " +
                     "meant for training)");
  }
  if (comp < 1 || comp > 4) {
    throw InputError(name + ": image header gives " + std::to_string(comp) + " channels (expected 1 to 4)");
  }
  // stb fills pixels past a truncated file's end with zeros, so a tiny file with a forged header would decode to a
  // huge image. No real file encodes more pixels per byte than its format's densest coding allows.
  const uint64_t max_per_byte = max_pixels_per_byte(bytes);
  if (pixels > max_per_byte * bytes.size()) {
    throw InputError(name + ": image header gives dimensions " + size_str(h, w) + " (height x width), more than " +
                     "its " + std::to_string(bytes.size()) + " bytes can hold (" + std::to_string(max_per_byte) +
                     " pixels per byte at most for this format): a truncated or forged file");
  }
  return ImageInfo{h, w, comp};
}

int decode_channels(const ImageInfo& info) { return info.channels <= 2 ? 1 : 3; }

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// Decodes into `out`, planar [channels, H, W] f32 in [0, 1]; the image must have the size `info` announced.
// `info` must come from probe_image on the same bytes, which refuses what stb cannot decode safely.
void decode_into(const std::string& name, const std::string& bytes, const ImageInfo& info, int channels,
                 float* out) {
  const int length = checked_length(name, bytes);
  int w = 0, h = 0, stored = 0;
  std::unique_ptr<stbi_uc, StbFree> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), length, &w, &h, &stored, channels));
  if (!pixels) throw InputError(name + ": cannot decode image (" + stb_reason() + ")");
  if (w != info.width || h != info.height) {
    throw InputError(name + ": decoded size " + size_str(h, w) + " differs from its header's " +
                     size_str(info.height, info.width) + " (the file changed while loading?)");
  }
  const int64_t plane = info.height * info.width;
  const stbi_uc* src = pixels.get();
  for (int c = 0; c < channels; ++c) {
    float* dst = out + c * plane;
    for (int64_t p = 0; p < plane; ++p) dst[p] = static_cast<float>(src[p * channels + c]) / 255.0f;
  }
}

// Planar bilinear resize of `channels` planes; the taps along x are shared by every row.
void resize_planes(const float* src, int64_t channels, int64_t in_h, int64_t in_w, float* dst, int64_t out_h,
                   int64_t out_w) {
  if (in_h == out_h && in_w == out_w) {
    std::memcpy(dst, src, static_cast<size_t>(channels * in_h * in_w) * sizeof(float));
    return;
  }
  std::vector<kernels::BilinearTap> taps_x(static_cast<size_t>(out_w));
  for (int64_t x = 0; x < out_w; ++x) taps_x[static_cast<size_t>(x)] = kernels::bilinear_tap(x, in_w, out_w);
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = src + c * in_h * in_w;
    float* out = dst + c * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      const kernels::BilinearTap ty = kernels::bilinear_tap(y, in_h, out_h);
      for (int64_t x = 0; x < out_w; ++x) {
        out[y * out_w + x] = kernels::bilinear_sample(plane, in_w, ty, taps_x[static_cast<size_t>(x)]);
      }
    }
  }
}


bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Entry names of `dir` (sorted, byte order) that pass `keep`. Filesystem errors become InputErrors naming `dir`.
template <class Keep>
std::vector<std::string> sorted_entries(const fs::path& dir, Keep keep) {
  std::vector<std::string> names;
  try {
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      if (is_hidden(entry.path())) continue;
      if (keep(entry)) names.push_back(entry.path().filename().string());
    }
  } catch (const fs::filesystem_error& e) {
    throw InputError(dir.string() + ": cannot list the directory (" + e.code().message() + ")");
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool is_directory_entry(const fs::directory_entry& entry) {
  std::error_code ec;
  return entry.is_directory(ec);
}

bool is_image_file_entry(const fs::directory_entry& entry) {
  std::error_code ec;
  return entry.is_regular_file(ec) && has_image_extension(entry.path());
}

// Runs fn(i) for i in [0, n) on the OpenMP team. The exception of the lowest failing index is rethrown, whatever
// the thread count, so errors are reproducible; indices above a known failure are skipped.
template <class Fn>
void parallel_for_first_error(int64_t n, Fn fn) {
  std::atomic<int64_t> first_failed{n};
  std::mutex mutex;
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t i = 0; i < n; ++i) {
    if (i > first_failed.load(std::memory_order_relaxed)) continue;
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (i < first_failed.load(std::memory_order_relaxed)) {
        first_failed.store(i, std::memory_order_relaxed);
        failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

ImageSize parse_image_size(const std::string& text) {
  const auto fail = [&]() -> UsageError {
    return UsageError("image size must be HEIGHTxWIDTH, e.g. 32x32, each between 1 and " +
                      std::to_string(kMaxResizeSide) + "; got \"" + text + "\"");
  };
  const size_t x = text.find('x');
  if (x == std::string::npos) throw fail();
  const auto parse_side = [&](size_t begin, size_t end) {
    if (begin >= end || end - begin > 9) throw fail();
    for (size_t i = begin; i < end; ++i) {
      if (text[i] < '0' || text[i] > '9') throw fail();
    }
    int64_t value = 0;
    std::from_chars(text.data() + begin, text.data() + end, value);
    if (value < 1 || value > kMaxResizeSide) throw fail();
    return value;
  };
  ImageSize size;
  size.height = parse_side(0, x);
  size.width = parse_side(x + 1, text.size());
  return size;
}

Tensor decode_image(const std::string& name, const std::string& bytes) {
  const ImageInfo info = probe_image(name, bytes);
  const int channels = decode_channels(info);
  Tensor image = Tensor::empty({channels, info.height, info.width});
  decode_into(name, bytes, info, channels, image.f32());
  return image;
}

Tensor resize_bilinear(const Tensor& image, ImageSize to) {
  LETHE_CHECK(image.ndim() == 3 && image.dtype() == DType::F32 && image.device() == Device::CPU,
              "resize_bilinear takes a CPU f32 [C, H, W] image, got " + shape_str(image.shape()));
  if (to.empty()) return image.clone();
  LETHE_CHECK(to.height > 0 && to.width > 0, "resize_bilinear to " + size_str(to.height, to.width));
  const int64_t c = image.dim(0), h = image.dim(1), w = image.dim(2);
  LETHE_CHECK(h > 0 && w > 0, "resize_bilinear of an empty image " + shape_str(image.shape()));
  Tensor out = Tensor::empty({c, to.height, to.width});
  resize_planes(image.f32(), c, h, w, out.f32(), to.height, to.width);
  return out;
}

Dataset load_image_folder(const std::string& root, ImageSize resize) {
  if (!resize.empty() && (resize.height < 1 || resize.width < 1 || resize.height > kMaxResizeSide ||
                          resize.width > kMaxResizeSide)) {
    throw UsageError("image size " + size_str(resize.height, resize.width) + " is outside 1..4096");
  }
  const fs::path root_path(root);
  std::error_code ec;
  const fs::file_status root_status = fs::status(root_path, ec);
  if (root_status.type() == fs::file_type::not_found) {
    throw InputError(root + ": no such directory (expected an image folder ROOT/CLASS_NAME/*.png)");
  }
  if (ec) throw InputError(root + ": cannot open (" + ec.message() + ")");
  if (!fs::is_directory(root_status)) {
    throw InputError(root + ": not a directory (expected an image folder ROOT/CLASS_NAME/*.png)");
  }

  const std::vector<std::string> class_names = sorted_entries(root_path, is_directory_entry);
  if (class_names.empty()) {
    throw InputError(root + ": no class directories; expected the layout ROOT/CLASS_NAME/*.png (or .jpg, .jpeg, "
                            ".bmp), one sub-directory per class");
  }
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  for (size_t k = 0; k < class_names.size(); ++k) {
    const fs::path class_dir = root_path / class_names[k];
    const std::vector<std::string> files = sorted_entries(class_dir, is_image_file_entry);
    if (files.empty()) {
      throw InputError(class_dir.string() + ": class directory holds no images (expected *.png, *.jpg, *.jpeg or "
                                            "*.bmp files)");
    }
    for (const std::string& f : files) {
      paths.push_back((class_dir / f).string());
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  const auto n = static_cast<int64_t>(paths.size());

  // Pass 1: headers only, so the channel count and the total size are known before the tensor is allocated.
  std::vector<ImageInfo> infos(static_cast<size_t>(n));
  parallel_for_first_error(n, [&](int64_t i) {
    const std::string& path = paths[static_cast<size_t>(i)];
    infos[static_cast<size_t>(i)] = probe_image(path, read_file_bytes(path, kMaxImageFileBytes));
  });

  int64_t channels = 1;
  for (const ImageInfo& info : infos) channels = std::max<int64_t>(channels, decode_channels(info));
  int64_t height = resize.height, width = resize.width;
  if (resize.empty()) {
    height = infos[0].height;
    width = infos[0].width;
    for (int64_t i = 1; i < n; ++i) {
      const ImageInfo& info = infos[static_cast<size_t>(i)];
      if (info.height != height || info.width != width) {
        throw InputError(paths[static_cast<size_t>(i)] + " is " + size_str(info.height, info.width) +
                         " (height x width) but " + paths[0] + " is " + size_str(height, width) +
                         "; all images must have the same size, or pass --resize HxW (e.g. --resize " +
                         size_str(height, width) + ") to resize them");
      }
    }
  }
  const uint64_t per_image = static_cast<uint64_t>(channels * height * width);  // <= 3 * 2^26
  if (per_image * static_cast<uint64_t>(n) > kMaxFolderElements) {
    throw InputError(root + ": " + std::to_string(n) + " images of " + std::to_string(channels) + "x" +
                     size_str(height, width) + " need " + std::to_string(per_image * static_cast<uint64_t>(n) * 4) +
                     " bytes as f32, over the limit of 2^35; pass --resize HxW to make them smaller");
  }

  Dataset d;
  d.name = "folder";
  d.source = root;
  d.class_names = class_names;
  d.num_classes = static_cast<int64_t>(class_names.size());
  d.labels = Tensor::from_labels(labels);
  d.images = Tensor::empty({n, channels, height, width});
  float* pixels = d.images.f32();
  // Per-image sums (Σx, Σx²) per channel, added up in index order afterwards so the statistics do not depend on
  // the thread count.
  std::vector<double> sums(static_cast<size_t>(n * channels * 2));

  // Pass 2: decode each image straight into its slice (through a scratch buffer when it is resized).
  parallel_for_first_error(n, [&](int64_t i) {
    const std::string& path = paths[static_cast<size_t>(i)];
    const ImageInfo& info = infos[static_cast<size_t>(i)];
    float* out = pixels + i * static_cast<int64_t>(per_image);
    const std::string bytes = read_file_bytes(path, kMaxImageFileBytes);
    const ImageInfo now = probe_image(path, bytes);
    if (now.height != info.height || now.width != info.width) {
      throw InputError(path + ": the image changed while loading (" + size_str(info.height, info.width) + ", now " +
                       size_str(now.height, now.width) + ")");
    }
    if (info.height == height && info.width == width) {
      decode_into(path, bytes, info, static_cast<int>(channels), out);
    } else {
      std::vector<float> scratch(static_cast<size_t>(channels * info.height * info.width));
      decode_into(path, bytes, info, static_cast<int>(channels), scratch.data());
      resize_planes(scratch.data(), channels, info.height, info.width, out, height, width);
    }
    for (int64_t c = 0; c < channels; ++c) {
      double sum = 0.0, sum_sq = 0.0;
      const float* plane = out + c * height * width;
      for (int64_t p = 0; p < height * width; ++p) {
        sum += plane[p];
        sum_sq += static_cast<double>(plane[p]) * plane[p];
      }
      sums[static_cast<size_t>((i * channels + c) * 2)] = sum;
      sums[static_cast<size_t>((i * channels + c) * 2 + 1)] = sum_sq;
    }
  });

  const double count = static_cast<double>(n) * static_cast<double>(height * width);
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0, sum_sq = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      sum += sums[static_cast<size_t>((i * channels + c) * 2)];
      sum_sq += sums[static_cast<size_t>((i * channels + c) * 2 + 1)];
    }
    const double mean = sum / count;
    const double stddev = std::sqrt(std::max(0.0, sum_sq / count - mean * mean));
    d.mean.push_back(static_cast<float>(mean));
    // A constant channel would make the model divide by zero; it then only gets centred.
    d.std.push_back(stddev > 1e-6 ? static_cast<float>(stddev) : 1.0f);
  }
  return d;
}

}  // namespace lethe
