#pragma once
// What every CUDA kernel file shares: the launch geometry rules and the block/warp reductions.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cub/block/block_reduce.cuh>  // under the simulator: its stand-in in kernels/sim/include

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

// Block-wide sums in double over kBlock threads, the total valid in thread 0. CUB's BlockReduce adds in an order
// fixed by the block size, so the sums are deterministic. Usage:
//   __shared__ BlockSum::TempStorage storage;  const double total = BlockSum(storage).Sum(v);
// and __syncthreads() before using `storage` again.
using BlockSum = cub::BlockReduce<double, kBlock>;

}  // namespace lethe::LETHE_CUDA_NS
