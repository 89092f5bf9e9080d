// Hu et al.'s label inference (attacks/hu_label.h) and its ZOO kernels (kernels/zoo.h): the query images, the
// symmetric-difference estimate against the model's true input gradient, the coordinate-Adam step against hand values,
// batching (how many probes share a forward never changes a bit), query counting, the decision on a model whose
// confidence in one class was lowered, the probe cache, and bad settings.
#include <doctest/doctest.h>

#include <cmath>
#include <algorithm>

#include "attacks/hu_label.h"
#include "engine/error.h"
#include "engine/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks;

namespace {

constexpr int64_t kClasses = 4;

using test::cpu;

// An MLP trained on the synthetic task, so probes for every class exist.
Model& trained() {
  static std::unique_ptr<Model> m = [] {
    const Dataset data = test::synthetic_dataset(400, kClasses, 71);
    auto model = make_model(spec_for_data("mlp", data, {24}), cpu(), 4);
    TrainConfig recipe;
    recipe.epochs = 4;
    recipe.batch = 32;
    recipe.optim.lr = 0.05f;
    recipe.optim.momentum = 0.9f;
    train(*model, data, recipe);
    return model;
  }();
  return *m;
}

ZooProbeConfig small_config() {
  ZooProbeConfig cfg;
  cfg.probes_per_class = 3;
  cfg.iterations = 15;
  cfg.tries = 2;
  cfg.coordinates = 100;  // of 144 pixels, so the draw matters
  cfg.accept = 0.99f;
  cfg.seed = 9;
  return cfg;
}

}  // namespace

TEST_CASE("ZOO queries move exactly one pixel of the named probe by plus and minus h") {
  test::Rng rng(3);
  const Tensor x = test::random_tensor({3, 5}, rng, 0.0f, 1.0f);
  const Tensor rows = Tensor::from_labels({2, 0});
  Tensor coords = Tensor::empty({2, 2}, DType::I64);
  const int64_t c[] = {4, 1, 0, 3};
  std::copy(c, c + 4, coords.i64());
  Tensor queries = test::poisoned({8, 5});
  cpu().zoo_queries(x, rows, coords, 0.25f, queries);
  const std::vector<double> q = test::to_doubles(queries), xs = test::to_doubles(x);
  for (int64_t r = 0; r < 8; ++r) {
    const int64_t a = r / 4, j = (r % 4) / 2, probe = a == 0 ? 2 : 0, coord = c[a * 2 + j];
    for (int64_t d = 0; d < 5; ++d) {
      const float base = static_cast<float>(xs[static_cast<size_t>(probe * 5 + d)]);
      const float want = d != coord ? base : (r % 2 == 0 ? base + 0.25f : base - 0.25f);
      CHECK(static_cast<float>(q[static_cast<size_t>(r * 5 + d)]) == want);
    }
  }
  Tensor bad = Tensor::empty({2, 2}, DType::I64);
  const int64_t dup[] = {1, 1, 0, 3};
  std::copy(dup, dup + 4, bad.i64());
  CHECK_THROWS(cpu().zoo_queries(x, rows, bad, 0.25f, queries));
}

TEST_CASE("ZOO step: the symmetric difference and one coordinate-Adam step match hand values") {
  // One probe of two pixels, one class pair: logits rows (+h, -h) for pixel 1.
  Tensor x = Tensor::from_vector({0.5f, 0.5f}, {1, 2});
  const Tensor rows = Tensor::from_labels({0});
  Tensor coords = Tensor::empty({1, 1}, DType::I64);
  coords.i64()[0] = 1;
  const Tensor logits = Tensor::from_vector({1.0f, 0.0f, 1.1f, 0.0f}, {2, 2});  // +h row, then -h row
  const Tensor labels = Tensor::from_labels({0});
  const Tensor lr = Tensor::from_vector({0.1f}, {1});
  Tensor state = Tensor::zeros({4, 1, 2});
  float* s = state.f32();
  s[4] = s[5] = s[6] = s[7] = 1.0f;  // the bias-correction powers start at 1
  kernels::ZooHyper hp;
  hp.h = 0.01f;
  cpu().zoo_step(x, rows, coords, logits, labels, lr, state, hp);
  // f = -log p_0; f(+h) - f(-h) = log(1 + e^-1) - log(1 + e^-1.1) > 0, so ĝ > 0 and the pixel goes down by lr
  // (Adam's first step is lr·sign(ĝ)).
  const double g = (std::log1p(std::exp(-1.0)) - std::log1p(std::exp(-1.1))) / 0.02;
  CHECK(x.f32()[0] == 0.5f);
  CHECK(x.f32()[1] == doctest::Approx(0.4).epsilon(1e-5));
  // Plane p of pixel d is s[2p + d]: moments, then bias-correction powers.
  CHECK(s[1] == doctest::Approx(0.1 * g).epsilon(1e-5));
  CHECK(s[3] == doctest::Approx(0.001 * g * g).epsilon(1e-4));
  CHECK(s[5] == doctest::Approx(0.9f));
  CHECK(s[7] == doctest::Approx(0.999f));
  CHECK((s[0] == 0.0f && s[2] == 0.0f && s[4] == 1.0f && s[6] == 1.0f));  // pixel 0 untouched
}

