#pragma once
// Training-time augmentation as torchvision's RandomCrop(size, padding=pad) followed by RandomHorizontalFlip: each
// sample draws a crop offset in [0, 2*pad] per axis and a coin, from Philox keyed by (seed, epoch) and countered by
// the sample's index in the dataset, so the draw depends on nothing else (batch size, order, threads, device).
#include <cstdint>

#include "kernels/hd.h"
#include "kernels/philox.h"

namespace lethe::kernels {

struct AugmentDraw {
  int32_t dy = 0, dx = 0;  // top-left corner of the crop in the padded image, each in [0, 2*pad]
  bool flip = false;
};

// Philox stream for the augmentation draws; the key mixes the seed and the epoch.
constexpr uint64_t kAugmentStream = 0x6175676D656E74ull;  // "augment"

LETHE_HD AugmentDraw augment_draw(uint64_t seed, uint64_t epoch, uint64_t sample, int32_t pad, bool flip) {
  const Philox4 r = philox4x32_10(seed ^ (epoch * 0x9E3779B97F4A7C15ull), sample, kAugmentStream);
  AugmentDraw d;
  const uint64_t span = static_cast<uint64_t>(2 * pad + 1);
  // Multiply-shift maps a 32-bit word onto [0, span) without modulo bias worth the name (span <= 2^16).
  d.dy = static_cast<int32_t>((static_cast<uint64_t>(r.v[0]) * span) >> 32);
  d.dx = static_cast<int32_t>((static_cast<uint64_t>(r.v[1]) * span) >> 32);
  d.flip = flip && (r.v[2] & 1u);
  return d;
}

// Output pixel (y, x) of one augmented plane: crop at (dy, dx) of the zero-padded plane, then mirror. Zero padding
// is in pixel space ([0, 1]), as torchvision pads before ToTensor/Normalize.
LETHE_HD float augmented_pixel(const float* plane, int64_t h, int64_t w, int64_t y, int64_t x, AugmentDraw d,
                               int32_t pad) {
  const int64_t sx = (d.flip ? w - 1 - x : x) + d.dx - pad;
  const int64_t sy = y + d.dy - pad;
  return (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : 0.0f;
}

}  // namespace lethe::kernels
