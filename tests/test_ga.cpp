// The genetic algorithm's operators (kernels/ga.h, Backend::ga_fitness and ga_next_generation) on the CPU: what each
// step promises (elites kept, tournaments won by the fitter, crossover within the parents, mutation's scale, the
// [0, 1] box, NaN fitness last), determinism across thread counts, and bad shapes refused. Parity with the CUDA
// kernels is in test_cuda_sim_ops.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "engine/backend.h"
#include "kernels/ga.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using kernels::GaHyper;

struct Generation {
  std::vector<float> next;
  std::vector<int64_t> parents;
};

Generation breed(Backend& be, const std::vector<float>& genomes, const std::vector<float>& fitness, const GaHyper& h) {
  const int64_t members = h.classes * h.population;
  Tensor g = Tensor::empty({members, h.genes}, DType::F32, Device::CPU);
  Tensor f = Tensor::empty({members}, DType::F32, Device::CPU);
  test::set_values(g, genomes);
  test::set_values(f, fitness);
  Tensor parents = test::poisoned({members, 2}, Device::CPU, DType::I64);
  Tensor next = test::poisoned({members, h.genes});
  be.ga_next_generation(g, f, parents, next, h);
  Generation out;
  out.next.assign(next.f32(), next.f32() + next.numel());
  out.parents.assign(parents.i64(), parents.i64() + parents.numel());
  return out;
}

GaHyper hyper(int64_t classes, int64_t population, int64_t genes) {
  GaHyper h;
  h.classes = classes;
  h.population = population;
  h.genes = genes;
  h.seed = 17;
  h.generation = 3;
  return h;
}

std::vector<float> uniform_values(size_t n, uint64_t seed, float lo = 0.0f, float hi = 1.0f) {
  test::Rng rng(seed);
  Tensor t = test::random_tensor({static_cast<int64_t>(n)}, rng, lo, hi);
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

}  // namespace

TEST_CASE("GA: elites are the best members, copied unchanged, best first") {
  auto be = make_cpu_backend(2);
  GaHyper h = hyper(2, 6, 4);
  h.elites = 3;
  h.mutation_rate = 1.0f;  // children all mutate; elites must not
  const std::vector<float> genomes = uniform_values(12 * 4, 1);
  // Population 0: member 4 best, then 1 and 2 tied (lower index first), a NaN never an elite.
  // Population 1: NaN, then 0.0 best (member 3), -1 twice.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> fitness = {-5, -2, -2, nan, -0.5f, -9, nan, -1, -3, 0, -1, -7};
  const Generation g = breed(*be, genomes, fitness, h);
  const std::vector<std::vector<int64_t>> expected_elites = {{4, 1, 2}, {3, 1, 4}};
  for (int64_t k = 0; k < 2; ++k)
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t slot = k * 6 + r, member = expected_elites[k][r];
      CHECK(g.parents[2 * slot] == member);
      CHECK(g.parents[2 * slot + 1] == member);
      for (int64_t j = 0; j < 4; ++j) CHECK(g.next[slot * 4 + j] == genomes[(k * 6 + member) * 4 + j]);
    }
  for (int64_t p : g.parents) CHECK((p >= 0 && p < 6));
}

TEST_CASE("GA: tournaments favour the fitter, and a NaN never beats a number") {
  auto be = make_cpu_backend(1);
  GaHyper h = hyper(1, 8, 1);
  std::vector<float> fitness = {0.1f, 0.7f, 0.3f, 0.9f, 0.2f, 0.5f, 0.8f, 0.4f};  // member 3 best
  const std::vector<float> genomes = uniform_values(8, 2);
  // One draw: a uniform pick. Over many generations every member is picked, none much more than its share.
  h.tournament = 1;
  std::vector<int64_t> picks(8, 0);
  for (uint64_t gen = 0; gen < 400; ++gen) {
    h.generation = gen;
    for (int64_t p : breed(*be, genomes, fitness, h).parents) ++picks[p];
  }
  for (int64_t c : picks) CHECK((c > 400 * 16 / 8 / 2 && c < 400 * 16 / 8 * 2));
  // 64 draws out of 8: the best member wins every tournament (a miss has probability (7/8)^64 < 2e-4 per
  // tournament, and these seeds have none).
  h.tournament = 64;
  for (uint64_t gen = 0; gen < 5; ++gen) {
    h.generation = gen;
    for (int64_t p : breed(*be, genomes, fitness, h).parents) CHECK(p == 3);
  }
  // NaN fitness for everyone but member 6: member 6 wins whenever drawn, so with 64 draws always.
  std::fill(fitness.begin(), fitness.end(), std::numeric_limits<float>::quiet_NaN());
  fitness[6] = -100.0f;
  for (int64_t p : breed(*be, genomes, fitness, h).parents) CHECK(p == 6);
}

