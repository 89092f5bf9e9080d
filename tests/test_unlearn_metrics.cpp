// The unlearning metrics: the logistic regression behind MIA-efficacy on hand-worked cases, the membership features
// on hand-made probability rows, UA/RA/TA/forgotten-class accuracy against predictions computed independently, the
// attack's behaviour on a memorising model, and bad inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "engine/trainer.h"
#include "engine/unlearn/metrics.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::unlearn;

namespace {

std::vector<int64_t> indices_where(const Dataset& d, bool (*keep)(int64_t label, int64_t index)) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.size(); ++i)
    if (keep(d.labels.i64()[i], i)) out.push_back(i);
  return out;
}

// Predictions by a path independent of the metrics code: a plain eval-mode forward of the whole set, argmax here.
std::vector<int64_t> predictions_of(Model& model, const Dataset& d) {
  const Tensor logits = model.forward(d.images, false).to_cpu();
  const int64_t k = logits.dim(1);
  std::vector<int64_t> out(static_cast<size_t>(d.size()));
  for (int64_t i = 0; i < d.size(); ++i) {
    const float* row = logits.f32() + i * k;
    out[static_cast<size_t>(i)] = std::max_element(row, row + k) - row;
  }
  return out;
}

TrainConfig sgd(int epochs, int64_t batch, float lr) {
  TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch = batch;
  cfg.optim.lr = lr;
  cfg.optim.momentum = 0.9f;
  cfg.seed = 5;
  return cfg;
}

double accuracy_of(const LogisticModel& m, const std::vector<double>& x, const std::vector<int>& y) {
  const std::vector<double> p = predict_probability(m, x);
  int64_t ok = 0;
  for (size_t i = 0; i < y.size(); ++i) ok += (p[i] >= 0.5) == (y[i] == 1);
  return static_cast<double>(ok) / static_cast<double>(y.size());
}

}  // namespace

TEST_CASE("unlearn metrics: logistic regression matches hand-worked optima") {
  SUBCASE("symmetric data stays exactly at zero") {
    // The gradient at zero is exactly zero, so no step is taken and every probability is 1/2.
    const LogisticModel m = fit_logistic({-1, 1, -1, 1}, {0, 0, 1, 1}, 1);
    CHECK(m.weights[0] == 0.0);
    CHECK(m.bias == 0.0);
    const double x = 0.3;
    CHECK(m.probability(&x) == 0.5);
  }
  SUBCASE("a constant feature leaves the bias at the log-odds") {
    // Three positives of four: the optimum is P = 3/4, bias = log 3, and the constant feature's weight stays 0.
    const LogisticModel m = fit_logistic({2, 2, 2, 2}, {1, 1, 1, 0}, 1);
    CHECK(m.weights[0] == 0.0);
    CHECK(m.bias == doctest::Approx(std::log(3.0)).epsilon(1e-10));
    const double x = 2;
    CHECK(m.probability(&x) == doctest::Approx(0.75).epsilon(1e-10));
  }
  SUBCASE("overlapping groups with the L2 term") {
    // x = -1: one positive of four, x = +1: three of four (already standardised). By symmetry the bias is 0 and the
    // weight solves sigmoid(w) - 3/4 + l2 * w = 0 (mean-loss gradient plus penalty), found here by bisection.
    LogisticConfig cfg;
    cfg.l2 = 0.05;
    const LogisticModel m = fit_logistic({-1, -1, -1, -1, 1, 1, 1, 1}, {1, 0, 0, 0, 1, 1, 1, 0}, 1, cfg);
    double lo = 0, hi = 5;
    for (int i = 0; i < 200; ++i) {
      const double mid = 0.5 * (lo + hi);
      (1.0 / (1.0 + std::exp(-mid)) - 0.75 + cfg.l2 * mid > 0 ? hi : lo) = mid;
    }
    CHECK(m.scale[0] == 1.0);
    CHECK(m.weights[0] == doctest::Approx(lo).epsilon(1e-9));
    CHECK(std::fabs(m.bias) < 1e-12);
    CHECK(m.weights[0] < std::log(3.0));  // the penalty shrinks the unregularised log 3
    CHECK(m.iterations < 10);
  }
}

TEST_CASE("unlearn metrics: logistic regression on separable data") {
  // Feature 0 separates the classes (means -2 and +2, spread 1), feature 1 is the same noise for both.
  test::Rng rng(11);
  std::vector<double> x;
  std::vector<int> y;
  for (int i = 0; i < 400; ++i) {
    const int label = i % 2;
    x.push_back((label ? 2.0 : -2.0) + rng.uniform(-1.0f, 1.0f));
    x.push_back(rng.uniform(-5.0f, 5.0f));
    y.push_back(label);
  }
  const LogisticModel m = fit_logistic(x, y, 2);
  CHECK(accuracy_of(m, x, y) == 1.0);
  CHECK(m.raw_weight(0) > 0);
  CHECK(std::fabs(m.weights[1]) < 0.1 * m.weights[0]);
  for (double& v : x) v = -v;  // mirrored data: the informative weight changes sign
  const LogisticModel mirrored = fit_logistic(x, y, 2);
  CHECK(accuracy_of(mirrored, x, y) == 1.0);
  CHECK(mirrored.raw_weight(0) < 0);
  CHECK(std::isfinite(mirrored.bias));
}

