// `lethe audit`: the whole unlearning-leakage matrix in one resumable command. For every seed it trains (or finds in
// the work directory) the original model, makes it forget every forget set with every method, runs every attack on
// every unlearned model, appends one line per trial to OUT/results.jsonl, and writes the summary tables. `lethe report`
// rebuilds the summary from the results files alone. The plan, the log and the tables are attacks/audit.h.
//
// Honesty: the models the attacks see carry no metadata (no forget spec, no unlearning record); the param and
// inversion attacks get D_aux, the split part the attacker holds, which the forget spec does not touch; Hu's label
// inference reads only the two models' probabilities. Only the summary compares predictions with the truth.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include <CLI/CLI.hpp>

#include "attacks/audit.h"
#include "attacks/hu_label.h"
#include "attacks/invert.h"
#include "attacks/param.h"
#include "attacks/work_cache.h"
#include "datasets/png_grid.h"
#include "datasets/registry.h"
#include "engine/defenses.h"
#include "engine/profile_range.h"
#include "engine/unlearn/methods.h"
#include "engine/unlearn/metrics.h"
#include "nets/nets.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

namespace audit = attacks::audit;
using Clock = std::chrono::steady_clock;

// Bump when a cached model's meaning changes, so stale entries are never reused.
constexpr int kAuditCacheVersion = 1;

const std::vector<std::string>& zheng_methods() {
  static const std::vector<std::string> m = {"retrain", "finetune", "randlabel", "amnesiac", "neggrad"};
  return m;
}
const std::vector<std::string>& audit_attacks() {
  static const std::vector<std::string> a = {"param-dot", "param-diff", "invert-white", "invert-black", "hu-label"};
  return a;
}

struct AuditOptions {
  DataOptions data;
  std::string net = "lenet5", preset = "demo", out = "report", work, shard = "0/1";
  std::vector<std::string> methods, attacks, scenarios, defenses;
  std::vector<int64_t> classes;
  int seeds = 0, epochs = 0;
  double aux_fraction = 0.1;
  bool profile = false;
};

// Everything a preset fixes; flags given on the command line replace their part.
struct AuditSettings {
  audit::PlanConfig plan;
  int epochs = 5;  // the original's training epochs (lethe train's recipe)
  std::vector<std::string> param_classifiers = {"kmeans"};
  std::vector<std::string> invert_criteria = {"entropy", "threshold"};
  std::vector<std::string> hu_decisions = {"probability", "log-odds"};
  attacks::ParamAttackConfig param;
  attacks::InversionConfig invert;
  attacks::ZooProbeConfig zoo;
};

// demo: a meaningful subset that finishes in minutes on a 2-core CPU (reduced attack budgets, three classes, one
// seed); paper: every class, both scenarios, three seeds, every classifier, and each attack's full default budget.
AuditSettings preset_settings(const std::string& preset, int64_t num_classes) {
  AuditSettings s;
  s.plan.methods = zheng_methods();
  s.plan.attacks = audit_attacks();
  if (preset == "paper") {
    s.plan.scenarios = {"single", "multi"};
    s.plan.seeds = {0, 1, 2};
    for (int64_t c = 0; c < num_classes; ++c) s.plan.classes.push_back(c);
    s.param_classifiers = {"kmeans", "youden", "tree"};
    return s;
  }
  s.plan.scenarios = {"single"};
  s.plan.seeds = {0};
  s.plan.classes = {0, 3, 7};
  for (int64_t& c : s.plan.classes) c %= num_classes;
  s.invert.restarts = 4;
  s.invert.steps = 100;
  s.invert.population = 64;
  s.invert.generations = 40;
  s.invert.reference_epochs = 5;
  s.zoo.probes_per_class = 3;
  s.zoo.coordinates = 196;
  s.zoo.tries = 2;
  return s;
}

