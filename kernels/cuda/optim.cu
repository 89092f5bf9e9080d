// The fused optimizer and unlearning updates: one launch over the whole flat parameter arena, each element updated by
// the same kernels::sgd_update / adam_update / ascent_update the CPU backend calls.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/elementwise.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

__global__ void sgd_step_kernel(float* __restrict__ params, const float* __restrict__ grads,
                                float* __restrict__ momentum_buf, int64_t n, kernels::SgdHyper h) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    kernels::sgd_update(params[i], grads[i], momentum_buf[i], h);
}

__global__ void adam_step_kernel(float* __restrict__ params, const float* __restrict__ grads, float* __restrict__ m,
                                 float* __restrict__ v, int64_t n, kernels::AdamHyper h) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    kernels::adam_update(params[i], grads[i], m[i], v[i], h);
}

// Every thread derives the clip coefficient from the device-side sum of squares itself (one cached load), so the
// norm never has to visit the host before the update.
__global__ void ascent_step_kernel(float* __restrict__ params, const float* __restrict__ grads, int64_t n,
                                   const double* __restrict__ sum_squares, kernels::AscentHyper h) {
  const float coef = kernels::ascent_clip_coefficient(*sum_squares, h.max_norm);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    kernels::ascent_update(params[i], grads[i], coef, static_cast<uint64_t>(i), h);
}

}  // namespace

void sgd_step(float* params, const float* grads, float* momentum_buf, int64_t n, const kernels::SgdHyper& h,
              cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(sgd_step_kernel, grid_for(n), kBlock, 0, stream, params, grads, momentum_buf, n, h);
}

void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const kernels::AdamHyper& h,
               cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(adam_step_kernel, grid_for(n), kBlock, 0, stream, params, grads, m, v, n, h);
}

void ascent_step(float* params, const float* grads, int64_t n, const double* sum_squares, const kernels::AscentHyper& h,
                 cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(ascent_step_kernel, grid_for(n), kBlock, 0, stream, params, grads, n, sum_squares, h);
}

}  // namespace lethe::LETHE_CUDA_NS