TEST_CASE("unlearn metrics: identical feature distributions give chance accuracy") {
  test::Rng rng(12);
  std::vector<double> members, nonmembers, targets;
  for (int i = 0; i < 3000 * 3; ++i) {
    members.push_back(rng.uniform(-1.0f, 1.0f));
    nonmembers.push_back(rng.uniform(-1.0f, 1.0f));
  }
  for (int i = 0; i < 500 * 3; ++i) targets.push_back(rng.uniform(-1.0f, 1.0f));
  MembershipAttackConfig cfg;
  cfg.max_per_side = 2000;
  const MembershipAttackResult r = membership_attack(members, nonmembers, targets, cfg);
  CHECK(r.fit_per_side == 2000);
  CHECK(r.fit_accuracy > 0.45);
  CHECK(r.fit_accuracy < 0.55);
  for (double w : r.classifier.weights) CHECK(std::fabs(w) < 0.15);
  CHECK(r.nonmember_fraction >= 0.0);
  CHECK(r.nonmember_fraction <= 1.0);
}

TEST_CASE("unlearn metrics: the fit and the attack are deterministic bit for bit") {
  test::Rng rng(13);
  std::vector<double> members, nonmembers, targets;
  for (int i = 0; i < 1500 * 3; ++i) members.push_back(rng.uniform(0.0f, 1.0f));
  for (int i = 0; i < 900 * 3; ++i) nonmembers.push_back(rng.uniform(-0.2f, 0.8f));
  for (int i = 0; i < 300 * 3; ++i) targets.push_back(rng.uniform(-0.1f, 0.9f));
  MembershipAttackConfig cfg;
  cfg.max_per_side = 700;
  cfg.seed = 21;
  const MembershipAttackResult a = membership_attack(members, nonmembers, targets, cfg);
  const MembershipAttackResult b = membership_attack(members, nonmembers, targets, cfg);
  CHECK(a.fit_per_side == 700);
  CHECK(test::bit_identical(a.classifier.weights, b.classifier.weights));
  CHECK(std::memcmp(&a.classifier.bias, &b.classifier.bias, sizeof(double)) == 0);
  CHECK(std::memcmp(&a.nonmember_fraction, &b.nonmember_fraction, sizeof(double)) == 0);
  CHECK(a.fit_accuracy > 0.55);  // the shifted distributions are distinguishable
  // Another seed keeps other samples, so the fit moves.
  cfg.seed = 22;
  const MembershipAttackResult c = membership_attack(members, nonmembers, targets, cfg);
  CHECK_FALSE(test::bit_identical(a.classifier.weights, c.classifier.weights));
}

TEST_CASE("unlearn metrics: membership features of hand-made probability rows") {
  const double probs[3] = {0.7, 0.2, 0.1};
  const double entropy = -(0.7 * std::log(0.7) + 0.2 * std::log(0.2) + 0.1 * std::log(0.1));
  MembershipFeatures f = membership_features(probs, 3, 0);
  CHECK(f[0] == doctest::Approx(std::log(0.7)).epsilon(1e-14));
  CHECK(f[1] == doctest::Approx(entropy).epsilon(1e-14));
  CHECK(f[2] == doctest::Approx(-0.3 * std::log(0.7) - 0.2 * std::log(0.8) - 0.1 * std::log(0.9)).epsilon(1e-14));
  f = membership_features(probs, 3, 2);
  CHECK(f[0] == doctest::Approx(std::log(0.1)).epsilon(1e-14));
  CHECK(f[1] == doctest::Approx(entropy).epsilon(1e-14));
  CHECK(f[2] == doctest::Approx(-0.9 * std::log(0.1) - 0.7 * std::log(0.3) - 0.2 * std::log(0.8)).epsilon(1e-14));
  // A certain wrong prediction: the logarithms of 0 are clamped at log(1e-30), the entropy is 0.
  const double certain[3] = {1.0, 0.0, 0.0};
  f = membership_features(certain, 3, 1);
  CHECK(f[0] == doctest::Approx(std::log(1e-30)).epsilon(1e-14));
  CHECK(f[1] == 0.0);
  CHECK(f[2] == doctest::Approx(-2 * std::log(1e-30)).epsilon(1e-14));
  // Certain and right: every feature is at its member-like extreme of 0.
  f = membership_features(certain, 3, 0);
  CHECK(f[0] == 0.0);
  CHECK(f[1] == 0.0);
  CHECK(f[2] == 0.0);
}

