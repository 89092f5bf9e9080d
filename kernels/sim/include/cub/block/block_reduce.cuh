// Host stand-in for cub::BlockReduce (cub/block/block_reduce.cuh) in the kernel-simulator build.
//
// Same interface and contract as CUB's: every thread of the block calls the same member, the result is valid in
// thread 0 only, and the caller must __syncthreads() before reusing the TempStorage. Each thread stores its input,
// the block meets at a real __syncthreads() (so a call from only some threads is the simulator's barrier error),
// and thread 0 folds the stored values warp by warp, then the warp totals, in a fixed order: deterministic, like
// CUB for a fixed block size, though the rounding differs from a GPU's. Floating-point results in threads other
// than 0 are NaN, so a kernel that reads them is caught. A block whose shape differs from the template's is an error
// (undefined behaviour in CUB).
#pragma once

#include <cuda_runtime.h>

#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace cub {
inline namespace lethe_sim {

enum BlockReduceAlgorithm { BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY, BLOCK_REDUCE_RAKING, BLOCK_REDUCE_WARP_REDUCTIONS };

namespace sim_detail {

struct BlockSum {
  template <typename T>
  T operator()(const T& a, const T& b) const {
    return a + b;
  }
};

// What threads other than 0 receive: NaN for floating point (reading it is a bug), the input otherwise.
template <typename T>
T not_thread0_result(const T& input) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::numeric_limits<T>::quiet_NaN();
  } else {
    return input;
  }
}

}  // namespace sim_detail

template <typename T, int BLOCK_DIM_X, BlockReduceAlgorithm ALGORITHM = BLOCK_REDUCE_WARP_REDUCTIONS,
          int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1, int LEGACY_PTX_ARCH = 0>
class BlockReduce {
  static constexpr int kThreads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
  static_assert(kThreads > 0 && kThreads <= 1024, "cub::BlockReduce: 1..1024 threads");

 public:
  struct TempStorage {
    T items[kThreads];
  };

  __device__ explicit BlockReduce(TempStorage& storage) : storage_(storage) { check_shape(); }
  __device__ BlockReduce() : storage_(private_storage()) { check_shape(); }

  __device__ T Sum(T input) { return Reduce(input, sim_detail::BlockSum{}); }
  __device__ T Sum(T input, int num_valid) { return Reduce(input, sim_detail::BlockSum{}, num_valid); }
  template <int ITEMS_PER_THREAD>
  __device__ T Sum(T (&inputs)[ITEMS_PER_THREAD]) {
    return Reduce(inputs, sim_detail::BlockSum{});
  }

  template <typename ReductionOp>
  __device__ T Reduce(T input, ReductionOp op) {
    return Reduce(input, op, kThreads);
  }
  template <int ITEMS_PER_THREAD, typename ReductionOp>
  __device__ T Reduce(T (&inputs)[ITEMS_PER_THREAD], ReductionOp op) {
    T partial = inputs[0];
    for (int i = 1; i < ITEMS_PER_THREAD; ++i) partial = op(partial, inputs[i]);
    return Reduce(partial, op, kThreads);
  }
  // Reduces the inputs of threads 0..num_valid-1 (num_valid >= 1; inputs of the others are not read).
  template <typename ReductionOp>
  __device__ T Reduce(T input, ReductionOp op, int num_valid) {
    const int tid = linear_thread();
    if (tid < num_valid) storage_.items[tid] = input;
    __syncthreads();
    if (tid != 0) return sim_detail::not_thread0_result(input);
    if (num_valid < 1 || num_valid > kThreads)
      throw std::invalid_argument("cub::BlockReduce: num_valid " + std::to_string(num_valid) + " outside 1.." +
                                  std::to_string(kThreads));
    // Warp totals first, then the warps in order: the shape of CUB's warp-reductions algorithm.
    T total{};
    for (int warp_start = 0; warp_start < num_valid; warp_start += warpSize) {
      const int warp_end = warp_start + warpSize < num_valid ? warp_start + warpSize : num_valid;
      T warp_total = storage_.items[warp_start];
      for (int i = warp_start + 1; i < warp_end; ++i) warp_total = op(warp_total, storage_.items[i]);
      total = warp_start == 0 ? warp_total : op(total, warp_total);
    }
    return total;
  }

 private:
  static int linear_thread() {
    return static_cast<int>(threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y);
  }
  static void check_shape() {
    if (blockDim.x != static_cast<unsigned>(BLOCK_DIM_X) || blockDim.y != static_cast<unsigned>(BLOCK_DIM_Y) ||
        blockDim.z != static_cast<unsigned>(BLOCK_DIM_Z))
      throw std::invalid_argument("cub::BlockReduce<" + std::to_string(BLOCK_DIM_X) + "," +
                                  std::to_string(BLOCK_DIM_Y) + "," + std::to_string(BLOCK_DIM_Z) +
                                  "> used in a block of " + std::to_string(blockDim.x) + "x" +
                                  std::to_string(blockDim.y) + "x" + std::to_string(blockDim.z) + " threads");
  }
  static TempStorage& private_storage() {
    __shared__ TempStorage storage;
    return storage;
  }

  TempStorage& storage_;
};

}  // namespace lethe_sim
}  // namespace cub
