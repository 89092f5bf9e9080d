#include "datasets/unrelated.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "kernels/philox.h"
#include "kernels/resize.h"

namespace lethe {

namespace {

using kernels::philox4x32_10;
using kernels::philox_normal;
using kernels::philox_u01;
using kernels::philox_uniform;

constexpr uint64_t kMaxTotalPixels = uint64_t(1) << 31;
constexpr int kKindCount = 4;  // the concrete kinds Mixed cycles through, in enum order
constexpr int64_t kMinGrid = 4, kMaxGrid = 8;
constexpr float kTwoPi = 6.28318530717958647692f;

// Sequential uniform draws of one image: stream = image index, so an image never depends on n or on its neighbours.
struct ImageDraws {
  uint64_t seed, image;
  uint64_t next = 0;
  float uniform() { return philox_uniform(seed, image, next++); }
  // Integer in [0, count).
  int64_t below(int64_t count) {
    return std::min(count - 1, static_cast<int64_t>(uniform() * static_cast<float>(count)));
  }
  float between(float lo, float hi) { return lo + (hi - lo) * uniform(); }
};

struct Image {
  float* px;
  int64_t channels, height, width;
  int64_t plane() const { return height * width; }
};

void uniform_noise(const Image& im, uint64_t seed, uint64_t index) {
  const int64_t total = im.channels * im.plane();
  // Element j is philox_uniform(seed, index, j); one Philox block serves four elements.
  for (int64_t j = 0; j < total; j += 4) {
    const kernels::Philox4 block = philox4x32_10(seed, static_cast<uint64_t>(j) >> 2, index);
    for (int64_t t = 0; t < 4 && j + t < total; ++t) im.px[j + t] = philox_u01(block.v[t]);
  }
}

void gaussian_noise(const Image& im, uint64_t seed, uint64_t index) {
  const int64_t total = im.channels * im.plane();
  for (int64_t j = 0; j < total; ++j) {
    const float v = 0.5f + 0.25f * philox_normal(seed, index, static_cast<uint64_t>(j));
    im.px[j] = std::clamp(v, 0.0f, 1.0f);
  }
}

// A coarse grid of uniform values per channel (4..8 cells a side), upsampled bilinearly as an image resize would.
void smooth_noise(const Image& im, uint64_t seed, uint64_t index) {
  ImageDraws draws{seed, index};
  const int64_t grid_h = kMinGrid + draws.below(kMaxGrid - kMinGrid + 1);
  const int64_t grid_w = kMinGrid + draws.below(kMaxGrid - kMinGrid + 1);
  float grid[kMaxGrid * kMaxGrid];
  for (int64_t c = 0; c < im.channels; ++c) {
    for (int64_t k = 0; k < grid_h * grid_w; ++k) grid[k] = draws.uniform();
    float* out = im.px + c * im.plane();
    for (int64_t y = 0; y < im.height; ++y) {
      const kernels::BilinearTap ty = kernels::bilinear_tap(y, grid_h, im.height);
      for (int64_t x = 0; x < im.width; ++x) {
        const kernels::BilinearTap tx = kernels::bilinear_tap(x, grid_w, im.width);
        out[y * im.width + x] = std::clamp(kernels::bilinear_sample(grid, grid_w, ty, tx), 0.0f, 1.0f);
      }
    }
  }
}

enum class ShapeType { Rectangle, Ellipse, Line, Triangle };

// Distance from (px, py) to the segment (ax, ay)-(bx, by).
float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
  const float dx = bx - ax, dy = by - ay;
  const float len_sq = dx * dx + dy * dy;
  float t = len_sq > 0.0f ? ((px - ax) * dx + (py - ay) * dy) / len_sq : 0.0f;
  t = std::clamp(t, 0.0f, 1.0f);
  const float ex = px - (ax + t * dx), ey = py - (ay + t * dy);
  return std::sqrt(ex * ex + ey * ey);
}

float edge(float ax, float ay, float bx, float by, float px, float py) {
  return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

// A random background, then 1..4 filled shapes in random colours, painted over each other in order. Geometry is in
// pixel units; a pixel belongs to a shape when its centre does.
void shapes(const Image& im, uint64_t seed, uint64_t index) {
  ImageDraws draws{seed, index};
  const auto h = static_cast<float>(im.height), w = static_cast<float>(im.width);
  // Colours are drawn for the first 64 channels and repeat beyond; nothing real has that many.
  float background[64];
  const int64_t colour_channels = std::min<int64_t>(im.channels, 64);
  for (int64_t c = 0; c < colour_channels; ++c) background[c] = draws.uniform();
  for (int64_t c = 0; c < im.channels; ++c) {
    std::fill(im.px + c * im.plane(), im.px + (c + 1) * im.plane(), background[c % colour_channels]);
  }
  const int64_t count = 1 + draws.below(4);
  for (int64_t s = 0; s < count; ++s) {
    const auto type = static_cast<ShapeType>(draws.below(4));
    // Every shape takes the same draws (colour + 6 numbers), whichever type it is.
    // Each channel differs from the background's by 0.25..0.75 (wrapping around 1), so no shape is invisible.
    float colour[64];
    for (int64_t c = 0; c < colour_channels; ++c) {
      const float shifted = background[c] + 0.25f + 0.5f * draws.uniform();
      colour[c] = shifted >= 1.0f ? shifted - 1.0f : shifted;
    }
    float g[6];
    for (float& v : g) v = draws.uniform();

    // Shapes are centred away from the borders and sized to a fair part of the image, so each one shows.
    const float cx = (0.15f + 0.7f * g[0]) * w, cy = (0.15f + 0.7f * g[1]) * h;
    const float rx = (0.1f + 0.25f * g[2]) * w, ry = (0.1f + 0.25f * g[3]) * h;
    const float side = std::min(h, w);
    const float angle = kTwoPi * g[4];
    const float half_length = (0.2f + 0.25f * g[3]) * std::max(h, w);
    const float line_ax = cx - half_length * std::cos(angle), line_ay = cy - half_length * std::sin(angle);
    const float line_bx = cx + half_length * std::cos(angle), line_by = cy + half_length * std::sin(angle);
    const float half_thickness = std::max(1.0f, (0.03f + 0.06f * g[5]) * side);
    float tri_x[3], tri_y[3];
    for (int k = 0; k < 3; ++k) {
      const float radius = (0.2f + 0.25f * g[k == 0 ? 2 : (k == 1 ? 3 : 5)]) * side;
      const float theta = angle + static_cast<float>(k) * (kTwoPi / 3.0f);
      tri_x[k] = cx + radius * std::cos(theta);
      tri_y[k] = cy + radius * std::sin(theta);
    }

    for (int64_t y = 0; y < im.height; ++y) {
      const float py = static_cast<float>(y) + 0.5f;
      for (int64_t x = 0; x < im.width; ++x) {
        const float px = static_cast<float>(x) + 0.5f;
        bool inside = false;
        switch (type) {
          case ShapeType::Rectangle:
            inside = std::fabs(px - cx) <= rx && std::fabs(py - cy) <= ry;
            break;
          case ShapeType::Ellipse: {
            const float ex = (px - cx) / rx, ey = (py - cy) / ry;
            inside = ex * ex + ey * ey <= 1.0f;
            break;
          }
          case ShapeType::Line:
            inside = segment_distance(px, py, line_ax, line_ay, line_bx, line_by) <= half_thickness;
            break;
          case ShapeType::Triangle: {
            const float e0 = edge(tri_x[0], tri_y[0], tri_x[1], tri_y[1], px, py);
            const float e1 = edge(tri_x[1], tri_y[1], tri_x[2], tri_y[2], px, py);
            const float e2 = edge(tri_x[2], tri_y[2], tri_x[0], tri_y[0], px, py);
            inside = (e0 >= 0.0f && e1 >= 0.0f && e2 >= 0.0f) || (e0 <= 0.0f && e1 <= 0.0f && e2 <= 0.0f);
            break;
          }
        }
        if (!inside) continue;
        for (int64_t c = 0; c < im.channels; ++c) {
          im.px[c * im.plane() + y * im.width + x] = colour[c % colour_channels];
        }
      }
    }
  }
}

void generate(UnrelatedKind kind, const Image& im, uint64_t seed, uint64_t index) {
  switch (kind) {
    case UnrelatedKind::UniformNoise: uniform_noise(im, seed, index); return;
    case UnrelatedKind::GaussianNoise: gaussian_noise(im, seed, index); return;
    case UnrelatedKind::SmoothNoise: smooth_noise(im, seed, index); return;
    case UnrelatedKind::Shapes: shapes(im, seed, index); return;
    case UnrelatedKind::Mixed: generate(static_cast<UnrelatedKind>(index % kKindCount), im, seed, index); return;
  }
}

}  // namespace

UnrelatedKind parse_unrelated_kind(const std::string& text) {
  for (UnrelatedKind k : {UnrelatedKind::UniformNoise, UnrelatedKind::GaussianNoise, UnrelatedKind::SmoothNoise,
                          UnrelatedKind::Shapes, UnrelatedKind::Mixed}) {
    if (text == unrelated_kind_name(k)) return k;
  }
  throw UsageError("unknown unrelated image kind \"" + text +
                   "\" (expected one of: uniform, gaussian, smooth, shapes, mixed)");
}

std::string unrelated_kind_name(UnrelatedKind k) {
  switch (k) {
    case UnrelatedKind::UniformNoise: return "uniform";
    case UnrelatedKind::GaussianNoise: return "gaussian";
    case UnrelatedKind::SmoothNoise: return "smooth";
    case UnrelatedKind::Shapes: return "shapes";
    case UnrelatedKind::Mixed: return "mixed";
  }
  return "unknown";
}

Dataset make_unrelated(int64_t n, int64_t channels, int64_t height, int64_t width, UnrelatedKind kind,
                       uint64_t seed) {
  const std::string dims = std::to_string(n) + " x " + std::to_string(channels) + " x " + std::to_string(height) +
                           " x " + std::to_string(width);
  if (n < 1 || channels < 1 || height < 1 || width < 1) {
    throw UsageError("unrelated images need a positive count, channels, height and width; got " + dims);
  }
  uint64_t total = 1;
  for (int64_t d : {n, channels, height, width}) {
    // total <= 2^31 before the multiply and d is checked against 2^31 first, so nothing overflows 64 bits.
    if (static_cast<uint64_t>(d) > kMaxTotalPixels || total * static_cast<uint64_t>(d) > kMaxTotalPixels) {
      throw UsageError("unrelated images of " + dims + " are more than 2^31 pixels in total");
    }
    total *= static_cast<uint64_t>(d);
  }

  Dataset d;
  d.name = "unrelated-" + unrelated_kind_name(kind);
  d.source = "generated (seed " + std::to_string(seed) + ")";
  d.num_classes = 1;
  d.class_names = {"unrelated"};
  d.mean.assign(static_cast<size_t>(channels), 0.5f);
  d.std.assign(static_cast<size_t>(channels), 0.25f);
  d.labels = Tensor::zeros({n}, DType::I64);
  d.images = Tensor::empty({n, channels, height, width});
  float* px = d.images.f32();
  const int64_t per_image = channels * height * width;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    generate(kind, Image{px + i * per_image, channels, height, width}, seed, static_cast<uint64_t>(i));
  }
  return d;
}

}  // namespace lethe
