#pragma once
// The genetic algorithm of the black-box inversion attack: K populations (one per class) of P genomes of G genes
// each, stored row-major as [K·P, G] (individual k·P + i is member i of class k's population), evolved together.
//
// One generation, from the genomes and their fitness (log p_k of each member's decoded image):
//   1. rank: each member's place in its population, best first (ties: lower index first; NaN fitness is worst);
//   2. select: slots i < elites copy the member of rank i (elitism); every other slot draws two parents by
//      tournament (`tournament` uniform draws with replacement, the fittest wins);
//   3. breed: each gene of a non-elite child comes from uniform crossover (a fair coin per gene) or blend crossover
//      (BLX-α: a uniform point on [a - α·d, b + α·d] around the parents' genes a <= b, d = b - a), then Gaussian
//      mutation (with probability `mutation_rate`, add sigma·N(0, 1)), then is clamped to [0, 1].
//
// Every random draw is Philox at a fixed counter, and the arithmetic uses only correctly rounded IEEE operations
// (no transcendental functions; multiply-adds are explicit fmaf, which both sides round once), so the CPU twin and a
// CUDA kernel produce the same bits from the same population, fitness and seed, whatever the launch shape.
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"
#include "kernels/philox.h"

namespace lethe::kernels {

enum class Crossover : int { Uniform = 0, Blend = 1 };

struct GaHyper {
  int64_t classes = 0;      // K populations
  int64_t population = 0;   // P members each
  int64_t genes = 0;        // G genes per genome
  int64_t elites = 0;       // members copied unchanged, 0 <= elites <= population
  int64_t tournament = 2;   // draws per tournament, >= 1
  Crossover crossover = Crossover::Uniform;
  float blend_alpha = 0.5f;     // BLX-α
  float mutation_rate = 0.05f;  // per gene
  float sigma = 0.1f;           // this generation's mutation scale (the caller decays it)
  uint64_t seed = 0;
  uint64_t generation = 0;      // selects the Philox streams, so each generation draws fresh numbers
};

// Philox streams of one generation: selection and breeding never share a counter. Breeding draws one block per gene
// (crossover point, mutation coin and noise from its four words), a quarter of the cost of one block per draw.
enum class GaDraw : uint64_t { Tournament = 1, Breed = 2 };
LETHE_HD uint64_t ga_stream(const GaHyper& h, GaDraw draw) {
  return (h.generation << 8) | static_cast<uint64_t>(draw) | 0x4741000000000000ull;  // "GA" tag
}

// a ranks before b: higher fitness, NaN last, ties by lower index. A strict total order.
LETHE_HD bool ga_outranks(float fa, int64_t ia, float fb, int64_t ib) {
  const bool a_nan = fa != fa, b_nan = fb != fb;
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && fa != fb) return fa > fb;
  return ia < ib;
}

// Member i's rank (0: best) in a population whose fitness values are fit[0..P).
LETHE_HD int64_t ga_rank(const float* fit, int64_t population, int64_t i) {
  int64_t rank = 0;
  for (int64_t j = 0; j < population; ++j) rank += ga_outranks(fit[j], j, fit[i], i) ? 1 : 0;
  return rank;
}

// A uniform index in [0, n) from 32 random bits (multiply-shift: exact integer arithmetic).
LETHE_HD int64_t ga_index(uint32_t bits, int64_t n) {
  return static_cast<int64_t>((static_cast<uint64_t>(bits) * static_cast<uint64_t>(n)) >> 32);
}

// Parent `which` (0 or 1) of child slot `child` (global index k·P + i) by tournament within the child's population
// (fit: that population's P fitness values). Returns the parent's index within the population.
LETHE_HD int64_t ga_tournament(const float* fit, int64_t child, int which, const GaHyper& h) {
  const uint64_t stream = ga_stream(h, GaDraw::Tournament);
  const uint64_t first = (static_cast<uint64_t>(child) * 2 + static_cast<uint64_t>(which)) *
                         static_cast<uint64_t>(h.tournament);
  int64_t best = ga_index(philox_word(h.seed, stream, first), h.population);
  for (int64_t t = 1; t < h.tournament; ++t) {
    const int64_t c = ga_index(philox_word(h.seed, stream, first + static_cast<uint64_t>(t)), h.population);
    if (ga_outranks(fit[c], c, fit[best], best)) best = c;
  }
  return best;
}

// N(0, 1), approximately: the Irwin-Hall sum of four 16-bit uniforms (the halves of two Philox words), centred and
// scaled to unit variance (a smooth bell on [-2√3, 2√3]). Integer sums and one multiply only, exact on every backend.
LETHE_HD float ga_normal(uint32_t w0, uint32_t w1) {
  const uint32_t sum = (w0 >> 16) + (w0 & 0xFFFFu) + (w1 >> 16) + (w1 & 0xFFFFu);  // < 2^18: exact in float
  return (static_cast<float>(sum) * (1.0f / 65536.0f) - 2.0f) * 1.7320508075688772f;
}

// Gene j of the child bred from parent genes a and b; `slot` = child·G + j numbers the Philox block.
LETHE_HD float ga_child_gene(float a, float b, uint64_t slot, const GaHyper& h) {
  const Philox4 r = philox4x32_10(h.seed, slot, ga_stream(h, GaDraw::Breed));
  const float u = philox_u01(r.v[0]);
  float gene;
  if (h.crossover == Crossover::Uniform) {
    gene = u < 0.5f ? a : b;
  } else {
    const float lo = fminf(a, b), d = fmaxf(a, b) - lo;
    // lo - α·d + u·(1 + 2α)·d
    gene = fmaf(u * fmaf(2.0f, h.blend_alpha, 1.0f), d, fmaf(-h.blend_alpha, d, lo));
  }
  const float mutated = fmaf(h.sigma, ga_normal(r.v[2], r.v[3]), gene);
  gene = philox_u01(r.v[1]) < h.mutation_rate ? mutated : gene;  // a select, so the CPU loop vectorises
  return fminf(fmaxf(gene, 0.0f), 1.0f);
}

// Class k's fitness of a member from its logits z[0..K): log p_k = z_k - logsumexp(z), in double like log_softmax.
LETHE_HD float ga_log_prob(const float* z, int64_t num_logits, int64_t k) {
  float m = z[0];
  for (int64_t j = 1; j < num_logits; ++j) m = z[j] > m ? z[j] : m;
  double sum = 0.0;
  for (int64_t j = 0; j < num_logits; ++j) sum += exp(static_cast<double>(z[j] - m));
  return static_cast<float>(static_cast<double>(z[k] - m) - log(sum));
}

}  // namespace lethe::kernels