// Wall time per stage, for --profile.
class StageClock {
 public:
  // Runs f() as `stage`: timed, and an NVTX range of that name on a CUDA build (so Nsight Systems shows the stage).
  template <typename F>
  auto time(const std::string& stage, F&& f) {
    const ProfileRange range("audit: " + stage);
    const auto t0 = Clock::now();
    struct Add {
      StageClock& c;
      const std::string& s;
      Clock::time_point t0;
      ~Add() { c.seconds_[s] += std::chrono::duration<double>(Clock::now() - t0).count(); }
    } add{*this, stage, t0};
    return f();
  }
  void print() const {
    double total = 0;
    for (const auto& [stage, s] : seconds_) total += s;
    std::fprintf(stderr, "profile (wall seconds per stage):\n");
    for (const auto& [stage, s] : seconds_)
      std::fprintf(stderr, "  %-28s %9.1f  %5.1f%%\n", stage.c_str(), s, total > 0 ? 100 * s / total : 0.0);
    std::fprintf(stderr, "  %-28s %9.1f\n", "total", total);
  }

 private:
  std::map<std::string, double> seconds_;
};

struct AttackOutcome {
  nlohmann::json predictions = nlohmann::json::object(), scores = nlohmann::json::object();
  int64_t queries = 0;
};

class Audit {
 public:
  Audit(const AuditOptions& o, const GlobalOptions& g) : o_(o), g_(g) {}
  int run();

 private:
  void configure();
  std::unique_ptr<Model>& original_for(uint64_t seed);
  const Dataset& aux_for(uint64_t seed);
  struct RunData;
  RunData run_data(const audit::UnlearningRun& run);
  TrainConfig original_recipe(uint64_t seed) const;
  void log_metrics(const std::string& type, const std::string& key, const audit::UnlearningRun& run, Model& model,
                   nlohmann::json extra);
  std::unique_ptr<Model> unlearned_model(const audit::UnlearningRun& run, Model& original);
  std::unique_ptr<Model> defended_model(const audit::UnlearningRun& run, const DefenseSpec& defense,
                                        const Model& unlearned, bool logged);
  AttackOutcome attack(const audit::Trial& trial, Model& original, Model& target);

  const AuditOptions& o_;
  const GlobalOptions& g_;
  AuditSettings s_;
  std::unique_ptr<Backend> be_;
  Dataset full_train_, full_test_;
  std::string work_;  // the model cache directory
  std::optional<attacks::WorkCache> cache_;
  attacks::CacheCounts counts_;
  std::map<uint64_t, std::unique_ptr<Model>> originals_;
  std::map<uint64_t, attacks::Probes> probes_;
  std::map<uint64_t, Dataset> aux_;
  std::vector<DefenseSpec> defenses_;
  std::optional<audit::ResultsLog> log_;
  StageClock clock_;
};

// The data of one unlearning run: its split (the seed's, with the run's classes forgotten) and the parts the method
// and the metrics use.
struct Audit::RunData {
  SplitSpec spec;
  SplitParts parts;
  Dataset forget, retain, test;
};

SplitSpec split_for(const std::string& dataset, uint64_t seed, double aux_fraction) {
  SplitSpec spec;
  spec.dataset = dataset;
  spec.seed = seed;
  spec.aux_fraction = aux_fraction;
  return spec;
}

// lethe train's recipe for the original, with the dataset's default augmentation; the descent methods retrain by it.
TrainConfig Audit::original_recipe(uint64_t seed) const {
  TrainConfig recipe = standard_recipe(s_.epochs, seed);
  recipe.augment = default_augment(full_train_.name);
  return recipe;
}

std::unique_ptr<Model>& Audit::original_for(uint64_t seed) {
  std::unique_ptr<Model>& slot = originals_[seed];
  if (slot) return slot;
  const SplitSpec spec = split_for(full_train_.name, seed, o_.aux_fraction);
  const Dataset train_set = subset(full_train_, make_split(spec, full_train_, full_test_).train);
  const TrainConfig recipe = original_recipe(seed);
  const ModelSpec model_spec = spec_for_data(o_.net, train_set);
  const nlohmann::json key = {{"v", kAuditCacheVersion}, {"net", o_.net},
                              {"data", attacks::data_hash(train_set)}, {"split", spec.to_json()},
                              {"recipe", recipe.to_json()}, {"seed", seed}};
  slot = clock_.time("train original", [&] {
    return cache_->model("original", key, *be_, [&] {
      auto m = make_model(model_spec, *be_, seed);
      train(*m, train_set, recipe);
      return m;
    });
  });
  slot->metadata() = nlohmann::json::object();  // what the attacks see: weights only
  return slot;
}

