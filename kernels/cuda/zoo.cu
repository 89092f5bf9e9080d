// ZOO's two passes on the device (kernels/zoo.h), twins of kernels/cpu/zoo_cpu.cpp: one thread per query pixel, then
// one per drawn coordinate (a probe's coordinates are distinct, so no two threads touch the same pixel).
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/zoo.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

__global__ void zoo_queries_kernel(const float* __restrict__ x, const int64_t* __restrict__ rows,
                                   const int64_t* __restrict__ coords, int64_t coords_per_probe, int64_t pixels,
                                   float h, float* __restrict__ queries, int64_t total) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t q = e / pixels, d = e % pixels;
    const int64_t a = q / (2 * coords_per_probe), j = (q % (2 * coords_per_probe)) / 2;
    queries[e] = kernels::zoo_query_value(x[rows[a] * pixels + d], d, coords[a * coords_per_probe + j], q % 2, h);
  }
}

__global__ void zoo_step_kernel(float* __restrict__ x, const int64_t* __restrict__ rows,
                                const int64_t* __restrict__ coords, const float* __restrict__ logits,
                                const int64_t* __restrict__ labels, const float* __restrict__ lr,
                                float* __restrict__ state, int64_t probes, int64_t items, int64_t coords_per_probe,
                                int64_t pixels, int64_t num_logits, kernels::ZooHyper hp) {
  const int64_t plane = probes * pixels;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t probe = rows[item / coords_per_probe];
    const int64_t i = probe * pixels + coords[item];
    const float* plus = logits + (2 * item) * num_logits;
    const float g = kernels::zoo_gradient_estimate(plus, plus + num_logits, num_logits, labels[probe], hp.h);
    x[i] = kernels::zoo_adam_coordinate(x[i], g, lr[probe], state[i], state[plane + i], state[2 * plane + i],
                                        state[3 * plane + i], hp);
  }
}

}  // namespace

void zoo_queries(const float* x, const int64_t* rows, const int64_t* coords, int64_t active, int64_t coords_per_probe,
                 int64_t pixels, float h, float* queries, cudaStream_t stream) {
  const int64_t total = active * 2 * coords_per_probe * pixels;
  if (total > 0)
    LETHE_LAUNCH(zoo_queries_kernel, grid_for(total), kBlock, 0, stream, x, rows, coords, coords_per_probe, pixels, h,
                 queries, total);
}

void zoo_step(float* x, const int64_t* rows, const int64_t* coords, const float* logits, const int64_t* labels,
              const float* lr, float* state, int64_t probes, int64_t active, int64_t coords_per_probe, int64_t pixels,
              int64_t num_logits, const kernels::ZooHyper& hp, cudaStream_t stream) {
  const int64_t items = active * coords_per_probe;
  if (items > 0)
    LETHE_LAUNCH(zoo_step_kernel, grid_for(items), kBlock, 0, stream, x, rows, coords, logits, labels, lr, state,
                 probes, items, coords_per_probe, pixels, num_logits, hp);
}

}  // namespace lethe::LETHE_CUDA_NS