TEST_CASE("ZOO gradient estimate matches the model's input gradient of -log p_y") {
  Model& model = trained();
  test::Rng rng(5);
  const int64_t pixels = 144;
  const Tensor x = test::random_tensor({1, pixels}, rng, 0.2f, 0.8f);
  Tensor coords = Tensor::empty({1, pixels}, DType::I64);
  for (int64_t d = 0; d < pixels; ++d) coords.i64()[d] = d;
  const Tensor rows = Tensor::from_labels({0});
  Tensor queries = Tensor::empty({2 * pixels, pixels});
  const float h = 1e-3f;
  cpu().zoo_queries(x, rows, coords, h, queries);
  Tensor logits;
  model.infer_logits(queries.reshape({2 * pixels, 1, 12, 12}), logits);
  Tensor dx;
  model.input_gradient(x.reshape({1, 1, 12, 12}), Tensor::from_labels({2}), dx);
  double dot = 0, nn = 0, ee = 0;
  const std::vector<float> z = logits.to_vector(), truth = dx.to_vector();
  for (int64_t d = 0; d < pixels; ++d) {
    const double est = kernels::zoo_gradient_estimate(&z[static_cast<size_t>(2 * d * kClasses)],
                                                      &z[static_cast<size_t>((2 * d + 1) * kClasses)], kClasses, 2, h);
    dot += est * truth[static_cast<size_t>(d)];
    nn += truth[static_cast<size_t>(d)] * truth[static_cast<size_t>(d)];
    ee += est * est;
  }
  REQUIRE(nn > 0);
  CHECK(dot / std::sqrt(nn * ee) > 0.999);  // the same direction
  CHECK(std::sqrt(ee / nn) == doctest::Approx(1.0).epsilon(0.02));  // and the same length
}

TEST_CASE("ZOO batching: one step over many probes equals the same step probe by probe") {
  // The attack shows every active probe's 2S queries in one forward and updates them in one zoo_step; done one probe
  // at a time from the same logits, the step must give the same bits.
  Model& model = trained();
  test::Rng rng(8);
  const int64_t probes = 5, pixels = 144, per_probe = 40;
  const Tensor x0 = test::random_tensor({probes, pixels}, rng, 0.0f, 1.0f);
  const Tensor rows = Tensor::from_labels({4, 1, 3});
  Tensor coords = Tensor::empty({3, per_probe}, DType::I64);
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t j = 0; j < per_probe; ++j) coords.i64()[a * per_probe + j] = (j * 7 + a * 11) % pixels;
  const Tensor labels = Tensor::from_labels({0, 1, 2, 3, 0});
  const Tensor lr = Tensor::from_vector({0.1f, 0.02f, 0.1f, 0.05f, 0.1f}, {probes});
  Tensor state0 = test::random_tensor({4, probes, pixels}, rng, 0.1f, 0.9f);
  kernels::ZooHyper hp;

  Tensor queries = test::poisoned({3 * 2 * per_probe, pixels});
  cpu().zoo_queries(x0, rows, coords, hp.h, queries);
  Tensor logits;
  model.infer_logits(queries.reshape({3 * 2 * per_probe, 1, 12, 12}), logits);
  Tensor x_batched = x0.clone(), state_batched = state0.clone();
  cpu().zoo_step(x_batched, rows, coords, logits, labels, lr, state_batched, hp);

  Tensor x_single = x0.clone(), state_single = state0.clone();
  for (int64_t a = 0; a < 3; ++a) {
    const Tensor one_row = Tensor::from_labels({rows.i64()[a]});
    const Tensor one_coords = coords.rows(a, 1).clone();
    Tensor one_queries = test::poisoned({2 * per_probe, pixels});
    cpu().zoo_queries(x0, one_row, one_coords, hp.h, one_queries);
    CHECK(test::to_doubles(one_queries) == test::to_doubles(queries.rows(a * 2 * per_probe, 2 * per_probe)));
    const Tensor one_logits = logits.rows(a * 2 * per_probe, 2 * per_probe).clone();
    cpu().zoo_step(x_single, one_row, one_coords, one_logits, labels, lr, state_single, hp);
  }
  CHECK(test::to_doubles(x_batched) == test::to_doubles(x_single));
  CHECK(test::to_doubles(state_batched) == test::to_doubles(state_single));
  CHECK(test::to_doubles(x_batched) != test::to_doubles(x0));  // the step did move the drawn pixels
  // Probe 0 and 2 were not active: untouched.
  for (const int64_t idle : {int64_t{0}, int64_t{2}})
    CHECK(test::to_doubles(x_batched.rows(idle, 1)) == test::to_doubles(x0.rows(idle, 1)));
}