TEST_CASE("unlearn metrics: UA RA TA and forgotten-class accuracy match a hand count") {
  // Noisy labels keep the accuracies away from 0 and 1, so the counts below are not trivially equal.
  const Dataset train_set = test::synthetic_dataset(240, 4, 1, true, 0.3);
  const Dataset test_set = test::synthetic_dataset(160, 4, 2, true, 0.3);
  auto be = make_cpu_backend(1);
  auto model = make_model(spec_for_data("lenet5", train_set), *be, 3);
  train(*model, train_set, sgd(1, 32, 0.02f));

  const std::vector<int64_t> test_pred = predictions_of(*model, test_set);
  const EvalReport eval = evaluate(*model, test_set);

  SUBCASE("class forgetting") {
    const Dataset forget = subset(train_set, indices_where(train_set, [](int64_t y, int64_t) { return y == 2; }));
    const Dataset retain = subset(train_set, indices_where(train_set, [](int64_t y, int64_t) { return y != 2; }));
    MetricsConfig cfg;
    cfg.chunk = 37;  // chunks that do not divide the set sizes
    const UnlearningMetrics m = measure_unlearning(*model, forget, retain, test_set, {2}, cfg);
    MESSAGE(m.to_json().dump());

    auto correct = [](const std::vector<int64_t>& pred, const Dataset& d) {
      int64_t ok = 0;
      for (int64_t i = 0; i < d.size(); ++i) ok += pred[static_cast<size_t>(i)] == d.labels.i64()[i];
      return ok;
    };
    const int64_t forget_ok = correct(predictions_of(*model, forget), forget);
    const int64_t retain_ok = correct(predictions_of(*model, retain), retain);
    int64_t kept_n = 0, kept_ok = 0, gone_n = 0, gone_ok = 0;
    for (int64_t i = 0; i < test_set.size(); ++i) {
      const int64_t y = test_set.labels.i64()[i];
      const bool ok = test_pred[static_cast<size_t>(i)] == y;
      (y == 2 ? gone_n : kept_n) += 1;
      (y == 2 ? gone_ok : kept_ok) += ok;
    }
    CHECK(m.n_forget == forget.size());
    CHECK(m.n_retain == retain.size());
    CHECK(m.n_test == 160);
    CHECK(m.ua == 1.0 - static_cast<double>(forget_ok) / static_cast<double>(forget.size()));
    CHECK(m.ra == static_cast<double>(retain_ok) / static_cast<double>(retain.size()));
    CHECK(m.ta == static_cast<double>(kept_ok) / static_cast<double>(kept_n));
    REQUIRE(m.forgotten_test_acc.has_value());
    CHECK(*m.forgotten_test_acc == static_cast<double>(gone_ok) / static_cast<double>(gone_n));
    CHECK(m.per_class_accuracy == eval.per_class_accuracy);
    CHECK(m.per_class_count == eval.per_class_count);
    CHECK(m.mia >= 0.0);
    CHECK(m.mia <= 1.0);
    // The numbers are not all degenerate, or the comparison above proves little.
    CHECK(m.ra > 0.3);
    CHECK(m.ra < 1.0);

    const nlohmann::json j = m.to_json();
    std::set<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
    CHECK(keys == std::set<std::string>{"UA", "RA", "TA", "forgotten_test_acc", "MIA", "per_class_accuracy",
                                        "per_class_count", "n_forget", "n_retain", "n_test"});
    CHECK(j["UA"].get<double>() == m.ua);
    CHECK(j["forgotten_test_acc"].get<double>() == *m.forgotten_test_acc);
    CHECK(j["per_class_accuracy"].size() == 4);
    CHECK(j["per_class_count"][2].get<int64_t>() == gone_n);
    CHECK(j["n_test"].get<int64_t>() == 160);
  }
  SUBCASE("sample forgetting") {
    const Dataset forget = subset(train_set, indices_where(train_set, [](int64_t, int64_t i) { return i % 6 == 0; }));
    const Dataset retain = subset(train_set, indices_where(train_set, [](int64_t, int64_t i) { return i % 6 != 0; }));
    const UnlearningMetrics m = measure_unlearning(*model, forget, retain, test_set, {});
    CHECK(m.n_forget == 40);
    CHECK(m.ta == eval.accuracy);
    CHECK_FALSE(m.forgotten_test_acc.has_value());
    CHECK(m.to_json()["forgotten_test_acc"].is_null());
    // Same model, same inputs: the whole measurement repeats exactly.
    CHECK(measure_unlearning(*model, forget, retain, test_set, {}).to_json() == m.to_json());
  }
}

