// `lethe unlearn`: makes a trained model forget classes or samples with one of the unlearning methods, measures the
// result (UA, RA, TA, MIA-efficacy) and saves the unlearned model with the method, its configuration and the forget
// spec in its metadata. The data come from the split recorded in the original model, so the method sees exactly the
// images the model was trained on.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include <CLI/CLI.hpp>

#include "datasets/registry.h"
#include "engine/unlearn/methods.h"
#include "engine/unlearn/metrics.h"
#include "nets/model_io.h"
#include "nets/nets.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

struct UnlearnOptions {
  std::string model, out, base, updates, method = "neggrad";
  DataOptions data;
  std::vector<int64_t> forget_classes, forget_indices;
  double forget_fraction = 0;
  // Overrides of the method's defaults; applied only when given (Option::count).
  int epochs = 0;
  int64_t batch = 0;
  std::string optim;
  float lr = 0, momentum = 0, weight_decay = 0;
  int64_t max_steps = 0, check_every = 0, check_samples = 0;
  double stop_forget_acc = 0;
  float retain_lr = 0, max_norm = 0, noise_std = 0;
  bool no_interleave = false, freeze_bn = false;
  std::map<std::string, CLI::Option*> given;
  bool has(const std::string& name) const {
    auto it = given.find(name);
    return it != given.end() && it->second->count() > 0;
  }
};

// The options that tune only one kind of method, for a clear error instead of a silently ignored flag.
const std::vector<std::string> kDescentOnly = {"--optim", "--momentum", "--weight-decay"};
const std::vector<std::string> kAscentOnly = {"--max-steps",   "--stop-forget-acc", "--check-every",
                                              "--check-samples", "--retain-lr",      "--no-interleave",
                                              "--max-norm",      "--noise-std"};

unlearn::UnlearnConfig make_config(const UnlearnOptions& o, const TrainConfig& original, const GlobalOptions& g) {
  unlearn::UnlearnConfig c = unlearn::default_config(o.method, original);
  const bool ascent = unlearn::is_ascent_method(o.method);
  for (const std::string& flag : ascent ? kDescentOnly : kAscentOnly)
    if (o.has(flag))
      throw UsageError(flag + " does not apply to --method " + o.method + " (" +
                       (ascent ? "a gradient-ascent method" : "a training method") + ")");
  if (g.seed_given) c.seed = c.train.seed = g.seed;
  if (o.has("--updates")) {
    if (o.method != "amnesiac") throw UsageError("--updates applies to --method amnesiac only");
    c.update_log = o.updates;
  }
  if (ascent) {
    unlearn::AscentConfig& a = c.ascent;
    if (o.has("--lr")) a.lr = o.lr;
    if (o.has("--batch")) a.batch = o.batch;
    if (o.has("--epochs")) a.epochs = o.epochs;
    if (o.has("--max-steps")) a.max_steps = o.max_steps;
    if (o.has("--stop-forget-acc")) a.stop_forget_accuracy = o.stop_forget_acc;
    if (o.has("--check-every")) a.check_every = o.check_every;
    if (o.has("--check-samples")) a.check_samples = o.check_samples;
    if (o.has("--retain-lr")) a.retain_lr = o.retain_lr;
    if (o.has("--no-interleave")) a.interleave_retain = false;
    if (o.has("--max-norm")) a.max_norm = o.max_norm;
    if (o.has("--noise-std")) a.noise_std = o.noise_std;
    if (o.has("--freeze-bn")) a.freeze_bn = true;
    return c;
  }
  TrainConfig& t = c.train;
  if (o.has("--epochs")) t.epochs = t.schedule.total_epochs = o.epochs;
  if (o.has("--batch")) t.batch = o.batch;
  if (o.has("--optim")) {
    t.optim.kind = o.optim;
    if (o.optim != "sgd") t.optim.momentum = 0;
  }
  if (o.has("--lr")) t.optim.lr = o.lr;
  if (o.has("--momentum")) {
    if (t.optim.kind != "sgd") throw UsageError("--momentum applies to --optim sgd only");
    t.optim.momentum = o.momentum;
  }
  if (o.has("--weight-decay")) t.optim.weight_decay = o.weight_decay;
  if (o.has("--freeze-bn")) t.freeze_bn = true;
  lr_at(t.schedule, t.optim.lr, 0);  // bad schedule parameters fail before any work
  return c;
}

