// The GEMM convolution path (LETHE_CONV=gemm): im2col / col2im and the layout moves around the GEMMs. A group of
// `count` images is laid out side by side, [rows, count·P] with P = HO·WO, so one GEMM covers the whole group.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/elementwise.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

using kernels::Conv2dGeom;

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// col[k][j]: k = (c·KH + ki)·KW + kj, j = image·P + oh·WO + ow; zero where the tap falls in the padding.
__global__ void im2col_kernel(const float* __restrict__ x, float* __restrict__ col, Conv2dGeom g, int64_t n0,
                              int64_t count) {
  const int64_t P = g.ho * g.wo, cols = count * P, total = g.c * g.kh * g.kw * cols;
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t k = i / cols, j = i - k * cols;
    const int64_t img = n0 + j / P, p = j % P, oh = p / g.wo, ow = p % g.wo;
    const int64_t kj = k % g.kw, ki = (k / g.kw) % g.kh, c = k / (g.kw * g.kh);
    const int64_t ih = oh * g.stride - g.pad + ki, iw = ow * g.stride - g.pad + kj;
    col[i] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? x[((img * g.c + c) * g.h + ih) * g.w + iw] : 0.0f;
  }
}

// dx[img][c][ih][iw] = Σ over taps (ki, kj) whose output position exists, in (ki, kj) order as the CPU adds them.
__global__ void col2im_kernel(const float* __restrict__ col, float* __restrict__ dx, Conv2dGeom g, int64_t n0,
                              int64_t count) {
  const int64_t P = g.ho * g.wo, cols = count * P, total = count * g.c * g.h * g.w;
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t iw = i % g.w, ih = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c, local = i / (g.w * g.h * g.c);
    float s = 0.0f;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t oh_s = ih + g.pad - ki;
      if (oh_s < 0 || oh_s % g.stride != 0 || oh_s / g.stride >= g.ho) continue;
      const int64_t oh = oh_s / g.stride;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t ow_s = iw + g.pad - kj;
        if (ow_s < 0 || ow_s % g.stride != 0 || ow_s / g.stride >= g.wo) continue;
        const int64_t k = (c * g.kh + ki) * g.kw + kj;
        s += col[k * cols + local * P + oh * g.wo + ow_s / g.stride];
      }
    }
    dx[n0 * g.c * g.h * g.w + i] = s;
  }
}

__global__ void columns_to_nchw_kernel(const float* __restrict__ out, const float* __restrict__ bias,
                                       float* __restrict__ y, Conv2dGeom g, int64_t n0, int64_t count, bool relu) {
  const int64_t P = g.ho * g.wo, cols = count * P, total = count * g.o * P;
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t p = i % P, o = (i / P) % g.o, local = i / (P * g.o);
    float v = out[o * cols + local * P + p];
    if (bias) v += bias[o];
    y[n0 * g.o * P + i] = relu ? kernels::relu(v) : v;
  }
}

__global__ void nchw_to_columns_kernel(const float* __restrict__ dy, float* __restrict__ out, Conv2dGeom g,
                                       int64_t n0, int64_t count) {
  const int64_t P = g.ho * g.wo, cols = count * P, total = count * g.o * P;
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t p = i % P, o = (i / P) % g.o, local = i / (P * g.o);
    out[o * cols + local * P + p] = dy[n0 * g.o * P + i];
  }
}

}  // namespace

void im2col(const float* x, float* col, const Conv2dGeom& g, int64_t n0, int64_t count, cudaStream_t stream) {
  const int64_t total = g.c * g.kh * g.kw * count * g.ho * g.wo;
  if (total > 0) LETHE_LAUNCH(im2col_kernel, grid_for(total), kBlock, 0, stream, x, col, g, n0, count);
}

void col2im(const float* col, float* dx, const Conv2dGeom& g, int64_t n0, int64_t count, cudaStream_t stream) {
  const int64_t total = count * g.c * g.h * g.w;
  if (total > 0) LETHE_LAUNCH(col2im_kernel, grid_for(total), kBlock, 0, stream, col, dx, g, n0, count);
}

void columns_to_nchw(const float* out, const float* bias, float* y, const Conv2dGeom& g, int64_t n0, int64_t count,
                     bool relu, cudaStream_t stream) {
  const int64_t total = count * g.o * g.ho * g.wo;
  if (total > 0)
    LETHE_LAUNCH(columns_to_nchw_kernel, grid_for(total), kBlock, 0, stream, out, bias, y, g, n0, count, relu);
}

void nchw_to_columns(const float* dy, float* out, const Conv2dGeom& g, int64_t n0, int64_t count,
                     cudaStream_t stream) {
  const int64_t total = count * g.o * g.ho * g.wo;
  if (total > 0) LETHE_LAUNCH(nchw_to_columns_kernel, grid_for(total), kBlock, 0, stream, dy, out, g, n0, count);
}

}  // namespace lethe::LETHE_CUDA_NS
