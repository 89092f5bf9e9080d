#include "datasets/png_grid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/safetensors.h"

// Static, so this copy of stb_image_write never clashes with another one linked into the same program.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace lethe {
namespace {

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

uint8_t to_byte(float v) {
  if (!(v > 0.0f)) return 0;  // NaN and negatives
  if (v >= 1.0f) return 255;
  return static_cast<uint8_t>(std::lround(v * 255.0f));
}

}  // namespace

std::string encode_png_grid(const Tensor& images, int64_t columns, int64_t scale, int64_t pad) {
  if (images.ndim() != 4) throw UsageError("PNG grid: images must be [N, C, H, W]");
  const Tensor host = images.device() == Device::CPU ? images : images.to_cpu();
  const int64_t n = host.dim(0), c = host.dim(1), h = host.dim(2), w = host.dim(3);
  if (c != 1 && c != 3) throw UsageError("PNG grid: images need 1 or 3 channels, not " + std::to_string(c));
  if (n < 1 || columns < 1 || scale < 1 || pad < 0) throw UsageError("PNG grid: nothing to draw");
  const int64_t cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  const int64_t cell_w = w * scale, cell_h = h * scale;
  const int64_t width = pad + cols * (cell_w + pad), height = pad + rows * (cell_h + pad);
  if (width > (1 << 15) || height > (1 << 15)) throw UsageError("PNG grid: the grid would exceed 32768 pixels a side");

  std::vector<uint8_t> pixels(static_cast<size_t>(width * height * c), 128);  // the grey gutter
  const float* x = host.f32();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = pad + (i / cols) * (cell_h + pad), left = pad + (i % cols) * (cell_w + pad);
    for (int64_t y = 0; y < cell_h; ++y)
      for (int64_t xx = 0; xx < cell_w; ++xx)
        for (int64_t ch = 0; ch < c; ++ch) {
          const float v = x[((i * c + ch) * h + y / scale) * w + xx / scale];
          pixels[static_cast<size_t>(((top + y) * width + left + xx) * c + ch)] = to_byte(v);
        }
  }
  std::string png;
  if (!stbi_write_png_to_func(append_bytes, &png, static_cast<int>(width), static_cast<int>(height),
                              static_cast<int>(c), pixels.data(), static_cast<int>(width * c)))
    throw Error(ExitCode::Other, "PNG grid: encoding failed");
  return png;
}

void write_png_grid(const std::string& path, const Tensor& images, int64_t columns, int64_t scale, int64_t pad) {
  write_file_atomic(path, encode_png_grid(images, columns, scale, pad));
}

}  // namespace lethe