TEST_CASE("GA: crossover stays between the parents, mutation has the configured scale, genes stay in [0, 1]") {
  auto be = make_cpu_backend(2);
  GaHyper h = hyper(3, 50, 40);
  const int64_t members = 150;
  const std::vector<float> genomes = uniform_values(static_cast<size_t>(members * 40), 3);
  const std::vector<float> fitness = uniform_values(static_cast<size_t>(members), 4, -3.0f, 0.0f);
  auto parent_gene = [&](const Generation& g, int64_t m, int which, int64_t j) {
    const int64_t first = m - m % h.population;
    return genomes[static_cast<size_t>((first + g.parents[2 * m + which]) * h.genes + j)];
  };
  SUBCASE("uniform crossover, no mutation: each gene is one parent's") {
    h.mutation_rate = 0.0f;
    const Generation g = breed(*be, genomes, fitness, h);
    int64_t from_second = 0;
    for (int64_t m = 0; m < members; ++m)
      for (int64_t j = 0; j < h.genes; ++j) {
        const float x = g.next[m * h.genes + j], a = parent_gene(g, m, 0, j), b = parent_gene(g, m, 1, j);
        CHECK((x == a || x == b));
        from_second += (x == b && x != a) ? 1 : 0;
      }
    CHECK(from_second > members * h.genes / 4);  // a fair coin, not always the first parent
  }
  SUBCASE("blend crossover with alpha 0, no mutation: between the parents") {
    h.crossover = kernels::Crossover::Blend;
    h.blend_alpha = 0.0f;
    h.mutation_rate = 0.0f;
    const Generation g = breed(*be, genomes, fitness, h);
    for (int64_t m = 0; m < members; ++m)
      for (int64_t j = 0; j < h.genes; ++j) {
        const float x = g.next[m * h.genes + j], a = parent_gene(g, m, 0, j), b = parent_gene(g, m, 1, j);
        CHECK(x >= std::min(a, b));
        CHECK(x <= std::max(a, b));
      }
  }
  SUBCASE("mutation of every gene: mean 0, standard deviation sigma") {
    std::vector<float> mid(genomes.size(), 0.5f);  // away from the box, so clamping does not bias the statistics
    h.mutation_rate = 1.0f;
    h.sigma = 0.05f;
    const Generation g = breed(*be, mid, fitness, h);
    double sum = 0, sum_sq = 0;
    for (float x : g.next) {
      sum += x - 0.5;
      sum_sq += (x - 0.5) * (x - 0.5);
    }
    const double n = static_cast<double>(g.next.size()), mean = sum / n;
    CHECK(std::abs(mean) < 0.003);
    CHECK(std::sqrt(sum_sq / n - mean * mean) == doctest::Approx(0.05).epsilon(0.03));
  }
  SUBCASE("large mutations are clamped to [0, 1]") {
    h.crossover = kernels::Crossover::Blend;
    h.blend_alpha = 2.0f;
    h.mutation_rate = 1.0f;
    h.sigma = 3.0f;
    const Generation g = breed(*be, genomes, fitness, h);
    int64_t at_edges = 0;
    for (float x : g.next) {
      CHECK((x >= 0.0f && x <= 1.0f));
      at_edges += (x == 0.0f || x == 1.0f) ? 1 : 0;
    }
    CHECK(at_edges > 0);
  }
}

