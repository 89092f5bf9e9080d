// Philox fills: element i of (seed, stream) is kernels::philox_uniform / philox_normal(seed, stream, i), the same
// counter-based draw the CPU backend makes, so every element is independent of the launch shape.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/philox.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

__global__ void fill_uniform_kernel(float* __restrict__ y, int64_t n, float lo, float hi, uint64_t seed,
                                    uint64_t philox_stream) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = lo + (hi - lo) * kernels::philox_uniform(seed, philox_stream, static_cast<uint64_t>(i));
}

__global__ void fill_normal_kernel(float* __restrict__ y, int64_t n, float mean, float stddev, uint64_t seed,
                                   uint64_t philox_stream) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = mean + stddev * kernels::philox_normal(seed, philox_stream, static_cast<uint64_t>(i));
}

}  // namespace

void fill_uniform(float* y, int64_t n, float lo, float hi, uint64_t seed, uint64_t philox_stream,
                  cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(fill_uniform_kernel, grid_for(n), kBlock, 0, stream, y, n, lo, hi, seed, philox_stream);
}

void fill_normal(float* y, int64_t n, float mean, float stddev, uint64_t seed, uint64_t philox_stream,
                 cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(fill_normal_kernel, grid_for(n), kBlock, 0, stream, y, n, mean, stddev, seed, philox_stream);
}

}  // namespace lethe::LETHE_CUDA_NS
