#pragma once
// What every CUDA kernel file shares: the launch geometry rules and the block/warp reductions.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cstdint>

namespace lethe::LETHE_CUDA_NS {

// Threads per block of the 1-d kernels; the reductions below are written for exactly this size.
constexpr int kBlock = 256;

// Blocks for a grid-stride loop over n elements. The cap keeps grids of huge tensors bounded; it depends only on
// n, so reductions that split work by block stay deterministic.
inline unsigned grid_for(int64_t n, int64_t cap = 4096) {
  int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

// Sum over the 32 lanes of a warp, result in every lane (butterfly, a fixed order: deterministic).
template <typename T>
__device__ __forceinline__ T warp_sum_all(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max_all(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum of v over a block of kBlock threads, valid in thread 0: warp butterflies, then thread 0 adds the warp totals
// in warp order (a fixed order: deterministic). `warp_totals` is __shared__ double[kBlock / 32]; the caller
// __syncthreads() before reusing it.
__device__ __forceinline__ double block_sum(double v, double* warp_totals) {
  v = warp_sum_all(v);
  if (threadIdx.x % 32 == 0) warp_totals[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kBlock / 32; ++w) total += warp_totals[w];
  return total;
}

}  // namespace lethe::LETHE_CUDA_NS