Audit::RunData Audit::run_data(const audit::UnlearningRun& run) {
  RunData d;
  d.spec = split_for(full_train_.name, run.forget.seed, o_.aux_fraction);
  d.spec.forget.classes = run.forget.classes;
  d.parts = make_split(d.spec, full_train_, full_test_);
  d.forget = subset(full_train_, d.parts.forget);
  d.retain = subset(full_train_, d.parts.retain);
  d.test = subset(full_test_, d.parts.test);
  return d;
}

// A row of UA, RA, TA and MIA-efficacy for `model` (unlearned, or defended after that) under the run's split, with
// the run's coordinates and `extra` fields.
void Audit::log_metrics(const std::string& type, const std::string& key, const audit::UnlearningRun& run,
                        Model& model, nlohmann::json extra) {
  const RunData d = run_data(run);
  const unlearn::UnlearningMetrics metrics = clock_.time("unlearning metrics", [&] {
    return unlearn::measure_unlearning(model, d.forget, d.retain, d.test, d.spec.forget.classes);
  });
  nlohmann::json row = {{"type", type},         {"key", key},
                        {"seed", run.forget.seed}, {"scenario", run.forget.scenario},
                        {"forget", run.forget.classes}, {"method", run.method},
                        {"classes", model.spec().num_classes}, {"metrics", metrics.to_json()}};
  row.update(extra);
  log_->append(row);
}

std::unique_ptr<Model> Audit::unlearned_model(const audit::UnlearningRun& run, Model& original) {
  const uint64_t seed = run.forget.seed;
  const RunData d = run_data(run);
  unlearn::UnlearnConfig cfg = unlearn::default_config(run.method, original_recipe(seed));
  cfg.seed = cfg.train.seed = seed;
  const nlohmann::json key = {{"v", kAuditCacheVersion}, {"original", attacks::model_hash(original)},
                              {"forget", run.forget.classes}, {"split", d.spec.hash()}, {"config", cfg.to_json()}};
  auto model = clock_.time("unlearn", [&] {
    return cache_->model("unlearned-" + run.method, key, *be_, [&] {
      auto m = run.method == "retrain" ? make_model(original.spec(), *be_, seed) : attacks::copy_of(original);
      const unlearn::UnlearnResult r =
          unlearn::run_unlearning(*m, cfg, {d.forget, d.retain, d.spec.forget.classes, d.parts.forget});
      m->metadata() = {{"unlearning", r.to_json()}};  // kept in the cache, so a cached model reports its cost
      return m;
    });
  });
  const double seconds = model->metadata().value("unlearning", nlohmann::json::object()).value("seconds", 0.0);
  if (!log_->has(run.key())) log_metrics("unlearning", run.key(), run, *model, {{"seconds", seconds}});
  model->metadata() = nlohmann::json::object();  // the attacks never see the forget spec or the method
  return model;
}

// The key of a defended model's row (its metrics after the defense).
std::string defended_key(const audit::UnlearningRun& run, const DefenseSpec& defense) {
  return run.key() + "/" + defense.name();
}

// The unlearned model after `defense` (fine-tuning on the seed's held-out D_aux), and its row of metrics after the
// defense unless the log has it. Defenses are cheap next to unlearning, so defended models are not cached.
std::unique_ptr<Model> Audit::defended_model(const audit::UnlearningRun& run, const DefenseSpec& defense,
                                             const Model& unlearned, bool logged) {
  const uint64_t seed = run.forget.seed;
  auto model = attacks::copy_of(unlearned);
  const auto t0 = Clock::now();
  const nlohmann::json record =
      clock_.time("defense", [&] { return apply_defense(*model, defense, &aux_for(seed), seed); });
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!logged)
    log_metrics("defense", defended_key(run, defense), run, *model,
                {{"defense", defense.name()}, {"record", record}, {"seconds", seconds}});
  model->metadata() = nlohmann::json::object();
  return model;
}

