#include "engine/unlearn/methods.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "engine/error.h"
#include "engine/unlearn/update_log.h"
#include "kernels/elementwise.h"
#include "kernels/philox.h"

namespace lethe::unlearn {

namespace {

// Philox streams of the unlearning draws, apart from every other stream of the engine.
constexpr uint64_t kRelabelStream = 0x72656C6162656CULL;  // "relabel"; the epoch goes in the low bits
constexpr uint64_t kAscentOrderStream = 0x6173636E64ULL;  // "ascnd"
constexpr uint64_t kRetainOrderStream = 0x72657461696EULL;  // "retain"
constexpr uint64_t kCheckSampleStream = 0x636865636BULL;    // "check"

// A uniform integer in [0, n) from one 32-bit draw (high word of draw * n: no modulo bias worth the name).
int64_t uniform_below(uint32_t draw, int64_t n) {
  return static_cast<int64_t>((static_cast<uint64_t>(draw) * static_cast<uint64_t>(n)) >> 32);
}

uint32_t relabel_draw(uint64_t seed, int epoch, int64_t row) {
  return kernels::philox_word(seed, kRelabelStream + static_cast<uint64_t>(epoch) * 0x100000000ULL,
                              static_cast<uint64_t>(row));
}

// The shuffled order of pass `pass` over n rows.
std::vector<int64_t> pass_order(int64_t n, uint64_t seed, uint64_t stream, int64_t pass) {
  const kernels::Philox4 r = kernels::philox4x32_10(seed, static_cast<uint64_t>(pass), stream);
  return seeded_permutation(n, (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]);
}

// Endless seeded passes over a dataset, one batch at a time.
class BatchCycle {
 public:
  BatchCycle(const Dataset& data, Backend& be, int64_t batch, uint64_t seed, uint64_t stream)
      : data_(data), loader_(data, be), batch_(batch), seed_(seed), stream_(stream) {}
  void next() {
    if (begin_ >= data_.size() || order_.empty()) {
      order_ = pass_order(data_.size(), seed_, stream_, pass_++);
      begin_ = 0;
    }
    const int64_t end = std::min(begin_ + batch_, data_.size());
    loader_.load(order_, begin_, end, AugmentConfig{}, seed_, 0);
    begin_ = end;
  }
  const BatchLoader& loader() const { return loader_; }