TEST_CASE("ZOO probes: deterministic, boxed, and every query counted") {
  Model& model = trained();
  const Probes a = make_probes(model, small_config()), b = make_probes(model, small_config());
  REQUIRE(a.images.shape() == Shape({kClasses * 3, 1, 12, 12}));
  CHECK(test::to_doubles(a.images) == test::to_doubles(b.images));
  CHECK(a.queries == b.queries);
  // A try's start shows each probe once; each step shows its 2S queries and one more for its confidence.
  int64_t least = 0, most = 0;
  for (size_t m = 0; m < a.labels.size(); ++m) {
    CHECK(a.labels[m] == static_cast<int64_t>(m / 3));
    if (a.accepted[m]) CHECK(a.confidence[m] >= 0.99);
    least += a.tries[m] * (1 + 2 * 100 + 1);
    most += a.tries[m] * (1 + 15 * (2 * 100 + 1));
  }
  CHECK(a.queries >= least);
  CHECK(a.queries <= most);
  const std::vector<double> px = test::to_doubles(a.images);
  CHECK(*std::min_element(px.begin(), px.end()) >= 0.0);
  CHECK(*std::max_element(px.begin(), px.end()) <= 1.0);
  CHECK(a.accepted_count() >= kClasses * 3 - 2);  // the trained model has confident images for every class
  // Forwards of a few probes each reach the same acceptance (the GEMM's rounding may differ with the batch size).
  ZooProbeConfig narrow = small_config();
  narrow.max_batch = 2 * narrow.coordinates;
  CHECK(make_probes(model, narrow).accepted_count() >= kClasses * 3 - 2);
}

TEST_CASE("label inference names the class whose probes the unlearned model trusts less") {
  Model& original = trained();
  const Probes probes = make_probes(original, small_config());
  for (const int64_t forgotten : {int64_t{0}, int64_t{3}}) {
    CAPTURE(forgotten);
    auto unlearned = make_model(original.spec(), cpu(), 1);
    unlearned->copy_state_from(original);
    // Unlearning a class's samples lowers the model's belief in it: here, by its output bias.
    Tensor bias = unlearned->classifier().bias;
    std::vector<float> b = bias.to_vector();
    b[static_cast<size_t>(forgotten)] -= 1.0f;
    test::set_values(bias, b);
    const LabelInferenceResult r = infer_unlearned_labels(original, *unlearned, probes, 1);
    REQUIRE(r.predicted.size() == 1);
    CHECK(r.predicted[0] == forgotten);
    CHECK(r.delta[static_cast<size_t>(forgotten)] < 0);
    CHECK(r.decision_queries == 2 * kClasses * 3);
    CHECK(r.queries == probes.queries + r.decision_queries);
    const LabelInferenceResult two = infer_unlearned_labels(original, *unlearned, probes, 2);
    CHECK(two.predicted[0] == forgotten);
    CHECK(two.predicted.size() == 2);
    // The log-odds decision reads the same probabilities on the logit scale: a lowered bias lowers every probe's
    // log-odds of its class by about the same amount, so it names the class too.
    const LabelInferenceResult lo = infer_unlearned_labels(original, *unlearned, probes, 1, "log-odds");
    CHECK(lo.predicted[0] == forgotten);
    CHECK(lo.delta == r.delta);
    CHECK(lo.delta_log_odds[static_cast<size_t>(forgotten)] < -0.5);
  }
  CHECK_THROWS_AS(infer_unlearned_labels(original, original, probes, 1, "entropy"), UsageError);
  CHECK_THROWS_AS(infer_unlearned_labels(original, original, probes, 0), UsageError);
  CHECK_THROWS_AS(infer_unlearned_labels(original, original, probes, kClasses), UsageError);
}

TEST_CASE("ZOO probes are cached in the work directory and reused for the same model only") {
  Model& model = trained();
  const test::TempDir dir("zoo-cache");
  CacheCounts counts;
  WorkCache cache(dir.path().string(), counts, {});
  bool cached = true;
  const Probes made = cached_probes(model, small_config(), cache, &cached);
  CHECK_FALSE(cached);
  const Probes again = cached_probes(model, small_config(), cache, &cached);
  CHECK(cached);
  CHECK(test::to_doubles(made.images) == test::to_doubles(again.images));
  CHECK(made.queries == again.queries);
  CHECK(made.accepted == again.accepted);
  auto other = make_model(model.spec(), cpu(), 77);
  ZooProbeConfig quick = small_config();
  quick.iterations = 1;
  quick.tries = 1;
  cached_probes(*other, quick, cache, &cached);
  CHECK_FALSE(cached);
}

TEST_CASE("ZOO settings out of range are usage errors") {
  Model& model = trained();
  ZooProbeConfig cfg = small_config();
  cfg.probes_per_class = 0;
  CHECK_THROWS_AS(make_probes(model, cfg), UsageError);
  cfg = small_config();
  cfg.zoo.h = 0;
  CHECK_THROWS_AS(make_probes(model, cfg), UsageError);
  cfg = small_config();
  cfg.accept = 1.5f;
  CHECK_THROWS_AS(make_probes(model, cfg), UsageError);
}
