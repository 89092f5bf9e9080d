// Host stand-in for cub::WarpReduce (cub/warp/warp_reduce.cuh) in the kernel-simulator build.
//
// Same interface and contract as CUB's: the lanes of a logical warp (LOGICAL_WARP_THREADS consecutive threads, a
// power of two up to 32) call the same member together, and the result is valid in the logical warp's lane 0 only.
// It is built from the simulator's real __shfl_down_sync rendezvous, so a lane that skips the call is an error, and
// lanes past valid_items contribute nothing. Floating-point results in other lanes are NaN, so reading them is
// caught. In a partial last warp, the lanes that do not exist contribute nothing.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cub/block/block_reduce.cuh"  // sim_detail::BlockSum, not_thread0_result

namespace cub {
inline namespace lethe_sim {

template <typename T, int LOGICAL_WARP_THREADS = 32, int LEGACY_PTX_ARCH = 0>
class WarpReduce {
  static_assert(LOGICAL_WARP_THREADS >= 1 && LOGICAL_WARP_THREADS <= 32 &&
                    (LOGICAL_WARP_THREADS & (LOGICAL_WARP_THREADS - 1)) == 0,
                "cub::WarpReduce: the logical warp must be a power of two up to 32 threads");

 public:
  struct TempStorage {
    unsigned char unused;  // shuffles need no shared memory; CUB's type exists for the interface
  };

  __device__ explicit WarpReduce(TempStorage&) {}

  __device__ T Sum(T input) { return Reduce(input, sim_detail::BlockSum{}); }
  __device__ T Sum(T input, int valid_items) { return Reduce(input, sim_detail::BlockSum{}, valid_items); }
  template <typename ReductionOp>
  __device__ T Reduce(T input, ReductionOp op) {
    return Reduce(input, op, LOGICAL_WARP_THREADS);
  }
  // Reduces lanes 0..valid_items-1 of the logical warp (1 <= valid_items <= LOGICAL_WARP_THREADS).
  template <typename ReductionOp>
  __device__ T Reduce(T input, ReductionOp op, int valid_items) {
    if (valid_items < 1 || valid_items > LOGICAL_WARP_THREADS)
      throw std::invalid_argument("cub::WarpReduce: valid_items " + std::to_string(valid_items) + " outside 1.." +
                                  std::to_string(LOGICAL_WARP_THREADS));
    const unsigned linear =
        threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
    const int lane = static_cast<int>(linear % LOGICAL_WARP_THREADS);
    // The logical warp's lanes within the physical warp, as CUB names them; lanes of a partial last warp that do not
    // exist are not waited for.
    const unsigned first_lane = linear % 32 / LOGICAL_WARP_THREADS * LOGICAL_WARP_THREADS;
    const unsigned mask = LOGICAL_WARP_THREADS == 32 ? 0xffffffffu
                                                     : ((1u << LOGICAL_WARP_THREADS) - 1u) << first_lane;
    // Lanes past the end of a partial last warp do not exist: they contribute nothing.
    const unsigned block_threads = blockDim.x * blockDim.y * blockDim.z;
    const unsigned logical_start = linear - static_cast<unsigned>(lane);
    const int existing = static_cast<int>(block_threads - logical_start);
    const int valid = valid_items < existing ? valid_items : existing;
    for (int offset = 1; offset < LOGICAL_WARP_THREADS; offset <<= 1) {
      const T other = __shfl_down_sync(mask, input, offset, LOGICAL_WARP_THREADS);
      if (lane % (2 * offset) == 0 && lane + offset < valid) input = op(input, other);
    }
    return lane == 0 ? input : sim_detail::not_thread0_result(input);
  }
};

}  // namespace lethe_sim
}  // namespace cub
