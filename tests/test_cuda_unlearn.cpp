// The unlearning methods on the CUDA backend (lethe::cuda_sim here; lethe::cuda on a GPU, see tests/cuda_parity.h)
// against the CPU backend: the same starting weights and data, a few steps of each loop, the weights within 1e-4
// relative. This covers what the whole-model cases do not: batches staged from host datasets onto the device, the
// relabelling of D_f, Adam, and the fused ascent update with clipping and Philox noise (ascent_step_kernel) with
// interleaved descent steps. LeNet-5 has no BatchNorm, so only a flipped ReLU or max-pool decision (see
// test_cuda_models.cpp) can make correct backends drift; each method gets a few starting points to match on.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/unlearn/methods.h"
#include "nets/nets.h"
#include "tests/cuda_parity.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using lethe::test::Values;
using lethe::test::parity::cpu;
using lethe::test::parity::kModelTolerance;
using lethe::test::parity::relative;
using lethe::test::parity::sim;

constexpr double kMinMovement = 1e-3;     // the steps must move the weights at least this much (relative)
constexpr int kTrials = 3;

struct Data {
  Dataset forget, retain;
};

Data data() {
  const Dataset all = test::synthetic_dataset(48, 4, 31);
  std::vector<int64_t> f, r;
  for (int64_t i = 0; i < all.size(); ++i) (all.labels.i64()[i] == 1 ? f : r).push_back(i);
  return {subset(all, f), subset(all, r)};
}

unlearn::UnlearnConfig config(const std::string& method) {
  TrainConfig recipe;
  recipe.batch = 8;
  recipe.seed = 3;
  unlearn::UnlearnConfig cfg = unlearn::default_config(method, recipe);
  cfg.train.epochs = 1;
  cfg.ascent.batch = 8;
  cfg.ascent.max_steps = 4;
  cfg.ascent.stop_forget_accuracy = -1;  // a fixed number of steps on both backends
  cfg.ascent.max_norm = 5.0f;
  cfg.ascent.noise_std = 1e-3f;
  if (method == "amnesiac") cfg.train.optim.lr = 1e-3f;
  if (method == "hu-approx") cfg.ascent.lr = 0.05f;
  return cfg;
}

// Empty if the device run matched the CPU's from initial weights drawn with `init_seed`, else what differed.
std::string compare(const std::string& method, uint64_t init_seed) {
  const Data d = data();
  ModelSpec spec = spec_for_data("lenet5", d.forget);
  auto initial = make_model(spec, cpu(), init_seed);
  auto on_cpu = make_model_uninitialised(spec, cpu());
  on_cpu->copy_state_from(*initial);
  auto on_device = make_model_uninitialised(spec, sim());
  on_device->copy_state_from(*initial);
  const unlearn::UnlearnConfig cfg = config(method);
  const unlearn::UnlearnResult a = unlearn::run_unlearning(*on_cpu, cfg, {d.forget, d.retain, {1}, {}});
  const unlearn::UnlearnResult b = unlearn::run_unlearning(*on_device, cfg, {d.forget, d.retain, {1}, {}});
  if (a.steps != b.steps) return "steps " + std::to_string(a.steps) + " vs " + std::to_string(b.steps);
  const Values want = test::to_doubles(on_cpu->arena().params());
  const Values got = test::to_doubles(on_device->arena().params());
  const Values start = test::to_doubles(initial->arena().params());
  REQUIRE(test::count_nonfinite(want) == 0);
  CHECK(relative(want, start) >= kMinMovement);
  if (test::count_nonfinite(got) != 0) return "non-finite weights on the device";
  const double err = relative(got, want);
  if (err > kModelTolerance) return "weights differ by " + std::to_string(err) + " relative";
  return {};
}

void check_unlearns_like_the_cpu(const std::string& method) {
  std::string first;
  for (int trial = 0; trial < kTrials; ++trial) {
    const std::string failure = compare(method, 7 + uint64_t(trial));
    if (failure.empty()) return;
    MESSAGE(method, ", init seed ", 7 + trial, ": ", failure, "; a flipped ReLU or max-pool decision does this, so "
                                                              "another starting point is tried");
    if (first.empty()) first = failure;
  }
  FAIL_CHECK(method, ": every starting point diverged; the first: ", first);
}

}  // namespace

CUDA_CASE("neggrad (clipped, noisy ascent_step_kernel, interleaved descent) unlearns like the cpu") {
  check_unlearns_like_the_cpu("neggrad");
}

CUDA_CASE("amnesiac (relabelled D_f, Adam) unlearns like the cpu") { check_unlearns_like_the_cpu("amnesiac"); }

CUDA_CASE("randlabel unlearns like the cpu") { check_unlearns_like_the_cpu("randlabel"); }

CUDA_CASE("hu-approx unlearns like the cpu") { check_unlearns_like_the_cpu("hu-approx"); }
