// The genetic algorithm's operators (kernels/ga.h) on the device, twins of kernels/cpu/ga_cpu.cpp: one thread per
// member for ranking and selection, one per gene for breeding. Every value is a pure function of (genomes, fitness,
// hyperparameters), so the launch shape never changes the bits.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/ga.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

__global__ void ga_fitness_kernel(const float* __restrict__ logits, float* __restrict__ fitness, int64_t rows,
                                  int64_t num_logits, int64_t population) {
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x)
    fitness[r] = kernels::ga_log_prob(logits + r * num_logits, num_logits, r / population);
}

// Each member computes its rank; the elites write themselves into slots 0..elites-1 of their population.
__global__ void ga_elites_kernel(const float* __restrict__ fitness, int64_t* __restrict__ parents,
                                 kernels::GaHyper h) {
  const int64_t members = h.classes * h.population;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < members;
       m += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = m / h.population, i = m % h.population;
    const int64_t rank = kernels::ga_rank(fitness + k * h.population, h.population, i);
    if (rank < h.elites) {
      parents[2 * (k * h.population + rank)] = i;
      parents[2 * (k * h.population + rank) + 1] = i;
    }
  }
}

__global__ void ga_tournament_kernel(const float* __restrict__ fitness, int64_t* __restrict__ parents,
                                     kernels::GaHyper h) {
  const int64_t members = h.classes * h.population;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < members;
       m += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = m / h.population, i = m % h.population;
    if (i < h.elites) continue;
    const float* fit = fitness + k * h.population;
    parents[2 * m] = kernels::ga_tournament(fit, m, 0, h);
    parents[2 * m + 1] = kernels::ga_tournament(fit, m, 1, h);
  }
}

__global__ void ga_breed_kernel(const float* __restrict__ genomes, const int64_t* __restrict__ parents,
                                float* __restrict__ next, kernels::GaHyper h) {
  const int64_t total = h.classes * h.population * h.genes;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t m = e / h.genes, j = e % h.genes;
    const int64_t first = m - m % h.population;  // member 0 of this population
    const float a = genomes[(first + parents[2 * m]) * h.genes + j];
    const float b = genomes[(first + parents[2 * m + 1]) * h.genes + j];
    next[e] = m % h.population < h.elites ? a : kernels::ga_child_gene(a, b, static_cast<uint64_t>(e), h);
  }
}

}  // namespace

void ga_fitness(const float* logits, float* fitness, int64_t rows, int64_t num_logits, int64_t population,
                cudaStream_t stream) {
  if (rows > 0)
    LETHE_LAUNCH(ga_fitness_kernel, grid_for(rows), kBlock, 0, stream, logits, fitness, rows, num_logits, population);
}

void ga_next_generation(const float* genomes, const float* fitness, int64_t* parents, float* next,
                        const kernels::GaHyper& h, cudaStream_t stream) {
  const int64_t members = h.classes * h.population;
  if (members == 0) return;
  if (h.elites > 0) LETHE_LAUNCH(ga_elites_kernel, grid_for(members), kBlock, 0, stream, fitness, parents, h);
  LETHE_LAUNCH(ga_tournament_kernel, grid_for(members), kBlock, 0, stream, fitness, parents, h);
  LETHE_LAUNCH(ga_breed_kernel, grid_for(members * h.genes), kBlock, 0, stream, genomes, parents, next, h);
}

}  // namespace lethe::LETHE_CUDA_NS
