#pragma once
// PNG grids of images (prototypes of the inversion attacks): [N, C, H, W] pixels in [0, 1], C = 1 (grey) or 3 (RGB),
// laid out `columns` to a row, each magnified `scale` times (nearest neighbour), with a `pad`-pixel grey gutter.
#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace lethe {

// The PNG file's bytes. Values outside [0, 1] are clamped; NaN is drawn black. Throws a UsageError for a shape it
// cannot draw (not 4-D, C not 1 or 3, or an image wider than PNG's limits).
std::string encode_png_grid(const Tensor& images, int64_t columns, int64_t scale = 1, int64_t pad = 2);

// encode_png_grid written to `path` atomically (a temporary file, then rename).
void write_png_grid(const std::string& path, const Tensor& images, int64_t columns, int64_t scale = 1,
                    int64_t pad = 2);

}  // namespace lethe
