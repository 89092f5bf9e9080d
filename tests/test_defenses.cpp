// The defenses of engine/defenses.h. Pruning: one global threshold over the conv and linear weights (or every
// parameter), exactly floor(rate·n) values pruned when magnitudes are distinct, biases untouched in weight scope.
// Noise: N(0, sigma²) on every value in scope, deterministic by seed, nothing outside the scope touched.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/defenses.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;

namespace {

std::unique_ptr<Model> lenet(Backend& be) { return make_model(test::lenet5_spec(), be, 11); }

int64_t zeros_in(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return std::count(v.begin(), v.end(), 0.0f);
}

}  // namespace

TEST_CASE("prune: global magnitude pruning over the weights") {
  auto be = make_cpu_backend(2);
  for (const double rate : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    CAPTURE(rate);
    auto model = lenet(*be);
    std::vector<float> before_weights, before_biases;
    for (const ParamEntry& e : model->arena().entries()) {
      const std::vector<float> v = e.value_slot->to_vector();
      (e.shape.size() >= 2 ? before_weights : before_biases).insert(
          (e.shape.size() >= 2 ? before_weights : before_biases).end(), v.begin(), v.end());
    }
    const PruneResult r = prune_global(*model, {rate, "weights"});
    const auto n = static_cast<int64_t>(before_weights.size());
    CHECK(r.considered == n);
    const auto k = static_cast<int64_t>(std::floor(rate * static_cast<double>(n)));
    CHECK(r.pruned == k);  // initialised weights: distinct, non-zero magnitudes
    std::vector<float> sorted = before_weights;
    for (float& v : sorted) v = std::fabs(v);
    std::sort(sorted.begin(), sorted.end());
    if (k > 0) CHECK(r.threshold == sorted[static_cast<size_t>(k - 1)]);
    int64_t weight_zeros = 0;
    std::vector<float> biases;
    for (const ParamEntry& e : model->arena().entries()) {
      const std::vector<float> v = e.value_slot->to_vector();
      if (e.shape.size() >= 2) {
        weight_zeros += zeros_in(*e.value_slot);
      } else {
        biases.insert(biases.end(), v.begin(), v.end());
      }
    }
    CHECK(weight_zeros == k);
    CHECK(biases == before_biases);  // weight scope leaves biases alone
  }
}

TEST_CASE("prune: every parameter in scope all, and bad settings refused") {
  auto be = make_cpu_backend(1);
  auto model = lenet(*be);
  const PruneResult r = prune_global(*model, {0.25, "all"});
  CHECK(r.considered == model->arena().size());
  const auto k = static_cast<int64_t>(std::floor(0.25 * static_cast<double>(r.considered)));
  CHECK(r.pruned == k);  // PyTorch-style initialisation: every bias and weight distinct and non-zero
  CHECK(zeros_in(model->arena().params()) == k);
  CHECK_THROWS_AS(prune_global(*model, {1.5, "weights"}), UsageError);
  CHECK_THROWS_AS(prune_global(*model, {0.5, "filters"}), UsageError);
  Tensor w = model->arena().param("fc1.weight");
  w.f32()[3] = NAN;
  CHECK_THROWS_AS(prune_global(*model, {0.5, "weights"}), InputError);
}

TEST_CASE("noise: Gaussian noise of the given scale on the parameters in scope, deterministic by seed") {
  auto be = make_cpu_backend(2);
  auto clean = lenet(*be);
  const std::vector<float> before = clean->arena().params().to_vector();
  for (const std::string scope : {"weights", "all"}) {
    CAPTURE(scope);
    auto a = lenet(*be), b = lenet(*be);
    const NoiseResult r = add_parameter_noise(*a, {0.05, scope, 3});
    add_parameter_noise(*b, {0.05, scope, 3});
    CHECK(test::to_doubles(a->arena().params()) == test::to_doubles(b->arena().params()));
    const std::vector<float> after = a->arena().params().to_vector();
    double squares = 0;
    int64_t changed = 0;
    for (const ParamEntry* e : defended_params(*a, scope))
      for (int64_t i = e->offset; i < e->offset + e->numel; ++i) {
        const double d = static_cast<double>(after[static_cast<size_t>(i)]) - before[static_cast<size_t>(i)];
        squares += d * d;
        changed += d != 0 ? 1 : 0;
      }
    CHECK(r.perturbed == changed);
    const double expected = 0.05 * std::sqrt(static_cast<double>(r.perturbed));
    CHECK(std::sqrt(squares) == doctest::Approx(r.noise_norm).epsilon(1e-3));
    CHECK(r.noise_norm == doctest::Approx(expected).epsilon(0.02));
    // Outside the scope (biases, for weights) nothing moved.
    int64_t outside_changed = 0;
    for (size_t i = 0; i < after.size(); ++i) outside_changed += after[i] != before[i] ? 1 : 0;
    CHECK(outside_changed == changed);
  }
  auto other_seed = lenet(*be), same = lenet(*be);
  add_parameter_noise(*other_seed, {0.05, "all", 4});
  add_parameter_noise(*same, {0.05, "all", 3});
  CHECK(test::to_doubles(other_seed->arena().params()) != test::to_doubles(same->arena().params()));
  auto zero = lenet(*be);
  CHECK(add_parameter_noise(*zero, {0.0, "all", 3}).noise_norm == 0.0);
  CHECK(zero->arena().params().to_vector() == before);
  CHECK_THROWS_AS(add_parameter_noise(*zero, {-1.0, "all", 3}), UsageError);
  CHECK_THROWS_AS(add_parameter_noise(*zero, {NAN, "all", 3}), UsageError);
  CHECK_THROWS_AS(add_parameter_noise(*zero, {0.1, "filters", 3}), UsageError);
}

TEST_CASE("defense specs: parsing, names, and apply_defense running the named defense") {
  CHECK(DefenseSpec::parse("none").kind == "none");
  CHECK(DefenseSpec::parse("prune:0.50").name() == "prune:0.5");
  CHECK(DefenseSpec::parse("noise:1e-2").name() == "noise:0.01");
  CHECK(DefenseSpec::parse("finetune:2").value == 2);
  for (const char* bad : {"prune", "prune:", "prune:1.5", "noise:-1", "noise:nan", "finetune:0", "finetune:1.5",
                          "blur:1", "prune:0.5x", ""})
    CHECK(test::usage_error_of([&] { DefenseSpec::parse(bad); }).find("defense") != std::string::npos);

  auto be = make_cpu_backend(2);
  auto model = lenet(*be);
  const std::vector<float> before = model->arena().params().to_vector();
  const nlohmann::json none = apply_defense(*model, DefenseSpec::parse("none"), nullptr, 1);
  CHECK(none["kind"] == "none");
  CHECK(model->arena().params().to_vector() == before);
  const nlohmann::json pruned = apply_defense(*model, DefenseSpec::parse("prune:0.5"), nullptr, 1);
  CHECK(pruned["kind"] == "prune");
  CHECK(pruned["result"]["pruned"].get<int64_t>() == pruned["result"]["considered"].get<int64_t>() / 2);
  CHECK(zeros_in(model->arena().params()) >= pruned["result"]["pruned"].get<int64_t>());
  CHECK(test::usage_error_of([&] { apply_defense(*model, DefenseSpec::parse("finetune:1"), nullptr, 1); })
            .find("held-out") != std::string::npos);
}