// The forget spec from the flags, or the one recorded in the model's split when no flag is given.
ForgetSpec forget_spec(const UnlearnOptions& o, const SplitSpec& recorded, int64_t num_classes) {
  if (o.has("--forget-fraction") && o.forget_classes.empty())
    throw UsageError("--forget-fraction needs --forget CLASS[,CLASS...]: the classes it takes a fraction of");
  if (o.has("--forget-fraction") && !(o.forget_fraction > 0 && o.forget_fraction <= 1))
    throw UsageError("--forget-fraction " + std::to_string(o.forget_fraction) + " is outside (0, 1]");
  for (const int64_t c : o.forget_classes)
    if (c < 0 || c >= num_classes)
      throw UsageError("--forget: class " + std::to_string(c) + " is out of range (the model has classes 0.." +
                       std::to_string(num_classes - 1) + ")");
  if (o.forget_classes.empty() && o.forget_indices.empty()) {
    if (recorded.forget.empty())
      throw UsageError("nothing to forget: give --forget CLASS[,CLASS...] (with --forget-fraction P for part of "
                       "each class) or --forget-indices I[,I...]");
    return recorded.forget;
  }
  ForgetSpec f;
  if (o.has("--forget-fraction")) {
    for (const int64_t c : o.forget_classes) f.fractions.push_back({c, o.forget_fraction});
  } else {
    f.classes = o.forget_classes;
    std::sort(f.classes.begin(), f.classes.end());
    f.classes.erase(std::unique(f.classes.begin(), f.classes.end()), f.classes.end());
    if (static_cast<int64_t>(f.classes.size()) >= num_classes)
      throw UsageError("--forget names every class of the model: nothing would be left to retain");
  }
  f.indices = o.forget_indices;
  return f;
}

// The split the model was trained with, from its metadata; a model without one cannot be unlearned faithfully.
struct TrainedOn {
  SplitSpec spec;
  std::string part;
  TrainConfig recipe;
  uint64_t seed = 0;
};
TrainedOn trained_on(const Model& model, const std::string& path, const std::string& dataset) {
  const nlohmann::json& meta = model.metadata();
  const auto missing = [&](const std::string& what) {
    return UsageError(path + " records no " + what + " in its metadata, so the data it was trained on is unknown; "
                      "unlearning needs a model trained by 'lethe train' (with --split FILE for a custom split)");
  };
  if (!meta.contains("split") || !meta["split"].is_object() || !meta["split"].contains("spec")) throw missing("split");
  if (!meta.contains("train") || !meta["train"].is_object()) throw missing("training recipe");
  TrainedOn t;
  t.spec = SplitSpec::from_json(meta["split"]["spec"], path + " metadata");
  t.part = meta["split"].value("part", "");
  t.recipe = TrainConfig::from_json(meta["train"], path + " metadata 'train'");
  t.seed = meta.value("seed", uint64_t{0});
  if (t.spec.dataset != dataset)
    throw UsageError(path + " was trained on " + t.spec.dataset + ", not on " + dataset);
  if (meta.value("limit", int64_t{0}) > 0)
    throw UsageError(path + " was trained with --limit (a shuffled subset, not a split part); unlearning needs the "
                     "exact training set: train on a split part instead");
  if (t.part != "train" && t.part != "user")
    throw UsageError(path + " was trained on split part '" + t.part + "'; unlearning forgets from the part a model "
                     "was trained on, which must be 'train' (or 'user', Hu et al.'s D_u)");
  if ((t.part == "user") != (t.spec.user_pool > 0))
    throw UsageError(path + " was trained on part '" + t.part + "' but its split draws the forget set from " +
                     (t.spec.user_pool > 0 ? "the user pool" : "the training part"));
  return t;
}

