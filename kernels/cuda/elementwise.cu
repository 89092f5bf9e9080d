// Elementwise ops and activations: grid-stride loops over the per-element math in kernels/elementwise.h.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/elementwise.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

__global__ void fill_kernel(float* y, int64_t n, float value) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = value;
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float alpha, const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] += alpha * x[i];
}

__global__ void scale_kernel(float* y, int64_t n, float alpha) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] *= alpha;
}

__global__ void clamp_kernel(float* y, int64_t n, float lo, float hi) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = kernels::clamp_value(y[i], lo, hi);
}

__global__ void add_image_prior_grad_kernel(const float* __restrict__ x, float* __restrict__ dx, int64_t n,
                                            int64_t height, int64_t width, float tv, float l2) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    dx[i] += kernels::image_prior_grad(x, i, height, width, tv, l2);
}

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = kernels::relu(x[i]);
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dx[i] = kernels::relu_backward(y[i], dy[i]);
}

__global__ void normalize_forward_kernel(const float* __restrict__ x, const float* __restrict__ mean,
                                         const float* __restrict__ inv_std, float* __restrict__ y, int64_t count,
                                         int64_t c, int64_t hw) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const int64_t ch = (i / hw) % c;
    y[i] = kernels::normalize(x[i], mean[ch], inv_std[ch]);
  }
}

__global__ void normalize_backward_kernel(const float* __restrict__ dy, const float* __restrict__ inv_std,
                                          float* __restrict__ dx, int64_t count, int64_t c, int64_t hw) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) dx[i] = dy[i] * inv_std[(i / hw) % c];
}

__global__ void bias_activation_kernel(float* y, const float* __restrict__ bias, int64_t count, int64_t channels,
                                       int64_t inner, bool relu) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    float v = y[i];
    if (bias) v += bias[(i / inner) % channels];
    y[i] = relu ? kernels::relu(v) : v;
  }
}

}  // namespace

void fill(float* y, int64_t n, float value, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(fill_kernel, grid_for(n), kBlock, 0, stream, y, n, value);
}

void add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(add_kernel, grid_for(n), kBlock, 0, stream, a, b, y, n);
}

void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(axpy_kernel, grid_for(n), kBlock, 0, stream, alpha, x, y, n);
}

void scale(float* y, int64_t n, float alpha, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(scale_kernel, grid_for(n), kBlock, 0, stream, y, n, alpha);
}

void clamp(float* y, int64_t n, float lo, float hi, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(clamp_kernel, grid_for(n), kBlock, 0, stream, y, n, lo, hi);
}

void add_image_prior_grad(const float* x, float* dx, int64_t n, int64_t height, int64_t width, float tv, float l2,
                          cudaStream_t stream) {
  if (n > 0)
    LETHE_LAUNCH(add_image_prior_grad_kernel, grid_for(n), kBlock, 0, stream, x, dx, n, height, width, tv, l2);
}

void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(relu_forward_kernel, grid_for(n), kBlock, 0, stream, x, y, n);
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(relu_backward_kernel, grid_for(n), kBlock, 0, stream, y, dy, dx, n);
}

void normalize_forward(const float* x, const float* mean, const float* inv_std, float* y, int64_t n, int64_t c,
                       int64_t hw, cudaStream_t stream) {
  const int64_t count = n * c * hw;
  if (count > 0) LETHE_LAUNCH(normalize_forward_kernel, grid_for(count), kBlock, 0, stream, x, mean, inv_std, y, count, c, hw);
}

void normalize_backward(const float* dy, const float* inv_std, float* dx, int64_t n, int64_t c, int64_t hw,
                        cudaStream_t stream) {
  const int64_t count = n * c * hw;
  if (count > 0) LETHE_LAUNCH(normalize_backward_kernel, grid_for(count), kBlock, 0, stream, dy, inv_std, dx, count, c, hw);
}

void bias_activation(float* y, const float* bias, int64_t count, int64_t channels, int64_t inner, bool relu,
                     cudaStream_t stream) {
  if (count <= 0 || (!bias && !relu)) return;
  LETHE_LAUNCH(bias_activation_kernel, grid_for(count), kBlock, 0, stream, y, bias, count, channels, inner, relu);
}

}  // namespace lethe::LETHE_CUDA_NS