 private:
  const Dataset& data_;
  BatchLoader loader_;
  int64_t batch_;
  uint64_t seed_, stream_;
  std::vector<int64_t> order_;
  int64_t begin_ = 0, pass_ = 0;
};

std::vector<int64_t> kept_classes(int64_t k, const std::vector<int64_t>& forgotten) {
  std::vector<int64_t> kept;
  for (int64_t c = 0; c < k; ++c)
    if (std::find(forgotten.begin(), forgotten.end(), c) == forgotten.end()) kept.push_back(c);
  return kept;
}

void check_forget_set(const Dataset& forget) {
  if (forget.size() == 0) throw UsageError("the forget set is empty: nothing to unlearn");
}

void check_retain_set(const Dataset& retain, const std::string& method) {
  if (retain.size() == 0)
    throw UsageError("the retain set is empty: " + method + " trains on the retained data, and forgetting every "
                     "training sample leaves none");
}

int64_t descent_steps(const std::vector<EpochReport>& epochs, int64_t batch) {
  int64_t steps = 0;
  for (const EpochReport& r : epochs) steps += (r.samples + batch - 1) / batch;
  return steps;
}

// Gradient ascent on D_f (neggrad, hu-approx), optionally with a descent step on D_r after each ascent step.
UnlearnResult ascend(Model& model, const UnlearnConfig& cfg, const Dataset& forget, const Dataset& retain,
                     const AscentProgressFn& progress) {
  const AscentConfig& a = cfg.ascent;
  if (a.batch < 0) throw UsageError("ascent batch must be >= 0 (0: the whole forget set)");
  if (a.epochs < 0 || a.max_steps < 0) throw UsageError("ascent epochs and max steps must be >= 0");
  if (a.epochs == 0 && a.max_steps == 0) throw UsageError("ascent needs epochs > 0 or max steps > 0");
  if (a.check_every <= 0) throw UsageError("ascent check interval must be positive");
  if (!(a.lr > 0) || !(a.retain_lr >= 0)) throw UsageError("ascent learning rates must be positive");
  if (a.interleave_retain) check_retain_set(retain, cfg.method + " interleaved with descent");
  check_fits(model, forget, "forget set");
  if (a.interleave_retain) check_fits(model, retain, "retain set");

  Backend& be = model.backend();
  const int64_t batch = a.batch > 0 ? std::min(a.batch, forget.size()) : forget.size();
  const int64_t per_pass = (forget.size() + batch - 1) / batch;
  const int64_t total = a.epochs > 0 ? a.epochs * per_pass : a.max_steps;
  const bool accuracy_rule = a.epochs == 0 && a.stop_forget_accuracy >= 0;
  BatchCycle forget_batches(forget, be, batch, cfg.seed, kAscentOrderStream);
  std::optional<BatchCycle> retain_batches;
  if (a.interleave_retain)
    retain_batches.emplace(retain, be, std::min(batch, retain.size()), cfg.seed, kRetainOrderStream);
  BatchGradients gradients(model);
  if (a.check_samples < 0) throw UsageError("ascent check sample size must be >= 0 (0: all of the forget set)");
  Dataset check_sample;  // what the stopping rule measures
  if (accuracy_rule && a.check_samples > 0 && a.check_samples < forget.size()) {
    std::vector<int64_t> rows = pass_order(forget.size(), cfg.seed, kCheckSampleStream, 0);
    rows.resize(static_cast<size_t>(a.check_samples));
    check_sample = subset(forget, rows);
  }
  const Dataset& checked = check_sample.size() > 0 ? check_sample : forget;
  const auto forget_accuracy = [&] { return evaluate(model, checked).accuracy; };

  UnlearnResult r;
  r.stopped_by = a.epochs > 0 ? "epochs" : "max steps";
  for (int64_t step = 0; step < total; ++step) {
    if (accuracy_rule && step % a.check_every == 0) {
      r.forget_accuracy = forget_accuracy();
      if (progress) progress(step, total, r.forget_accuracy);
      if (r.forget_accuracy <= a.stop_forget_accuracy) {
        r.stopped_by = "forget accuracy";
        break;
      }
    }
    const std::string where = "ascent step " + std::to_string(step + 1);
    forget_batches.next();
    gradients.compute(forget_batches.loader().images(), forget_batches.loader().labels(), !a.freeze_bn, where);
    Tensor params = model.arena().params();  // a view: the update writes into the arena
    kernels::AscentHyper up;
    up.lr = a.lr;
    up.sign = 1.0f;
    up.max_norm = a.max_norm;
    up.noise_std = a.noise_std;
    up.seed = cfg.seed;
    up.stream = static_cast<uint64_t>(step);  // fresh noise every step
    be.ascent_step(params, model.arena().grads(), up);
    ++r.ascent_steps;
    if (retain_batches) {
      retain_batches->next();
      gradients.compute(retain_batches->loader().images(), retain_batches->loader().labels(), !a.freeze_bn,
                        "descent step " + std::to_string(step + 1));
      kernels::AscentHyper down;
      down.lr = a.retain_lr;
      down.sign = -1.0f;
      down.max_norm = a.max_norm;
      be.ascent_step(params, model.arena().grads(), down);
      ++r.steps;
    }
    ++r.steps;
    if (progress && !accuracy_rule) progress(step + 1, total, -1);
  }
  if (accuracy_rule && r.stopped_by == "max steps") {
    r.forget_accuracy = forget_accuracy();
    if (r.forget_accuracy <= a.stop_forget_accuracy) r.stopped_by = "forget accuracy";
    if (progress) progress(total, total, r.forget_accuracy);
  }
  return r;
}

}  // namespace

RelabelFn forget_relabelling(const std::string& method, int64_t n_forget, int64_t k,
                             const std::vector<int64_t>& forgotten_classes, uint64_t seed) {
  if (method == "randlabel") {
    // Uniform over all K classes, drawn afresh every epoch.
    return [n_forget, seed, k](int epoch, int64_t row, int64_t label) {
      return row < n_forget ? uniform_below(relabel_draw(seed, epoch, row), k) : label;
    };
  }
  if (method == "amnesiac") {
    // Once per sample: a class other than its own, and outside the forgotten classes (relabelling a forgotten
    // class as another forgotten one would teach what is being removed).
    const std::vector<int64_t> kept = kept_classes(k, forgotten_classes);
    std::vector<std::vector<int64_t>> others(static_cast<size_t>(k));  // per true label, the classes to pick from
    for (int64_t label = 0; label < k; ++label)
      for (const int64_t c : kept)
        if (c != label) others[static_cast<size_t>(label)].push_back(c);
    return [n_forget, seed, others](int, int64_t row, int64_t label) {
      const std::vector<int64_t>& pool = others[static_cast<size_t>(label)];
      if (row >= n_forget || pool.empty()) return label;  // empty: K = 2 with the other class forgotten
      return pool[static_cast<size_t>(uniform_below(relabel_draw(seed, 0, row), int64_t(pool.size())))];
    };
  }
  return {};
}

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"retrain",  "finetune", "randlabel", "amnesiac",
                                                 "neggrad",  "hu-exact", "hu-approx"};
  return names;
}

bool is_ascent_method(const std::string& method) { return method == "neggrad" || method == "hu-approx"; }

