// The unlearning methods (engine/unlearn/methods.h) on a small synthetic task: each forgets and keeps what it should,
// retraining is training on D_r bit for bit, Hu et al.'s two methods leave exactly the update their attack inverts,
// the relabelling draws are what the methods promise, the ascent loop's stopping rule holds, and bad configurations
// are usage errors.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "engine/trainer.h"
#include "engine/unlearn/methods.h"
#include "engine/unlearn/metrics.h"
#include "engine/unlearn/update_log.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::unlearn;

namespace {

constexpr int64_t kClasses = 4;
constexpr int64_t kForgotten = 1;

struct Task {
  Dataset train, test, forget, retain;
  ModelSpec spec;
  TrainConfig recipe;
  uint64_t init_seed = 11;
};

// 400 training images of 4 classes; D_f is class 1. The original learns the task in 3 epochs.
const Task& task() {
  static const Task t = [] {
    Task t;
    t.train = test::synthetic_dataset(400, kClasses, 21);
    t.test = test::synthetic_dataset(200, kClasses, 22);
    std::vector<int64_t> forget_rows, retain_rows;
    for (int64_t i = 0; i < t.train.size(); ++i)
      (t.train.labels.i64()[i] == kForgotten ? forget_rows : retain_rows).push_back(i);
    t.forget = subset(t.train, forget_rows);
    t.retain = subset(t.train, retain_rows);
    t.spec = spec_for_data("lenet5", t.train);
    // Gentle enough that the softmax does not saturate: at p_y = 1 in f32 the gradient is exactly zero, and no
    // method could move the model (momentum 0.9 instead of 0.5 saturates it so that fine-tuning forgets nothing).
    t.recipe.epochs = 3;
    t.recipe.batch = 32;
    t.recipe.optim.lr = 0.05f;
    t.recipe.optim.momentum = 0.5f;
    t.recipe.seed = 5;
    return t;
  }();
  return t;
}

using test::cpu;

std::unique_ptr<Model> copy_of(const Model& m) {
  auto c = make_model_uninitialised(m.spec(), m.backend());
  c->copy_state_from(m);
  return c;
}

const Model& original() {
  static const std::unique_ptr<Model> m = [] {
    auto model = make_model(task().spec, cpu(), task().init_seed);
    train(*model, task().train, task().recipe);
    return model;
  }();
  return *m;
}

UnlearningMetrics measure(Model& m) {
  return measure_unlearning(m, task().forget, task().retain, task().test, {kForgotten});
}

std::vector<float> weights(const Model& m) { return m.arena().params().to_vector(); }

// dL/dθ of the mean cross-entropy over all of `data` in one batch, at the model's current weights (eval-mode BN).
std::vector<double> full_batch_gradient(Model& model, const Dataset& data) {
  BatchLoader loader(data, model.backend());
  std::vector<int64_t> rows(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) rows[static_cast<size_t>(i)] = i;
  loader.load(rows, 0, data.size(), AugmentConfig{}, 0, 0);
  BatchGradients(model).compute(loader.images(), loader.labels(), false, "test");
  return test::to_doubles(model.arena().grads());
}

}  // namespace

TEST_CASE("unlearn: every method forgets the class and keeps the others") {
  auto before = copy_of(original());
  const UnlearningMetrics orig = measure(*before);
  REQUIRE(orig.forgotten_test_acc.has_value());
  MESSAGE("original: forgotten-class test acc " << *orig.forgotten_test_acc << ", TA " << orig.ta);
  REQUIRE(*orig.forgotten_test_acc > 0.9);  // the original knows the class it will forget
  REQUIRE(orig.ta > 0.9);

  for (const std::string method : {"retrain", "finetune", "randlabel", "amnesiac", "neggrad"}) {
    CAPTURE(method);
    UnlearnConfig cfg = default_config(method, task().recipe);
    cfg.train.batch = 32;  // the defaults' epochs are sized for 60,000 images; this task has 300 retained
    if (method != "retrain") cfg.train.epochs = cfg.train.schedule.total_epochs = 4;
    if (method == "amnesiac") cfg.train.optim.lr = 1e-3f;
    auto model = method == "retrain" ? make_model(task().spec, cpu(), task().init_seed) : copy_of(original());
    const UnlearnResult r = run_unlearning(*model, cfg, {task().forget, task().retain, {kForgotten}, {}});
    const UnlearningMetrics after = measure(*model);
    MESSAGE(method << ": forgotten-class test acc " << *orig.forgotten_test_acc << " -> " << *after.forgotten_test_acc
                   << ", TA " << orig.ta << " -> " << after.ta << ", UA " << after.ua << ", MIA " << after.mia
                   << ", " << r.steps << " steps (" << r.stopped_by << ")");
    CHECK(*after.forgotten_test_acc <= 0.2);
    CHECK(after.ua >= 0.8);
    CHECK(after.ta >= orig.ta - 0.1);
    CHECK(after.ra >= orig.ra - 0.1);
    CHECK(r.steps > 0);
    CHECK(test::all_finite(model->arena().params()));
  }
}

