// Max and average pooling, one thread per output (forward) or per input pixel (backward). Backward gathers the
// windows that cover each input pixel in increasing output order, so it adds the same terms in the same order as the
// CPU twin's scatter: bit-identical results and no atomics.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {

using kernels::Pool2dGeom;

__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Output rows (or columns) whose window covers input row i: [first, last], clipped to [0, out).
__device__ __forceinline__ void covering(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t out,
                                         int64_t& first, int64_t& last) {
  const int64_t lo = i + pad - k + 1;  // o·stride >= i + pad - k + 1
  first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  last = imin((i + pad) / stride, out - 1);
}

__global__ void maxpool2d_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                         int64_t* __restrict__ argmax, Pool2dGeom g, int64_t total) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = o % g.wo, oh = (o / g.wo) % g.ho, plane = o / (g.wo * g.ho);
    const float* xp = x + plane * g.h * g.w;
    const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
    const int64_t h1 = imin(h0 + g.kh, g.h), w1 = imin(w0 + g.kw, g.w);
    // The first maximum in window order; a NaN wins at once (PyTorch propagates NaN). -1: all padding.
    int64_t best = -1;
    float best_value = -INFINITY;
    for (int64_t ih = imax(h0, 0); ih < h1; ++ih) {
      for (int64_t iw = imax(w0, 0); iw < w1; ++iw) {
        const float v = xp[ih * g.w + iw];
        if (best < 0 || v > best_value || v != v) {
          best = ih * g.w + iw;
          best_value = v;
          if (v != v) break;
        }
      }
      if (best_value != best_value) break;
    }
    y[o] = best < 0 ? -INFINITY : best_value;
    if (argmax) argmax[o] = best;
  }
}

__global__ void maxpool2d_backward_kernel(const int64_t* __restrict__ argmax, const float* __restrict__ dy,
                                          float* __restrict__ dx, Pool2dGeom g, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t iw = i % g.w, ih = (i / g.w) % g.h, plane = i / (g.w * g.h);
    const int64_t self = ih * g.w + iw;
    const int64_t* ap = argmax + plane * g.ho * g.wo;
    const float* dyp = dy + plane * g.ho * g.wo;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.stride, g.pad, g.ho, oh0, oh1);
    covering(iw, g.kw, g.stride, g.pad, g.wo, ow0, ow1);
    float s = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (ap[oh * g.wo + ow] == self) s += dyp[oh * g.wo + ow];
    dx[i] = s;
  }
}

// count_include_pad = true: every window divides by kh·kw.
__global__ void avgpool2d_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Pool2dGeom g,
                                         int64_t total, float inv) {
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = o % g.wo, oh = (o / g.wo) % g.ho, plane = o / (g.wo * g.ho);
    const float* xp = x + plane * g.h * g.w;
    const int64_t h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
    float s = 0.0f;
    for (int64_t ih = imax(h0, 0); ih < imin(h0 + g.kh, g.h); ++ih)
      for (int64_t iw = imax(w0, 0); iw < imin(w0 + g.kw, g.w); ++iw) s += xp[ih * g.w + iw];
    y[o] = s * inv;
  }
}

__global__ void avgpool2d_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, Pool2dGeom g,
                                          int64_t total, float inv) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t iw = i % g.w, ih = (i / g.w) % g.h, plane = i / (g.w * g.h);
    const float* dyp = dy + plane * g.ho * g.wo;
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.stride, g.pad, g.ho, oh0, oh1);
    covering(iw, g.kw, g.stride, g.pad, g.wo, ow0, ow1);
    float s = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) s += dyp[oh * g.wo + ow] * inv;
    dx[i] = s;
  }
}

}  // namespace

void maxpool2d_forward(const float* x, float* y, int64_t* argmax, const Pool2dGeom& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.ho * g.wo;
  if (total > 0) LETHE_LAUNCH(maxpool2d_forward_kernel, grid_for(total), kBlock, 0, stream, x, y, argmax, g, total);
}

void maxpool2d_backward(const int64_t* argmax, const float* dy, float* dx, const Pool2dGeom& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total > 0) LETHE_LAUNCH(maxpool2d_backward_kernel, grid_for(total), kBlock, 0, stream, argmax, dy, dx, g, total);
}

void avgpool2d_forward(const float* x, float* y, const Pool2dGeom& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.ho * g.wo;
  const float inv = 1.0f / static_cast<float>(g.kh * g.kw);
  if (total > 0) LETHE_LAUNCH(avgpool2d_forward_kernel, grid_for(total), kBlock, 0, stream, x, y, g, total, inv);
}

void avgpool2d_backward(const float* dy, float* dx, const Pool2dGeom& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c * g.h * g.w;
  const float inv = 1.0f / static_cast<float>(g.kh * g.kw);
  if (total > 0) LETHE_LAUNCH(avgpool2d_backward_kernel, grid_for(total), kBlock, 0, stream, dy, dx, g, total, inv);
}

}  // namespace lethe::LETHE_CUDA_NS