TEST_CASE("unlearn metrics: MIA separates a memorised forget set from an unseen one") {
  // Pure-noise images with arbitrary labels: a model can only fit them by memorising, so its outputs on its own
  // training samples differ sharply from those on unseen ones.
  const Dataset all = test::synthetic_dataset(480, 4, 7, false);
  const Dataset retain = subset(all, indices_where(all, [](int64_t, int64_t i) { return i < 160; }));
  const Dataset forget = subset(all, indices_where(all, [](int64_t, int64_t i) { return i >= 160 && i < 220; }));
  const Dataset test_set = subset(all, indices_where(all, [](int64_t, int64_t i) { return i >= 220; }));
  const Dataset seen = subset(all, indices_where(all, [](int64_t, int64_t i) { return i < 220; }));
  auto be = make_cpu_backend(1);
  const ModelSpec spec = spec_for_data("mlp", all, {128});
  const TrainConfig cfg = sgd(40, 20, 0.05f);

  // Trained on D_r and D_f (nothing unlearned): D_f looks like a member.
  auto memorised = make_model(spec, *be, 1);
  train(*memorised, seen, cfg);
  const UnlearningMetrics kept = measure_unlearning(*memorised, forget, retain, test_set, {});
  // Retrained on D_r alone (exact unlearning): D_f looks like the test set.
  auto retrained = make_model(spec, *be, 1);
  train(*retrained, retain, cfg);
  const UnlearningMetrics gone = measure_unlearning(*retrained, forget, retain, test_set, {});
  // Untrained: nothing memorised, the measure is still well defined.
  auto untrained = make_model(spec, *be, 1);
  const UnlearningMetrics fresh = measure_unlearning(*untrained, forget, retain, test_set, {});

  MESSAGE("MIA memorised " << kept.mia << ", retrained " << gone.mia << ", untrained " << fresh.mia);
  CHECK(kept.ra > 0.9);
  CHECK(kept.ua < 0.2);
  CHECK(kept.mia < 0.5);
  CHECK(gone.mia > 0.5);
  CHECK(gone.mia > kept.mia + 0.3);
  CHECK(fresh.mia >= 0.0);
  CHECK(fresh.mia <= 1.0);
}

TEST_CASE("unlearn metrics: bad inputs throw clear errors") {
  const Dataset data = test::synthetic_dataset(40, 4, 9, true);
  const Dataset forget = subset(data, {0, 1, 2});
  auto be = make_cpu_backend(1);
  auto model = make_model(spec_for_data("mlp", data, {8}), *be, 2);

  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, subset(data, {}), data, data, {}); }),
                       "forget set is empty"));
  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, forget, subset(data, {}), data, {}); }),
                       "retain set is empty"));
  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, forget, data, data, {4}); }),
                       "forgotten class 4"));
  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, forget, data, data, {-1}); }),
                       "forgotten class -1"));
  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, forget, data, data, {0, 1, 2, 3}); }),
                       "every class"));
  // A test set holding only forgotten classes leaves TA undefined.
  const Dataset only_class_0 = subset(data, {0, 4, 8});
  CHECK(test::contains(test::usage_error_of([&] { measure_unlearning(*model, forget, data, only_class_0, {0}); }),
                       "no sample of a retained class"));

  Dataset bad_label = subset(data, {0, 1});
  bad_label.labels.i64()[1] = 7;
  CHECK(test::contains(test::input_error_of([&] { measure_unlearning(*model, forget, data, bad_label, {}); }),
                       "label 7"));
  const Dataset wrong_shape = test::synthetic_dataset(4, 4, 9, true);
  Dataset reshaped = wrong_shape;
  reshaped.images = wrong_shape.images.reshape({4, 1, 16, 9});
  CHECK(test::contains(test::input_error_of([&] { measure_unlearning(*model, reshaped, data, data, {}); }),
                       "takes"));

  model->arena().params().f32()[0] = std::nanf("");
  CHECK(test::contains(test::input_error_of([&] { measure_unlearning(*model, forget, data, data, {}); }),
                       "non-finite logit"));

  CHECK(test::contains(test::usage_error_of([] { fit_logistic({1, 2}, {0, 2}, 1); }), "0 or 1"));
  CHECK(test::contains(test::usage_error_of([] { fit_logistic({1, 2}, {1, 1}, 1); }), "both 0 and 1"));
  CHECK(test::contains(test::usage_error_of([] { fit_logistic({1, 2, 3}, {0, 1}, 1); }), "feature values"));
  CHECK(test::contains(test::usage_error_of([] { fit_logistic({}, {}, 1); }), "no samples"));
  CHECK(test::contains(test::usage_error_of([] { fit_logistic({1, std::nan("")}, {0, 1}, 1); }), "not finite"));
  CHECK(test::contains(test::usage_error_of([] { membership_attack({}, {1, 2, 3}, {1, 2, 3}); }), "non-empty"));
}