// The attacker's D_aux: the auxiliary part of the seed's split, which no forget spec changes.
const Dataset& Audit::aux_for(uint64_t seed) {
  auto found = aux_.find(seed);
  if (found != aux_.end()) return found->second;
  const SplitParts parts = make_split(split_for(full_train_.name, seed, o_.aux_fraction), full_train_, full_test_);
  return aux_.emplace(seed, subset(full_train_, parts.aux)).first->second;
}

// One attack on one unlearned model: the prediction and the per-class scores of every variant (classifier,
// criterion or decision; higher: more likely forgotten), and the queries it made. Inversion prototypes are kept as
// a PNG grid beside the results.
AttackOutcome Audit::attack(const audit::Trial& trial, Model& original, Model& target) {
  const uint64_t seed = trial.run.forget.seed;
  const int64_t forget_count = static_cast<int64_t>(trial.run.forget.classes.size());
  AttackOutcome out;
  if (trial.attack == "param-dot" || trial.attack == "param-diff") {
    const Dataset& aux = aux_for(seed);
    for (const std::string& classifier : s_.param_classifiers) {
      attacks::ParamAttackConfig cfg = s_.param;
      cfg.features = trial.attack.substr(6);
      cfg.classifier = classifier;
      cfg.forget_count = forget_count;
      cfg.seed = seed;
      const attacks::ParamAttackResult r = attacks::run_param_attack(target, aux, cfg, work_);
      out.predictions[classifier] = r.predicted;
      out.scores[classifier] = r.scores;
    }
  } else if (trial.attack == "invert-white" || trial.attack == "invert-black") {
    const Dataset& aux = aux_for(seed);
    attacks::InversionConfig cfg = s_.invert;
    cfg.mode = trial.attack.substr(7);
    cfg.forget_count = forget_count;
    cfg.seed = seed;
    attacks::InversionResult r = attacks::run_inversion(target, &aux, cfg, work_);
    for (const std::string& criterion : s_.invert_criteria) {
      cfg.criterion = criterion;
      attacks::judge(r, cfg);
      out.predictions[criterion] = r.predicted;
      out.scores[criterion] = r.scores;
    }
    out.queries = r.queries;
    const std::filesystem::path dir = std::filesystem::path(o_.out) / "prototypes";
    std::filesystem::create_directories(dir);
    write_png_grid((dir / (audit::file_stem(trial.key()) + ".png")).string(), r.prototypes, r.prototypes.dim(0),
                   /*scale=*/2);
  } else if (trial.attack == "hu-label") {
    auto found = probes_.find(seed);
    if (found == probes_.end()) {
      attacks::ZooProbeConfig zoo = s_.zoo;
      zoo.seed = seed;
      bool cached = false;
      found = probes_.emplace(seed, attacks::cached_probes(original, zoo, *cache_, &cached)).first;
    }
    for (const std::string& decision : s_.hu_decisions) {
      const attacks::LabelInferenceResult r =
          attacks::infer_unlearned_labels(original, target, found->second, forget_count, decision);
      out.predictions[decision] = r.predicted;
      std::vector<double> drop = decision == "log-odds" ? r.delta_log_odds : r.delta;
      for (double& d : drop) d = -d;  // the confidence drop -Δ: higher is more likely forgotten, as for the others
      out.scores[decision] = drop;
      out.queries = r.queries;
    }
  } else {
    throw UsageError("unknown attack '" + trial.attack + "'");
  }
  return out;
}