nlohmann::json AscentConfig::to_json() const {
  return {{"lr", lr},
          {"batch", batch},
          {"epochs", epochs},
          {"max_steps", max_steps},
          {"stop_forget_accuracy", stop_forget_accuracy},
          {"check_every", check_every},
          {"check_samples", check_samples},
          {"interleave_retain", interleave_retain},
          {"retain_lr", retain_lr},
          {"max_norm", max_norm},
          {"noise_std", noise_std},
          {"freeze_bn", freeze_bn}};
}

nlohmann::json UnlearnConfig::to_json() const {
  nlohmann::json j = {{"method", method}, {"seed", seed}};
  if (!update_log.empty()) j["update_log"] = update_log;
  if (is_ascent_method(method))
    j["ascent"] = ascent.to_json();
  else
    j["train"] = train.to_json();
  return j;
}

nlohmann::json UnlearnResult::to_json() const {
  nlohmann::json j = {{"steps", steps},           {"ascent_steps", ascent_steps},     {"seconds", seconds},
                      {"stopped_by", stopped_by}, {"undone_updates", undone_updates}};
  j["forget_accuracy"] = forget_accuracy >= 0 ? nlohmann::json(forget_accuracy) : nlohmann::json(nullptr);
  return j;
}

UnlearnConfig default_config(const std::string& method, const TrainConfig& original) {
  const auto& names = method_names();
  if (std::find(names.begin(), names.end(), method) == names.end())
    throw UsageError("unknown unlearning method '" + method +
                     "' (methods: retrain, finetune, randlabel, amnesiac, neggrad, hu-exact, hu-approx)");
  UnlearnConfig c;
  c.method = method;
  c.seed = original.seed;
  TrainConfig& t = c.train;
  t.seed = original.seed;
  t.batch = original.batch;
  t.augment = original.augment;  // the original's data pipeline
  t.schedule.kind = "constant";
  if (method == "retrain" || method == "hu-exact") {
    // Retraining repeats the original recipe from a fresh initialisation; Hu et al.'s exact unlearning repeats it
    // from θ_0 ("fine-tune θ_0 on D_u minus X with the same settings").
    c.train = original;
  } else if (method == "finetune") {
    t.epochs = 5;
    t.optim.kind = "sgd";
    t.optim.lr = 0.01f;
    t.optim.momentum = 0.9f;
  } else if (method == "randlabel") {
    t.epochs = 4;
    t.optim.kind = "sgd";
    t.optim.lr = 0.01f;
    t.optim.momentum = 0.9f;
  } else if (method == "amnesiac") {
    t.epochs = 3;
    t.optim.kind = "adam";
    t.optim.lr = 1e-4f;
  } else if (method == "hu-approx") {
    // Hu et al.'s feature-recovery setting: one ascent step with lr 1 over all of X, BN frozen.
    AscentConfig& a = c.ascent;
    a.lr = 1.0f;
    a.batch = 0;
    a.epochs = 1;
    a.stop_forget_accuracy = -1;
    a.interleave_retain = false;
    a.freeze_bn = true;
  }
  if (method != "retrain" && method != "hu-exact") t.schedule.total_epochs = t.epochs;
  return c;
}

UnlearnResult run_unlearning(Model& model, const UnlearnConfig& cfg, const UnlearnSets& sets,
                             const UnlearnHooks& hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t k = model.spec().num_classes;
  check_forget_set(sets.forget);
  for (const int64_t c : sets.forgotten_classes)
    if (c < 0 || c >= k)
      throw UsageError("forgotten class " + std::to_string(c) + " is outside the model's classes 0.." +
                       std::to_string(k - 1));
  if (kept_classes(k, sets.forgotten_classes).empty())
    throw UsageError("every class is forgotten: nothing would be left to retain");
  if (!cfg.update_log.empty() && cfg.method != "amnesiac")
    throw UsageError("an update log applies to the amnesiac method only");

  UnlearnResult r;
  if (is_ascent_method(cfg.method)) {
    r = ascend(model, cfg, sets.forget, sets.retain, hooks.ascent);
  } else {
    check_retain_set(sets.retain, cfg.method);
    RelabelFn relabel;
    if (!cfg.update_log.empty()) {
      if (static_cast<int64_t>(sets.forget_positions.size()) != sets.forget.size())
        throw UsageError("the stored-update variant needs the forget set's positions in the training split");
      r.undone_updates = undo_logged_updates(model, cfg.update_log, sets.forget_positions).undone_steps;
    } else {
      relabel = forget_relabelling(cfg.method, sets.forget.size(), k, sets.forgotten_classes, cfg.seed);
    }
    // randlabel and amnesiac train on D_f (its rows first) together with D_r, relabelling D_f.
    const Dataset combined = relabel ? concat({sets.forget, sets.retain}) : Dataset{};
    const Dataset* data = relabel ? &combined : &sets.retain;
    r.epochs = train(model, *data, cfg.train, {hooks.progress, hooks.on_epoch, relabel, {}});
    r.steps = descent_steps(r.epochs, cfg.train.batch);
    r.stopped_by = "epochs";
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lethe::unlearn