int run_unlearn(const UnlearnOptions& o, const GlobalOptions& g) {
  if (o.method == "hu-exact" && o.base.empty())
    throw UsageError("--method hu-exact fine-tunes θ_0 on D_u minus X: give θ_0 with --base FILE");
  if (o.method != "hu-exact" && !o.base.empty()) throw UsageError("--base applies to --method hu-exact only");
  auto be = open_backend(g);
  auto model = load_model(o.model, *be);
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  const Dataset full_train = load_dataset(ref, Split::Train, load);
  const Dataset full_test = load_dataset(ref, Split::Test, load);
  check_data_fits_model(full_train, model->spec(), o.model);
  const TrainedOn orig = trained_on(*model, o.model, full_train.name);

  SplitSpec spec = orig.spec;
  spec.forget = forget_spec(o, orig.spec, model->spec().num_classes);
  const SplitParts parts = make_split(spec, full_train, full_test);
  const Dataset forget = subset(full_train, parts.forget);
  const Dataset retain = subset(full_train, parts.retain);
  const Dataset test = subset(full_test, parts.test);
  if (forget.size() == 0) throw UsageError("the forget spec selects no training image");
  note(g, "forget " + group_digits(forget.size()) + " images, retain " + group_digits(retain.size()) + " (split " +
              spec.hash() + ", part '" + orig.part + "')");

  unlearn::UnlearnConfig cfg = make_config(o, orig.recipe, g);
  std::unique_ptr<Model> start;
  if (o.method == "retrain") {
    start = make_model(model->spec(), *be, orig.seed);  // the original's initialisation seed
  } else if (o.method == "hu-exact") {
    start = load_model(o.base, *be);
    if (start->spec().arch != model->spec().arch || start->arena().size() != model->arena().size())
      throw InputError(o.base + ": θ_0 is a " + start->spec().arch + " with " +
                       group_digits(start->arena().size()) + " parameters, the model a " + model->spec().arch +
                       " with " + group_digits(model->arena().size()));
  }
  Model& target = start ? *start : *model;
  target.metadata() = model->metadata();
  note(g, "method: " + cfg.method + " " + cfg.to_json().dump());

  const bool ascent = unlearn::is_ascent_method(cfg.method);
  EpochLog log(g, cfg.train.epochs);
  std::optional<Progress> ascent_bar;
  const auto on_ascent = [&](int64_t step, int64_t total, double forget_acc) {
    if (!ascent_bar) ascent_bar.emplace(cfg.method, total, g.quiet);
    ascent_bar->update(step, forget_acc >= 0 ? "forget acc " + percent(forget_acc) : std::string());
  };
  const unlearn::UnlearnResult result = unlearn::run_unlearning(
      target, cfg, {forget, retain, spec.forget.classes, parts.forget}, {log.progress(), log.on_epoch(), on_ascent});
  ascent_bar.reset();

  note(g, "measuring UA, RA, TA and MIA-efficacy");
  const unlearn::UnlearningMetrics metrics =
      unlearn::measure_unlearning(target, forget, retain, test, spec.forget.classes);

  nlohmann::json split_json = split_record(spec, parts, orig.part);
  nlohmann::json& meta = target.metadata();
  meta["split"] = split_json;
  meta["command"] = g.command_line;
  meta["device"] = be->name();
  meta["unlearning"] = {{"method", cfg.method},
                        {"config", cfg.to_json()},
                        {"forget", spec.to_json().at("forget")},
                        {"original", o.model},
                        {"base", o.base.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.base)},
                        {"result", result.to_json()},
                        {"metrics", metrics.to_json()}};
  meta["test"] = {{"accuracy", metrics.ta}, {"n", metrics.n_test}};
  save_model(target, o.out);

  // "forget" lists the classes touched: the whole classes, then those a fraction is taken of.
  std::vector<int64_t> classes = spec.forget.classes;
  for (const ClassFraction& f : spec.forget.fractions) classes.push_back(f.cls);
  if (g.json) {
    nlohmann::json j = metrics.to_json();
    j["method"] = cfg.method;
    j["forget"] = classes;
    j["forget_spec"] = meta["unlearning"]["forget"];
    j["seconds"] = result.seconds;
    j["steps"] = result.steps;
    j["stopped_by"] = result.stopped_by;
    if (!cfg.update_log.empty()) j["undone_updates"] = result.undone_updates;
    j["config"] = cfg.to_json();
    j["epochs"] = ascent ? nlohmann::json::array() : log.epochs();
    j["model"] = o.out;
    j["split"] = split_json;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const std::string forgotten = metrics.forgotten_test_acc ? percent(*metrics.forgotten_test_acc) : "n/a";
  std::printf("%s: %s steps in %.1f s (stopped by %s)\n", cfg.method.c_str(), group_digits(result.steps).c_str(),
              result.seconds, result.stopped_by.c_str());
  std::printf("UA %s  RA %s  TA %s  forgotten-class test acc %s  MIA-efficacy %s\n", percent(metrics.ua).c_str(),
              percent(metrics.ra).c_str(), percent(metrics.ta).c_str(), forgotten.c_str(),
              percent(metrics.mia).c_str());
  std::printf("saved %s\n", o.out.c_str());
  return 0;
}

}  // namespace