TEST_CASE("unlearn: retrain is training on D_r from the original's seed, bit for bit") {
  const UnlearnConfig cfg = default_config("retrain", task().recipe);
  CHECK(cfg.train.to_json() == task().recipe.to_json());
  auto retrained = make_model(task().spec, cpu(), task().init_seed);
  run_unlearning(*retrained, cfg, {task().forget, task().retain, {kForgotten}, {}});
  auto reference = make_model(task().spec, cpu(), task().init_seed);
  train(*reference, task().retain, task().recipe);
  CHECK(weights(*retrained) == weights(*reference));
}

TEST_CASE("unlearn: the recorded recipe reads back (TrainConfig::from_json inverts to_json)") {
  TrainConfig c = task().recipe;
  c.optim.kind = "adamw";
  c.optim.weight_decay = 0.01f;
  c.schedule.kind = "multistep";
  c.schedule.milestones = {2, 3};
  c.augment.pad = 4;
  c.augment.flip = true;
  c.freeze_bn = true;
  c.drop_last = true;
  CHECK(TrainConfig::from_json(c.to_json(), "test").to_json() == c.to_json());
  nlohmann::json bad = c.to_json();
  bad["optim"]["lr"] = "fast";
  CHECK(test::contains(test::input_error_of([&] { TrainConfig::from_json(bad, "m.safetensors"); }), "'lr'"));
}

TEST_CASE("unlearn: hu-approx is one ascent step of lr 1 along the mean gradient over X") {
  auto model = copy_of(original());
  const std::vector<double> grad = full_batch_gradient(*model, task().forget);
  const std::vector<float> before = weights(*model);
  const UnlearnConfig cfg = default_config("hu-approx", task().recipe);
  const UnlearnResult r = run_unlearning(*model, cfg, {task().forget, task().retain, {kForgotten}, {}});
  CHECK(r.steps == 1);
  const std::vector<float> after = weights(*model);
  // θ_u - θ_o = +1 · ∇L(X; θ_o): the gradient estimate g* of Hu et al.'s feature recovery.
  std::vector<double> update(after.size()), want(after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    update[i] = static_cast<double>(after[i]) - before[i];
    want[i] = grad[i];
  }
  CHECK(test::nmse(update, want) < 1e-8);
}