// The preset, then every flag given on the command line, each checked before any work.
void Audit::configure() {
  const int64_t k = full_train_.num_classes;
  s_ = preset_settings(o_.preset, k);
  const auto all_or = [](const std::vector<std::string>& given, const std::vector<std::string>& all) {
    return given == std::vector<std::string>{"all"} ? all : given;
  };
  if (!o_.methods.empty()) s_.plan.methods = all_or(o_.methods, zheng_methods());
  if (!o_.attacks.empty()) s_.plan.attacks = all_or(o_.attacks, audit_attacks());
  if (!o_.scenarios.empty()) s_.plan.scenarios = o_.scenarios;
  if (!o_.classes.empty()) s_.plan.classes = o_.classes;
  if (o_.seeds > 0) {
    s_.plan.seeds.clear();
    for (int i = 0; i < o_.seeds; ++i) s_.plan.seeds.push_back(g_.seed + static_cast<uint64_t>(i));
  } else if (g_.seed_given) {
    for (uint64_t& seed : s_.plan.seeds) seed += g_.seed;
  }
  if (o_.epochs > 0) s_.epochs = o_.epochs;
  if (!o_.defenses.empty()) s_.plan.defenses = o_.defenses;
  defenses_.clear();
  for (const std::string& d : s_.plan.defenses) {
    const DefenseSpec spec = DefenseSpec::parse(d);
    const bool repeated = std::any_of(defenses_.begin(), defenses_.end(),
                                      [&](const DefenseSpec& e) { return e.name() == spec.name(); });
    if (!repeated) defenses_.push_back(spec);
  }
  for (const std::string& m : s_.plan.methods) {
    const auto& known = unlearn::method_names();
    if (std::find(known.begin(), known.end(), m) == known.end() || m == "hu-exact")
      throw UsageError("--methods: '" + m + "' is not a method the audit runs (retrain, finetune, randlabel, "
                       "amnesiac, neggrad, hu-approx, or all)");
  }
  for (const std::string& a : s_.plan.attacks)
    if (std::find(audit_attacks().begin(), audit_attacks().end(), a) == audit_attacks().end())
      throw UsageError("--attacks: unknown attack '" + a + "' (param-dot, param-diff, invert-white, invert-black, "
                       "hu-label, or all)");
  for (const int64_t c : s_.plan.classes)
    if (c < 0 || c >= k)
      throw UsageError("--classes: class " + std::to_string(c) + " is out of range (the data have classes 0.." +
                       std::to_string(k - 1) + ")");
  if (s_.plan.classes.empty()) throw UsageError("--classes: nothing to forget");
  if (!(o_.aux_fraction > 0 && o_.aux_fraction < 1))
    throw UsageError("--aux-fraction must be in (0, 1): the attacker's D_aux is a part of the training split");
}

