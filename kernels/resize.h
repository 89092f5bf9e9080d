#pragma once
// Bilinear resampling weights, matching torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
// antialias=False) on the CPU: the same float arithmetic, clamping and blend order, so resized images agree with
// PyTorch's to the last bit in practice. One axis at a time; a 2-D sample blends two row samples.
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"

namespace lethe::kernels {

// The two source positions an output position reads along one axis, and the weight of the second (1 - lambda
// goes to the first). i1 == i0 at the far edge.
struct BilinearTap {
  int64_t i0, i1;
  float lambda;
};

// Output index `dst` of an axis resized from in_size to out_size (both >= 1).
LETHE_HD BilinearTap bilinear_tap(int64_t dst, int64_t in_size, int64_t out_size) {
  // PyTorch computes the scale and the source coordinate in float for float images.
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  float src = scale * (static_cast<float>(dst) + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int64_t i0 = static_cast<int64_t>(floorf(src));
  if (i0 > in_size - 1) i0 = in_size - 1;
  float lambda = src - static_cast<float>(i0);
  lambda = lambda < 0.0f ? 0.0f : (lambda > 1.0f ? 1.0f : lambda);
  const int64_t i1 = i0 < in_size - 1 ? i0 + 1 : i0;
  return BilinearTap{i0, i1, lambda};
}

// Blends the four neighbours: along the row first, then between the rows.
LETHE_HD float bilinear_blend(float v00, float v01, float v10, float v11, float lambda_y, float lambda_x) {
  const float wx0 = 1.0f - lambda_x, wy0 = 1.0f - lambda_y;
  return (v00 * wx0 + v01 * lambda_x) * wy0 + (v10 * wx0 + v11 * lambda_x) * lambda_y;
}

// One output pixel of a single [in_h, in_w] plane.
LETHE_HD float bilinear_sample(const float* plane, int64_t in_w, const BilinearTap& ty, const BilinearTap& tx) {
  const float* row0 = plane + ty.i0 * in_w;
  const float* row1 = plane + ty.i1 * in_w;
  return bilinear_blend(row0[tx.i0], row0[tx.i1], row1[tx.i0], row1[tx.i1], ty.lambda, tx.lambda);
}

}  // namespace lethe::kernels