TEST_CASE("GA: the approximate normal has unit variance and bounded tails") {
  double sum = 0, sum_sq = 0, max_abs = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const kernels::Philox4 r = kernels::philox4x32_10(5, static_cast<uint64_t>(i), 11);
    const double x = kernels::ga_normal(r.v[0], r.v[1]);
    sum += x;
    sum_sq += x * x;
    max_abs = std::max(max_abs, std::abs(x));
  }
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(sum_sq / n == doctest::Approx(1.0).epsilon(0.01));
  CHECK(max_abs <= 2 * std::sqrt(3.0) + 1e-6);
  CHECK(max_abs > 2.5);
}

TEST_CASE("GA: a generation is a pure function of its inputs, the seed and the generation number") {
  GaHyper h = hyper(4, 33, 20);
  h.elites = 2;
  h.tournament = 3;
  h.mutation_rate = 0.2f;
  const std::vector<float> genomes = uniform_values(4 * 33 * 20, 5);
  const std::vector<float> fitness = uniform_values(4 * 33, 6, -2.0f, 0.0f);
  auto one = make_cpu_backend(1), two = make_cpu_backend(2);
  const Generation a = breed(*one, genomes, fitness, h), b = breed(*two, genomes, fitness, h);
  CHECK(a.parents == b.parents);
  CHECK(a.next == b.next);
  h.generation += 1;
  CHECK(breed(*one, genomes, fitness, h).next != a.next);
  h.generation -= 1;
  h.seed += 1;
  CHECK(breed(*one, genomes, fitness, h).next != a.next);
}

TEST_CASE("GA: fitness is log p_k of each member's own class") {
  auto be = make_cpu_backend(2);
  test::Rng rng(7);
  const int64_t classes = 10, population = 13, rows = classes * population;
  const Tensor logits = test::random_tensor({rows, classes}, rng, -6.0f, 6.0f);
  Tensor fitness = test::poisoned({rows});
  be->ga_fitness(logits, population, fitness);
  Tensor log_probs = Tensor::empty({rows, classes}, DType::F32, Device::CPU);
  be->log_softmax(logits, log_probs);
  for (int64_t r = 0; r < rows; ++r)
    CHECK(fitness.f32()[r] == doctest::Approx(log_probs.f32()[r * classes + r / population]).epsilon(1e-6));
  Tensor wrong = test::poisoned({rows - 1});
  CHECK_THROWS(be->ga_fitness(logits, population, wrong));
  CHECK_THROWS(be->ga_fitness(logits, population + 1, fitness));
}

TEST_CASE("GA: bad shapes and hyperparameters are refused") {
  auto be = make_cpu_backend(1);
  GaHyper h = hyper(2, 4, 3);
  const std::vector<float> genomes(24, 0.5f), fitness(8, -1.0f);
  CHECK_NOTHROW(breed(*be, genomes, fitness, h));
  GaHyper bad = h;
  bad.elites = 5;
  CHECK_THROWS(breed(*be, genomes, fitness, bad));
  bad = h;
  bad.tournament = 0;
  CHECK_THROWS(breed(*be, genomes, fitness, bad));
  bad = h;
  bad.mutation_rate = 1.5f;
  CHECK_THROWS(breed(*be, genomes, fitness, bad));
  bad = h;
  bad.sigma = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(breed(*be, genomes, fitness, bad));
  Tensor g = Tensor::empty({8, 3}, DType::F32, Device::CPU), f = Tensor::empty({7}, DType::F32, Device::CPU);
  Tensor parents = Tensor::empty({8, 2}, DType::I64, Device::CPU);
  Tensor next = Tensor::empty({8, 3}, DType::F32, Device::CPU);
  CHECK_THROWS(be->ga_next_generation(g, f, parents, next, h));  // fitness of 7
  Tensor f8 = Tensor::empty({8}, DType::F32, Device::CPU);
  CHECK_THROWS(be->ga_next_generation(g, f8, parents, g, h));  // next aliases the genomes
}