int Audit::run() {
  const auto t0 = Clock::now();
  const audit::Shard shard = audit::Shard::parse(o_.shard);
  const DataRef ref = parse_data_ref(o_.data.data);
  const LoadOptions load = o_.data.load_options();
  full_train_ = load_dataset(ref, Split::Train, load);
  full_test_ = load_dataset(ref, Split::Test, load);
  configure();
  const std::vector<audit::UnlearningRun> runs = audit::unlearning_runs(s_.plan);  // checks the scenarios
  be_ = open_backend(g_);

  std::error_code ec;
  std::filesystem::create_directories(o_.out, ec);
  if (ec) throw UsageError("--out " + o_.out + ": cannot create the directory (" + ec.message() + ")");
  work_ = o_.work.empty() ? (std::filesystem::path(o_.out) / "work").string() : o_.work;
  cache_.emplace(work_, counts_, attacks::AttackLogFn{});  // the progress bar names each stage instead
  const std::string results = (std::filesystem::path(o_.out) / shard.results_file()).string();
  log_.emplace(results);
  if (log_->dropped_lines() > 0)
    note(g_, results + ": its last line was cut short by an interruption; that trial is redone");

  // The work left: every trial not yet in the log, in the runs this shard owns.
  int64_t total = 0, finished = 0;
  // What is left of each run this shard owns: its unlearning row, and per defense ("none": the unlearned model
  // itself) the defended model's row and the attacks not yet in the log.
  struct DefenseTodo {
    DefenseSpec defense;
    bool logged;
    std::vector<std::string> attacks;
  };
  struct Todo {
    const audit::UnlearningRun* run;
    bool unlearning_logged;
    std::vector<DefenseTodo> defenses;
  };
  std::vector<Todo> todo;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!shard.owns(static_cast<int64_t>(i))) continue;
    Todo t{&runs[i], log_->has(runs[i].key()), {}};
    int64_t left = t.unlearning_logged ? 0 : 1;
    for (const DefenseSpec& d : defenses_) {
      DefenseTodo dt{d, d.kind == "none" || log_->has(defended_key(runs[i], d)), {}};
      for (const std::string& a : s_.plan.attacks)
        if (!log_->has(audit::Trial{runs[i], a, d.name()}.key())) dt.attacks.push_back(a);
      left += (dt.logged ? 0 : 1) + static_cast<int64_t>(dt.attacks.size());
      if (!dt.logged || !dt.attacks.empty()) t.defenses.push_back(std::move(dt));
    }
    if (left == 0) continue;
    total += left;
    todo.push_back(std::move(t));
  }
  const int64_t defended = static_cast<int64_t>(defenses_.size()) - 1;
  const int64_t per_run = 1 + defended + static_cast<int64_t>(defenses_.size() * s_.plan.attacks.size());
  const int64_t planned = static_cast<int64_t>(runs.size()) * per_run;
  note(g_, "audit: " + std::to_string(runs.size()) + " unlearning runs x " + std::to_string(s_.plan.attacks.size()) +
               " attacks" + (defended > 0 ? " x " + std::to_string(defenses_.size()) + " defense settings" : "") +
               "; " + group_digits(total) + " of " + group_digits(planned) + " results to go" +
               (shard.count > 1 ? " in shard " + o_.shard : "") + "; models cached in " + work_);

  {
    Progress bar("audit", total, g_.quiet);
    for (const auto& [run, unlearning_logged, defenses] : todo) {
      const std::string where = run->key();
      bar.update(finished, where + ": original");
      Model& original = *original_for(run->forget.seed);
      bar.update(finished, where + ": unlearning");
      auto unlearned = unlearned_model(*run, original);
      if (!unlearning_logged) bar.update(++finished, where);
      for (const auto& [defense, defense_logged, pending] : defenses) {
        std::unique_ptr<Model> defended;
        if (defense.kind != "none") {
          bar.update(finished, where + ": defense " + defense.name());
          defended = defended_model(*run, defense, *unlearned, defense_logged);
          if (!defense_logged) bar.update(++finished, where);
        }
        Model& target = defended ? *defended : *unlearned;
        for (const std::string& a : pending) {
          const audit::Trial trial{*run, a, defense.name()};
          bar.update(finished, trial.key());
          const auto ta = Clock::now();
          const std::string stage = a.rfind("hu", 0) == 0 ? "attack hu-label" : "attack " + a.substr(0, a.find('-'));
          const AttackOutcome outcome = clock_.time(stage, [&] { return attack(trial, original, target); });
          log_->append({{"type", "attack"},
                        {"key", trial.key()},
                        {"seed", run->forget.seed},
                        {"scenario", run->forget.scenario},
                        {"forget", run->forget.classes},
                        {"method", run->method},
                        {"defense", defense.name()},
                        {"attack", a},
                        {"classes", original.spec().num_classes},
                        {"predictions", outcome.predictions},
                        {"scores", outcome.scores},
                        {"queries", outcome.queries},
                        {"seconds", std::chrono::duration<double>(Clock::now() - ta).count()}});
          bar.update(++finished, where);
        }
      }
    }
  }

  const audit::Summary summary = clock_.time("report", [&] {
    const std::vector<nlohmann::json> rows = audit::read_results_dir(o_.out);
    audit::write_report(o_.out, rows);
    return audit::summarise(rows);
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  note(g_, "audit: done in " + format_duration(seconds) + " (" + std::to_string(counts_.models_trained) +
               " models trained, " + std::to_string(counts_.models_cached) + " found in the cache); report in " +
               o_.out);
  if (o_.profile) clock_.print();
  if (g_.json) {
    std::printf("%s\n", summary.json.dump().c_str());
  } else {
    std::printf("%s", summary.markdown.c_str());
  }
  return 0;
}

int run_report(const std::string& dir, const GlobalOptions& g) {
  const std::vector<nlohmann::json> rows = audit::read_results_dir(dir);
  audit::write_report(dir, rows);
  const audit::Summary summary = audit::summarise(rows);
  note(g, "wrote summary.md, summary.csv, summary.json, figures/ and index.html in " + dir);
  if (g.json) {
    std::printf("%s\n", summary.json.dump().c_str());
  } else {
    std::printf("%s", summary.markdown.c_str());
  }
  return 0;
}

}  // namespace

