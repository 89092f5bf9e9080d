// Magnitude pruning on the device (kernels/prune.h): the histograms of the radix select (the host picks each digit
// from 256 counts, kernels::radix_select_kth), then the pruning elementwise. Twins of kernels/cpu/prune_cpu.cpp.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/prune.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

// Counts, per bin of digit `pass`, the magnitudes that share `prefix`: a block histogram in shared memory, added to
// the global one once per block (integer atomics: the counts do not depend on the order).
__global__ void magnitude_histogram_kernel(const float* __restrict__ w, int64_t n, uint32_t prefix, int pass,
                                           uint32_t* __restrict__ hist) {
  __shared__ uint32_t local[kernels::kRadixBins];
  for (int b = threadIdx.x; b < kernels::kRadixBins; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t key = kernels::magnitude_key(w[i]);
    if (kernels::radix_candidate(key, prefix, pass)) atomicAdd(&local[kernels::radix_bin(key, pass)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kernels::kRadixBins; b += blockDim.x)
    if (local[b] != 0) atomicAdd(&hist[b], local[b]);
}

__global__ void prune_magnitude_kernel(float* w, int64_t n, float threshold) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    w[i] = kernels::prune_value(w[i], threshold);
}

}  // namespace

void magnitude_histogram(const float* w, int64_t n, uint32_t prefix, int pass, uint32_t* hist,
                         cudaStream_t stream) {
  LETHE_CUDA_CHECK(cudaMemsetAsync(hist, 0, kernels::kRadixBins * sizeof(uint32_t), stream));
  if (n > 0) LETHE_LAUNCH(magnitude_histogram_kernel, grid_for(n), kBlock, 0, stream, w, n, prefix, pass, hist);
}

void prune_magnitude(float* w, int64_t n, float threshold, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(prune_magnitude_kernel, grid_for(n), kBlock, 0, stream, w, n, threshold);
}

}  // namespace lethe::LETHE_CUDA_NS
