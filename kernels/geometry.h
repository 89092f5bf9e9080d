#pragma once
#include <cstdint>

namespace lethe::kernels {

// Shapes of the spatial ops, NCHW. Computed once by the layer, shared by every backend.
struct Conv2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;   // input
  int64_t o = 0, kh = 0, kw = 0;        // output channels, kernel
  int64_t stride = 1, pad = 0;
  int64_t ho = 0, wo = 0;               // output spatial size

  static Conv2dGeom make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh, int64_t kw,
                         int64_t stride, int64_t pad) {
    Conv2dGeom g{n, c, h, w, o, kh, kw, stride, pad, 0, 0};
    g.ho = (h + 2 * pad - kh) / stride + 1;
    g.wo = (w + 2 * pad - kw) / stride + 1;
    return g;
  }
  int64_t col_rows() const { return c * kh * kw; }
  int64_t out_pixels() const { return ho * wo; }
};

struct Pool2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 0, kw = 0, stride = 1, pad = 0;
  int64_t ho = 0, wo = 0;

  static Pool2dGeom make(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t stride,
                         int64_t pad) {
    Pool2dGeom g{n, c, h, w, kh, kw, stride, pad, 0, 0};
    g.ho = (h + 2 * pad - kh) / stride + 1;  // floor mode, as PyTorch's default ceil_mode=False
    g.wo = (w + 2 * pad - kw) / stride + 1;
    return g;
  }
};

}  // namespace lethe::kernels