Command add_unlearn_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<UnlearnOptions>();
  CLI::App* app = parent.add_subcommand("unlearn", "Make a trained model forget classes or samples, and measure it");
  app->add_option("--model", o->model, "The original model θ_o (.safetensors, trained by lethe train)")->required();
  app->add_option("--out", o->out, "Where to save the unlearned model")->required();
  add_data_options(*app, o->data);
  app->add_option("--method", o->method, "Unlearning method")
      ->check(CLI::IsMember(unlearn::method_names()))
      ->capture_default_str();
  const auto opt = [&](const std::string& name, auto& value, const std::string& help) {
    CLI::Option* option = app->add_option(name, value, help);
    o->given[name] = option;
    return option;
  };
  opt("--forget", o->forget_classes, "Classes to forget (e.g. 3 or 2,5)")->delimiter(',');
  opt("--forget-fraction", o->forget_fraction, "Forget this fraction (0, 1] of each --forget class instead");
  opt("--forget-indices", o->forget_indices, "Training-split indices to forget (sample unlearning)")->delimiter(',');
  opt("--base", o->base, "θ_0, the model hu-exact fine-tunes (Hu et al.'s pretrained model)");
  opt("--updates", o->updates,
      "amnesiac: undo the updates logged by lethe train --log-updates for the batches holding D_f, then train on D_r "
      "for --epochs (the stored-update variant)");
  opt("--epochs", o->epochs, "Epochs (training methods), or passes over D_f (ascent methods; 0: until the stop rule)")
      ->check(CLI::Range(0, 100000));
  opt("--batch", o->batch, "Mini-batch size (ascent methods: 0 takes all of D_f in one step)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  opt("--optim", o->optim, "Optimizer of the training methods: sgd, adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  opt("--lr", o->lr, "Learning rate (ascent methods: of the ascent steps)")->check(CLI::PositiveNumber);
  opt("--momentum", o->momentum, "SGD momentum (training methods)")->check(CLI::Range(0.0, 1.0));
  opt("--weight-decay", o->weight_decay, "Weight decay (training methods)")->check(CLI::NonNegativeNumber);
  opt("--max-steps", o->max_steps, "neggrad: at most this many ascent steps")->check(CLI::NonNegativeNumber);
  opt("--stop-forget-acc", o->stop_forget_acc, "neggrad: stop once accuracy on D_f is at or below this (< 0: never)");
  opt("--check-every", o->check_every, "neggrad: measure the forget accuracy every N ascent steps")
      ->check(CLI::PositiveNumber);
  opt("--check-samples", o->check_samples,
      "neggrad: measure it on a seeded sample of at most N forget images (0: all)")
      ->check(CLI::NonNegativeNumber);
  opt("--retain-lr", o->retain_lr, "neggrad: learning rate of the interleaved descent steps on D_r")
      ->check(CLI::NonNegativeNumber);
  o->given["--no-interleave"] = app->add_flag("--no-interleave", o->no_interleave,
                                              "neggrad: pure gradient ascent, without descent steps on D_r");
  opt("--max-norm", o->max_norm, "Ascent methods: clip each step's gradient to this L2 norm")
      ->check(CLI::NonNegativeNumber);
  opt("--noise-std", o->noise_std, "Ascent methods: Gaussian noise on every update (parameter-obfuscation defence)")
      ->check(CLI::NonNegativeNumber);
  o->given["--freeze-bn"] = app->add_flag("--freeze-bn", o->freeze_bn, "BatchNorm in eval mode during unlearning");
  add_global_options(*app, g);
  return {app, [o, &g] { return run_unlearn(*o, g); }};
}

}  // namespace lethe::cli