Command add_audit_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<AuditOptions>();
  CLI::App* app = parent.add_subcommand(
      "audit", "Train, unlearn with every method, run every attack and write the report (resumable)");
  add_data_options(*app, o->data);
  app->add_option("--net", o->net, "Architecture of the original model")
      ->check(CLI::IsMember({"lenet5", "convnet", "resnet18", "mlp"}))
      ->capture_default_str();
  app->add_option("--preset", o->preset,
                  "demo: 3 classes, 1 seed, reduced attack budgets (minutes on a CPU); paper: every class, single "
                  "and multi, 3 seeds, every classifier, full budgets")
      ->check(CLI::IsMember({"demo", "paper"}))
      ->capture_default_str();
  app->add_option("--methods", o->methods, "Unlearning methods (default: the preset's; all = the five of Zheng et al.)")
      ->delimiter(',');
  app->add_option("--attacks", o->attacks,
                  "Attacks: param-dot, param-diff, invert-white, invert-black, hu-label (default: all)")
      ->delimiter(',');
  app->add_option("--defenses", o->defenses,
                  "Also attack each unlearned model after these defenses: none, noise:SIGMA, prune:RATE, "
                  "finetune:EPOCHS (on D_aux), e.g. none,noise:0.01,prune:0.5 (default: none)")
      ->delimiter(',');
  app->add_option("--scenario", o->scenarios, "single, multi or single,multi (default: the preset's)")
      ->delimiter(',')
      ->check(CLI::IsMember(audit::scenario_names()));
  app->add_option("--classes", o->classes, "Classes to forget, each in turn (default: the preset's)")->delimiter(',');
  app->add_option("--seeds", o->seeds, "Seeds --seed, --seed+1, ... (default: the preset's)")
      ->check(CLI::Range(1, 1000));
  app->add_option("--epochs", o->epochs, "Training epochs of the original model (default 5)")
      ->check(CLI::Range(1, 1000));
  app->add_option("--aux-fraction", o->aux_fraction, "The attacker's share of each class of the training split")
      ->capture_default_str();
  app->add_option("--out", o->out, "Report directory: results.jsonl, summary.md/.csv/.json")->capture_default_str();
  app->add_option("--work", o->work, "Model cache, shared by reruns and shards (default: OUT/work)");
  app->add_option("--shard", o->shard, "Run only shard I of N (I/N); shard results merge in lethe report")
      ->capture_default_str();
  app->add_flag("--profile", o->profile, "Print the wall time of each stage at the end");
  add_global_options(*app, g);
  return {app, [o, &g] { return Audit(*o, g).run(); }};
}

Command add_report_command(CLI::App& parent, GlobalOptions& g) {
  auto dir = std::make_shared<std::string>();
  CLI::App* app = parent.add_subcommand(
      "report", "Rebuild an audit's summary.md/.csv/.json, figures/ and index.html from its results*.jsonl "
                "(merging shards)");
  app->add_option("dir", *dir, "The audit's --out directory")->required();
  add_global_options(*app, g);
  return {app, [dir, &g] { return run_report(*dir, g); }};
}

}  // namespace lethe::cli
