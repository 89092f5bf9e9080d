#include "datasets/stl10.h"

#include <array>

#include "datasets/bytes.h"
#include "engine/error.h"

namespace lethe {

namespace {

constexpr int64_t kSide = 96;
constexpr int64_t kPlane = kSide * kSide;
constexpr int64_t kImageBytes = 3 * kPlane;
// train_X.bin is 138 MB; even the unlabelled split (2.8 GB) is below this.
constexpr size_t kMaxImageFileBytes = size_t(1) << 32;
constexpr size_t kMaxLabelFileBytes = size_t(1) << 26;

}  // namespace

Dataset parse_stl10(const std::string& x_path, const std::string& x_bytes, const std::string& y_path,
                    const std::string& y_bytes) {
  if (x_bytes.empty() || x_bytes.size() % kImageBytes != 0) {
    std::string msg = x_path + ": length " + std::to_string(x_bytes.size()) +
                      " bytes is not a positive multiple of the STL-10 image size " + std::to_string(kImageBytes) +
                      " (3 x 96 x 96 bytes)";
    if (!x_bytes.empty()) {
      msg += ": " + std::to_string(x_bytes.size() / kImageBytes) + " whole images and a partial image of " +
             std::to_string(x_bytes.size() % kImageBytes) + " bytes (truncated, or not an STL-10 X file)";
    }
    if (!y_bytes.empty() && y_bytes.size() % kImageBytes == 0) {
      msg += "; " + y_path + " has a length that fits images: are the X and y files swapped?";
    }
    throw InputError(msg);
  }
  const auto n = static_cast<int64_t>(x_bytes.size() / kImageBytes);
  if (static_cast<uint64_t>(n) != y_bytes.size()) {
    throw InputError(x_path + " holds " + std::to_string(n) + " images but " + y_path + " holds " +
                     std::to_string(y_bytes.size()) + " labels (one byte each); they must match");
  }
  const auto* y = reinterpret_cast<const unsigned char*>(y_bytes.data());
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] < 1 || y[i] > 10) {
      throw InputError(y_path + ": label " + std::to_string(y[i]) + " at byte offset " + std::to_string(i) +
                       " is out of range 1..10");
    }
  }

  Dataset d;
  d.source = x_path;
  d.num_classes = 10;
  d.labels = Tensor::empty({n}, DType::I64);
  int64_t* labels = d.labels.i64();
  for (int64_t i = 0; i < n; ++i) labels[i] = y[i] - 1;

  std::array<float, 256> scale{};
  for (int k = 0; k < 256; ++k) scale[static_cast<size_t>(k)] = static_cast<float>(k) / 255.0f;
  d.images = Tensor::empty({n, 3, kSide, kSide});
  float* px = d.images.f32();
  const auto* x = reinterpret_cast<const unsigned char*>(x_bytes.data());
  // Each stored plane is column-major (the row index varies fastest): byte (col, row) sits at col * 96 + row.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < 3; ++ch) {
      const unsigned char* plane = x + i * kImageBytes + ch * kPlane;
      float* out = px + i * kImageBytes + ch * kPlane;
      for (int64_t row = 0; row < kSide; ++row)
        for (int64_t col = 0; col < kSide; ++col) out[row * kSide + col] = scale[plane[col * kSide + row]];
    }
  }
  return d;
}

Dataset load_stl10(const std::string& x_path, const std::string& y_path) {
  const std::string x_bytes = read_file_bytes(x_path, kMaxImageFileBytes);
  const std::string y_bytes = read_file_bytes(y_path, kMaxLabelFileBytes);
  return parse_stl10(x_path, x_bytes, y_path, y_bytes);
}

}  // namespace lethe