TEST_CASE("unlearn: hu-exact leaves N(θ_o - θ_0) - (N - k)(θ_u - θ_0) = -lr · (sum over X of the gradient at θ_0)") {
  // Hu et al.'s setting in one full-batch SGD step: θ_0 fine-tuned on D_u gives θ_o, on D_u minus X gives θ_u.
  const Dataset user = subset(task().train, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const Dataset x = subset(user, {1, 5});  // k = 2 samples of class 1
  const Dataset user_minus_x = subset(user, {0, 2, 3, 4, 6, 7, 8, 9, 10, 11});
  TrainConfig recipe;
  recipe.epochs = 1;
  recipe.batch = 64;  // >= |D_u|: one step
  recipe.optim.lr = 1e-3f;
  recipe.freeze_bn = true;
  auto theta0 = copy_of(original());
  auto theta_o = copy_of(*theta0);
  train(*theta_o, user, recipe);
  auto theta_u = copy_of(*theta0);
  const UnlearnConfig cfg = default_config("hu-exact", recipe);
  run_unlearning(*theta_u, cfg, {x, user_minus_x, {}, {}});

  const std::vector<double> mean_grad_x = full_batch_gradient(*theta0, x);
  const std::vector<float> t0 = weights(*theta0), to = weights(*theta_o), tu = weights(*theta_u);
  const double n = 12, k = 2, lr = 1e-3;
  std::vector<double> estimate(t0.size()), want(t0.size());
  for (size_t i = 0; i < t0.size(); ++i) {
    estimate[i] = n * (static_cast<double>(to[i]) - t0[i]) - (n - k) * (static_cast<double>(tu[i]) - t0[i]);
    want[i] = -lr * k * mean_grad_x[i];
  }
  // f32 weights round each update to ~1e-7 relative of the weight; the difference of two such updates keeps ~1e-3.
  CHECK(test::nmse(estimate, want) < 1e-3);
}

TEST_CASE("unlearn: relabelling draws what randlabel and amnesiac promise") {
  const int64_t n_forget = 4000, k = 5;
  const std::vector<int64_t> forgotten = {1, 3};
  const auto labels_of = [&](const RelabelFn& f, int epoch) {
    std::vector<int64_t> y;
    for (int64_t row = 0; row < n_forget; ++row) y.push_back(f(epoch, row, row % 2 ? 1 : 3));
    return y;
  };
  SUBCASE("amnesiac: another class, outside the forgotten ones, fixed across epochs") {
    const RelabelFn f = forget_relabelling("amnesiac", n_forget, k, forgotten, 9);
    REQUIRE(f);
    const std::vector<int64_t> y = labels_of(f, 0);
    std::map<int64_t, int64_t> counts;
    for (const int64_t v : y) ++counts[v];
    CHECK(counts.size() == 3);  // 0, 2 and 4
    for (const auto& [c, count] : counts) {
      CHECK((c == 0 || c == 2 || c == 4));
      CHECK(std::abs(static_cast<double>(count) - n_forget / 3.0) < 200);  // ~6 sigma
    }
    CHECK(labels_of(f, 3) == y);
    CHECK(f(0, n_forget, 3) == 3);  // D_r keeps its labels
    CHECK(labels_of(forget_relabelling("amnesiac", n_forget, k, forgotten, 9), 0) == y);  // deterministic
    CHECK(labels_of(forget_relabelling("amnesiac", n_forget, k, forgotten, 10), 0) != y);
    // Sample forgetting: any class but the sample's own.
    const RelabelFn g = forget_relabelling("amnesiac", n_forget, k, {}, 9);
    std::set<int64_t> seen;
    for (int64_t row = 0; row < n_forget; ++row) {
      const int64_t v = g(0, row, 2);
      CHECK(v != 2);
      seen.insert(v);
    }
    CHECK(seen == std::set<int64_t>{0, 1, 3, 4});
  }
  SUBCASE("randlabel: uniform over every class, drawn afresh each epoch") {
    const RelabelFn f = forget_relabelling("randlabel", n_forget, k, forgotten, 9);
    REQUIRE(f);
    const std::vector<int64_t> e0 = labels_of(f, 0), e1 = labels_of(f, 1);
    std::vector<int64_t> counts(static_cast<size_t>(k), 0);
    for (const int64_t v : e0) ++counts[static_cast<size_t>(v)];
    for (const int64_t count : counts) CHECK(std::abs(static_cast<double>(count) - n_forget / 5.0) < 160);
    CHECK(e0 != e1);
    CHECK(f(2, n_forget + 7, 3) == 3);
  }
  CHECK_FALSE(forget_relabelling("finetune", n_forget, k, forgotten, 9));
}

TEST_CASE("unlearn: neggrad stops at the forget-accuracy target, or after max steps") {
  SUBCASE("the target") {
    auto model = copy_of(original());
    UnlearnConfig cfg = default_config("neggrad", task().recipe);
    cfg.ascent.batch = 32;
    const UnlearnResult r = run_unlearning(*model, cfg, {task().forget, task().retain, {kForgotten}, {}});
    CHECK(r.stopped_by == "forget accuracy");
    CHECK(r.forget_accuracy <= cfg.ascent.stop_forget_accuracy);
    CHECK(r.forget_accuracy == doctest::Approx(evaluate(*model, task().forget).accuracy));
    CHECK(r.steps == 2 * r.ascent_steps);  // one descent step on D_r after each ascent step
    CHECK(r.ascent_steps < cfg.ascent.max_steps);
  }
  SUBCASE("max steps, pure ascent") {
    auto model = copy_of(original());
    UnlearnConfig cfg = default_config("neggrad", task().recipe);
    cfg.ascent.max_steps = 3;
    cfg.ascent.lr = 1e-6f;  // too small to reach the target in 3 steps
    cfg.ascent.interleave_retain = false;
    const UnlearnResult r = run_unlearning(*model, cfg, {task().forget, task().retain, {kForgotten}, {}});
    CHECK(r.stopped_by == "max steps");
    CHECK(r.ascent_steps == 3);
    CHECK(r.steps == 3);
    CHECK(r.forget_accuracy > 0.5);
  }
  SUBCASE("the same seed gives the same weights, bit for bit; another seed other batches") {
    const auto run = [&](uint64_t seed) {
      auto model = copy_of(original());
      UnlearnConfig cfg = default_config("neggrad", task().recipe);
      cfg.seed = seed;
      cfg.ascent.batch = 16;
      cfg.ascent.max_steps = 4;
      cfg.ascent.stop_forget_accuracy = -1;
      cfg.ascent.noise_std = 1e-3f;
      run_unlearning(*model, cfg, {task().forget, task().retain, {kForgotten}, {}});
      return weights(*model);
    };
    CHECK(run(3) == run(3));
    CHECK(run(3) != run(4));
  }
}

TEST_CASE("unlearn: bad configurations are usage errors") {
  auto model = copy_of(original());
  const UnlearnConfig neggrad = default_config("neggrad", task().recipe);
  const UnlearnConfig finetune = default_config("finetune", task().recipe);
  CHECK(test::contains(test::usage_error_of([&] { default_config("forget-harder", task().recipe); }),
                       "unknown unlearning method"));
  CHECK(test::contains(test::usage_error_of([&] {
                         run_unlearning(*model, neggrad, {subset(task().forget, {}), task().retain, {}, {}});
                       }),
                       "forget set is empty"));
  CHECK(test::contains(test::usage_error_of([&] {
                         run_unlearning(*model, finetune, {task().train, subset(task().retain, {}), {0, 1, 2}, {}});
                       }),
                       "retain set is empty"));
  CHECK(test::contains(test::usage_error_of([&] {
                         run_unlearning(*model, finetune, {task().train, task().retain, {0, 1, 2, 3}, {}});
                       }),
                       "every class"));
  CHECK(test::contains(
      test::usage_error_of([&] { run_unlearning(*model, finetune, {task().forget, task().retain, {4}, {}}); }),
      "outside the model's classes"));
  UnlearnConfig no_budget = neggrad;
  no_budget.ascent.max_steps = 0;
  CHECK(test::contains(test::usage_error_of([&] {
                         run_unlearning(*model, no_budget, {task().forget, task().retain, {kForgotten}, {}});
                       }),
                       "max steps"));
  CHECK(weights(*model) == weights(original()));  // nothing ran
}

TEST_CASE("unlearn: amnesiac's stored updates undo exactly the batches that held the samples") {
  const Dataset& data = task().train;
  std::vector<int64_t> positions(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) positions[static_cast<size_t>(i)] = 1000 + i;  // split positions of rows
  TrainConfig cfg = task().recipe;
  cfg.shuffle = false;  // batches of 32 consecutive rows, so which batches hold a sample is known
  const test::TempDir dir("update_log");

  SUBCASE("every sample sensitive and forgotten: back to the initial weights") {
    auto model = make_model(task().spec, cpu(), task().init_seed);
    const std::vector<float> initial = weights(*model);
    UpdateRecorder recorder(*model, positions, positions);
    train(*model, data, cfg, {{}, {}, {}, recorder.hook()});
    CHECK(recorder.logged_steps() == 3 * 13);  // 3 epochs of ceil(400 / 32) steps
    recorder.save(dir.file("all.safetensors"));
    const UndoReport r = undo_logged_updates(*model, dir.file("all.safetensors"), positions);
    CHECK(r.undone_steps == 39);
    std::vector<double> got(initial.size()), want(initial.size());
    for (size_t i = 0; i < initial.size(); ++i) {
      got[i] = weights(*model)[i];
      want[i] = initial[i];
    }
    CHECK(test::nmse(got, want) < 1e-10);
  }
  SUBCASE("a few sensitive samples: only their batches are logged and undone") {
    auto model = make_model(task().spec, cpu(), task().init_seed);
    UpdateRecorder recorder(*model, positions, {1003, 1040, 1390});  // rows 3, 40, 390: batches 0, 1, 12
    train(*model, data, cfg, {{}, {}, {}, recorder.hook()});
    CHECK(recorder.logged_steps() == 3 * 3);
    recorder.save(dir.file("few.safetensors"));
    const std::vector<float> trained = weights(*model);

    auto undone = copy_of(*model);
    const UndoReport r = undo_logged_updates(*undone, dir.file("few.safetensors"), {1040});
    CHECK(r.undone_steps == 3);  // batch 1 of each epoch
    CHECK(r.logged_steps == 9);
    CHECK(weights(*undone) != trained);

    CHECK(test::contains(test::usage_error_of([&] {
                           undo_logged_updates(*copy_of(*model), dir.file("few.safetensors"), {1004});
                         }),
                         "not declared sensitive"));
    // The log belongs to the trained weights: applied to anything else it is refused.
    CHECK(test::contains(test::input_error_of([&] {
                           undo_logged_updates(*undone, dir.file("few.safetensors"), {1040});
                         }),
                         "weights hash"));
    CHECK(test::contains(test::input_error_of([&] {
                           undo_logged_updates(*model, dir.file("no-such-log.safetensors"), {1040});
                         }),
                         "no-such-log"));

    // Through the method: subtract, then repair on D_r (here 0 epochs: the subtraction alone).
    UnlearnConfig amnesiac = default_config("amnesiac", task().recipe);
    amnesiac.update_log = dir.file("few.safetensors");
    amnesiac.train.epochs = 0;
    auto via_method = copy_of(*model);
    const Dataset forget = subset(data, {40});
    const UnlearnResult m = run_unlearning(*via_method, amnesiac, {forget, task().retain, {}, {1040}});
    CHECK(m.undone_updates == 3);
    CHECK(weights(*via_method) == weights(*undone));
  }
}
