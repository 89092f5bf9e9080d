// The genetic algorithm's operators on the CPU (kernels/ga.h), the twins of kernels/cuda/ga.cu: the same per-element
// functions in the same three passes (rank the elites, draw the tournaments, breed the genes).
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/ga.h"

namespace lethe::kernels::cpu {

void ga_fitness(const float* logits, float* fitness, int64_t rows, int64_t num_logits, int64_t population,
                int threads) {
#pragma omp parallel for num_threads(rows < 4096 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) fitness[r] = ga_log_prob(logits + r * num_logits, num_logits, r / population);
}

void ga_next_generation(const float* genomes, const float* fitness, int64_t* parents, float* next,
                        const GaHyper& h, int threads) {
  const int64_t members = h.classes * h.population;
  // Elitism: the member of rank r < elites fills slot r of its population (ranking is O(P²) per population, cheap
  // next to the batched forward that computed the fitness).
  if (h.elites > 0) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t m = 0; m < members; ++m) {
      const int64_t k = m / h.population, i = m % h.population;
      const int64_t rank = ga_rank(fitness + k * h.population, h.population, i);
      if (rank < h.elites) parents[2 * (k * h.population + rank)] = parents[2 * (k * h.population + rank) + 1] = i;
    }
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t m = 0; m < members; ++m) {
    const int64_t k = m / h.population, i = m % h.population;
    if (i < h.elites) continue;
    const float* fit = fitness + k * h.population;
    parents[2 * m] = ga_tournament(fit, m, 0, h);
    parents[2 * m + 1] = ga_tournament(fit, m, 1, h);
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t m = 0; m < members; ++m) {
    const int64_t k = m / h.population, i = m % h.population;
    const float* a = genomes + (k * h.population + parents[2 * m]) * h.genes;
    const float* b = genomes + (k * h.population + parents[2 * m + 1]) * h.genes;
    float* child = next + m * h.genes;
    if (i < h.elites) {
      std::copy_n(a, h.genes, child);
      continue;
    }
    const uint64_t first = static_cast<uint64_t>(m * h.genes);
#pragma omp simd
    for (int64_t j = 0; j < h.genes; ++j) child[j] = ga_child_gene(a[j], b[j], first + static_cast<uint64_t>(j), h);
  }
}

}  // namespace lethe::kernels::cpu
