// `lethe attack`: the label-leakage attacks against an unlearned model. `attack param` is Zheng et al.'s
// parameter-based attack (attacks/param.h), `attack invert` their inversion attacks (attacks/invert.h), `attack
// hu-recover` and `attack hu-label` Hu et al.'s feature recovery and label inference (tools/cmd_attack_hu_*.cpp).
// An attack sees the target's weights and the attacker's own data only: the forget spec and the unlearning record in
// the target's metadata are never read.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include <CLI/CLI.hpp>

#include "attacks/invert.h"
#include "attacks/param.h"
#include "datasets/png_grid.h"
#include "datasets/registry.h"
#include "nets/model_io.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

struct ParamOptions {
  std::string target, work;
  DataOptions data;
  PartOptions part;
  attacks::ParamAttackConfig cfg;
  std::string unrelated = "mixed";
  std::vector<std::string> shadow_methods = {"neggrad"};
  std::vector<std::string> features = {cfg.features}, classifiers = {cfg.classifier};  // the library's defaults
};

// "all" stands for every choice.
std::vector<std::string> expand_all(const std::vector<std::string>& given, const std::vector<std::string>& every) {
  return given.size() == 1 && given[0] == "all" ? every : given;
}

// The attacker's D_aux: the auxiliary part of its split file, or of the split recorded in the target with the forget
// spec dropped (attacker_split).
Dataset attacker_aux(const PartOptions& part, const std::string& target_path, const Model& target,
                     const Dataset& full_train, const Dataset& full_test) {
  const SplitSpec fallback = attacks::attacker_split(target.metadata(), target_path);
  const ResolvedSplit split = resolve_split(part, fallback, target_path + " (split, without its forget spec)",
                                            full_train, full_test);
  return select_part(split, "aux", full_train, full_test);
}

// The fields that close every attack's JSON record: its configuration, the work cache's counts, the target, the time.
void add_run_fields(nlohmann::json& j, const nlohmann::json& config, const attacks::CacheCounts& counts,
                    const std::string& target, double seconds) {
  j["config"] = config;
  j["models_trained"] = counts.models_trained;
  j["models_cached"] = counts.models_cached;
  j["target"] = target;
  j["seconds"] = seconds;
}

void print_result(const attacks::ParamAttackResult& r, const attacks::ParamAttackConfig& cfg, const ParamOptions& o,
                  const Dataset& data, const GlobalOptions& g) {
  if (g.json) {
    nlohmann::json j = {{"attack", "param"},
                        {"features", cfg.features},
                        {"classifier", cfg.classifier},
                        {"predicted", r.predicted},
                        {"scores", r.scores},
                        {"forget_count", cfg.forget_count},
                        {"feature_names", r.features.names},
                        {"features_raw", r.features.raw},
                        {"features_scaled", r.features.scaled},
                        {"calibration", r.calibration}};
    add_run_fields(j, cfg.to_json(), r, o.target, r.seconds);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s features, %s:\n  class  score     %s\n", cfg.features.c_str(), cfg.classifier.c_str(),
              r.features.names.at(0).c_str());
  for (size_t c = 0; c < r.scores.size(); ++c) {
    const bool hit = std::find(r.predicted.begin(), r.predicted.end(), static_cast<int64_t>(c)) != r.predicted.end();
    const std::string name = c < data.class_names.size() ? " (" + data.class_names[c] + ")" : "";
    std::printf("  %5zu  %8.4f  %8.4f%s%s\n", c, r.scores[c], r.features.raw[c].at(0), hit ? "  <- forgotten" : "",
                hit ? name.c_str() : "");
  }
  std::string list;
  for (const int64_t c : r.predicted) list += (list.empty() ? "" : ",") + std::to_string(c);
  std::printf("  predicted forgotten: %s  (%.1f s, %lld models trained, %lld from the cache)\n", list.c_str(),
              r.seconds, static_cast<long long>(r.models_trained), static_cast<long long>(r.models_cached));
}

int run_param(ParamOptions o, const GlobalOptions& g) {
  o.cfg.seed = g.seed;
  o.cfg.unrelated = parse_unrelated_kind(o.unrelated);
  o.cfg.shadow.methods = expand_all(o.shadow_methods, {"retrain", "finetune", "randlabel", "amnesiac", "neggrad"});
  const std::vector<std::string> features = expand_all(o.features, attacks::feature_families());
  const std::vector<std::string> classifiers = expand_all(o.classifiers, attacks::classifier_names());

  auto be = open_backend(g);
  auto target = load_model(o.target, *be);
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  const Dataset full_train = load_dataset(ref, Split::Train, load);
  const Dataset full_test = load_dataset(ref, Split::Test, load);
  check_data_fits_model(full_train, target->spec(), o.target);
  const Dataset aux = attacker_aux(o.part, o.target, *target, full_train, full_test);
  note(g, "attacker's auxiliary data: " + group_digits(aux.size()) + " images of " + full_train.name);

  // Several combinations share the auxiliary and shadow models through the work directory (a temporary one if none
  // was given), so each is trained once.
  std::string work = o.work;
  std::optional<std::filesystem::path> temporary;
  if (work.empty() && features.size() * classifiers.size() > 1) {
    temporary = std::filesystem::temp_directory_path() /
                ("lethe-attack-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr)));
    work = temporary->string();
  }
  struct RemoveTemporary {
    const std::optional<std::filesystem::path>& dir;
    ~RemoveTemporary() {
      std::error_code ec;
      if (dir) std::filesystem::remove_all(*dir, ec);
    }
  } cleanup{temporary};

  for (const std::string& f : features)
    for (const std::string& c : classifiers) {
      attacks::ParamAttackConfig cfg = o.cfg;
      cfg.features = f;
      cfg.classifier = c;
      const attacks::ParamAttackResult r =
          attacks::run_param_attack(*target, aux, cfg, work, [&](const std::string& m) { note(g, m); });
      print_result(r, cfg, o, full_train, g);
    }
  return 0;
}

struct InvertOptions {
  std::string target, work, images;
  DataOptions data;
  PartOptions part;
  attacks::InversionConfig cfg;
  std::vector<std::string> criteria = {cfg.criterion};
  std::string crossover = "blend";
};

void print_inversion(const attacks::InversionResult& r, const attacks::InversionConfig& cfg, const InvertOptions& o,
                     const std::string& image_path, const Dataset& data, const GlobalOptions& g) {
  if (g.json) {
    nlohmann::json j = {{"attack", "invert"},
                        {"mode", cfg.mode},
                        {"criterion", cfg.criterion},
                        {"source", cfg.source},
                        {"calibrate", cfg.calibrate},
                        {"predicted", r.predicted},
                        {"scores", r.scores},
                        {"confidence", r.target.confidence},
                        {"log_odds", r.target.log_odds},
                        {"entropy", r.target.entropy},
                        {"baseline_log_odds", r.baseline.log_odds},
                        {"baseline_entropy", r.baseline.entropy},
                        {"source_confidence", r.source_confidence},
                        {"queries", r.queries},
                        {"forget_count", cfg.forget_count},
                        {"images", image_path}};
    add_run_fields(j, cfg.to_json(), r, o.target, r.seconds);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s-box inversion (prototypes from the %s, calibrated by: %s), %s criterion:\n"
              "  class  p_k(target)  log-odds  entropy  p_k(source)    score\n",
              cfg.mode.c_str(), cfg.source.c_str(), cfg.calibrate.c_str(), cfg.criterion.c_str());
  for (size_t c = 0; c < r.target.confidence.size(); ++c) {
    const bool hit = std::find(r.predicted.begin(), r.predicted.end(), static_cast<int64_t>(c)) != r.predicted.end();
    const std::string name = c < data.class_names.size() ? " (" + data.class_names[c] + ")" : "";
    std::printf("  %5zu  %11.4f  %8.2f  %7.4f  %11.4f  %7.3f%s%s\n", c, r.target.confidence[c], r.target.log_odds[c],
                r.target.entropy[c], r.source_confidence[c], r.scores[c], hit ? "  <- forgotten" : "",
                hit ? name.c_str() : "");
  }
  std::string list;
  for (const int64_t c : r.predicted) list += (list.empty() ? "" : ",") + std::to_string(c);
  std::printf("  predicted forgotten: %s  (%.1f s, %lld target queries)\n", list.c_str(), r.seconds,
              static_cast<long long>(r.queries));
  if (!image_path.empty()) std::printf("  prototypes: %s\n", image_path.c_str());
}

int run_invert(InvertOptions o, const GlobalOptions& g) {
  o.cfg.seed = g.seed;
  o.cfg.crossover = o.crossover == "uniform" ? kernels::Crossover::Uniform : kernels::Crossover::Blend;
  const std::vector<std::string> criteria = expand_all(o.criteria, attacks::inversion_criteria());
  o.cfg.criterion = criteria.front();

  auto be = open_backend(g);
  auto target = load_model(o.target, *be);
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  const Dataset full_train = load_dataset(ref, Split::Train, load);
  const Dataset full_test = load_dataset(ref, Split::Test, load);
  check_data_fits_model(full_train, target->spec(), o.target);
  std::optional<Dataset> aux;
  if (attacks::needs_reference(o.cfg)) {
    aux = attacker_aux(o.part, o.target, *target, full_train, full_test);
    note(g, "attacker's auxiliary data: " + group_digits(aux->size()) + " images of " + full_train.name);
  }
  if (!o.images.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.images, ec);
    if (ec || !std::filesystem::is_directory(o.images))
      throw UsageError("--images " + o.images + ": cannot create the directory (" + ec.message() + ")");
  }

  const int64_t total = o.cfg.mode == "white" ? o.cfg.steps : o.cfg.generations;
  attacks::InversionResult r;
  {
    Progress bar(o.cfg.mode + "-box inversion", total, g.quiet);
    r = attacks::run_inversion(*target, aux ? &*aux : nullptr, o.cfg, o.work,
                               [&](const std::string& m) { note(g, m); },
                               [&](int64_t done, int64_t) { bar.update(done); });
  }
  std::string image_path;
  if (!o.images.empty()) {
    const std::string stem = std::filesystem::path(o.target).stem().string();
    image_path = (std::filesystem::path(o.images) / (stem + "-" + o.cfg.mode + "-" + o.cfg.source + ".png")).string();
    write_png_grid(image_path, r.prototypes, r.prototypes.dim(0), 4);
  }
  for (const std::string& criterion : criteria) {
    attacks::InversionConfig cfg = o.cfg;
    cfg.criterion = criterion;
    attacks::judge(r, cfg);
    print_inversion(r, cfg, o, image_path, full_train, g);
  }
  return 0;
}

}  // namespace

Command add_attack_command(CLI::App& parent, GlobalOptions& g) {
  CLI::App* app = parent.add_subcommand("attack", "Label-leakage attacks against an unlearned model");
  app->require_subcommand(1);

  auto o = std::make_shared<ParamOptions>();
  CLI::App* param = app->add_subcommand(
      "param", "Parameter-based attack (Zheng et al.): which classes did the target forget, from its weights alone");
  param->add_option("--target", o->target, "The unlearned model θ_u (.safetensors)")->required();
  add_data_options(*param, o->data);
  param->add_option("--split", o->part.split_file,
                    "The attacker's split file; its aux part is D_aux (default: the split recorded in the target, "
                    "without its forget spec)");
  param->add_option("--features", o->features,
                    "Per-class features: dot (cosines) or diff (difference vectors); a list or all runs each")
      ->delimiter(',')
      ->check(CLI::IsMember({"dot", "diff", "all"}))
      ->capture_default_str();
  param->add_option("--classifier", o->classifiers,
                    "kmeans (unsupervised), youden (threshold from shadow runs) or tree (CART on shadow runs); a list "
                    "or all runs each (--json: one object per line)")
      ->delimiter(',')
      ->check(CLI::IsMember({"kmeans", "youden", "tree", "all"}))
      ->capture_default_str();
  param->add_option("--forget-count", o->cfg.forget_count, "How many classes were forgotten, if known (0: unknown)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  param->add_option("--work", o->work, "Cache directory for the auxiliary and shadow models (reused across attacks)");
  param->add_option("--relearn-epochs", o->cfg.relearn.epochs, "R and Z: fine-tuning epochs")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  param->add_option("--relearn-subset", o->cfg.relearn.subset, "R: fine-tune on at most N auxiliary images (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  param->add_option("--relearn-lr", o->cfg.relearn.lr, "R and Z: SGD rate")->check(CLI::PositiveNumber)
      ->capture_default_str();
  param->add_option("--relearn-batch", o->cfg.relearn.batch, "R and Z: mini-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  param->add_option("--unrelated", o->unrelated, "Z's unrelated images: uniform, gaussian, smooth, shapes or mixed")
      ->check(CLI::IsMember({"uniform", "gaussian", "smooth", "shapes", "mixed"}))
      ->capture_default_str();
  param->add_option("--shadow-method", o->shadow_methods,
                    "Surrogate unlearning method(s) of the shadow runs (youden, tree): retrain, finetune, randlabel, "
                    "amnesiac, neggrad, or all")
      ->delimiter(',')
      ->check(CLI::IsMember({"retrain", "finetune", "randlabel", "amnesiac", "neggrad", "all"}));
  param->add_option("--shadow-classes", o->cfg.shadow.classes, "Shadow runs unlearn classes 0..N-1 (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  param->add_option("--shadow-epochs", o->cfg.shadow.train_epochs, "Epochs of the shadow original on its half of D_aux")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  param->add_option("--tree-depth", o->cfg.tree.max_depth, "Decision tree: maximum depth")->check(CLI::Range(0, 32))
      ->capture_default_str();
  param->add_option("--tree-min-leaf", o->cfg.tree.min_leaf, "Decision tree: fewest shadow rows per leaf")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  add_global_options(*param, g);

  auto iv = std::make_shared<InvertOptions>();
  CLI::App* invert = app->add_subcommand(
      "invert", "Inversion attacks (Zheng et al.): which classes did the target forget, from class prototypes");
  invert->add_option("--target", iv->target, "The unlearned model θ_u (.safetensors)")->required();
  add_data_options(*invert, iv->data);
  invert->add_option("--split", iv->part.split_file,
                     "The attacker's split file; its aux part trains the reference model (default: the split recorded "
                     "in the target, without its forget spec)");
  invert->add_option("--mode", iv->cfg.mode, "white (gradients of the target) or black (its probabilities only)")
      ->check(CLI::IsMember(attacks::inversion_modes()))
      ->capture_default_str();
  invert->add_option("--criterion", iv->criteria,
                     "threshold (confidence below --tau) or entropy (most uncertain); a list or all judges the same "
                     "prototypes by each (--json: one object per line)")
      ->delimiter(',')
      ->check(CLI::IsMember({"threshold", "entropy", "all"}))
      ->capture_default_str();
  invert->add_option("--source", iv->cfg.source,
                     "Prototypes from the target, or from a reference model trained on the attacker's data")
      ->check(CLI::IsMember(attacks::inversion_sources()))
      ->capture_default_str();
  invert->add_option("--calibrate", iv->cfg.calibrate,
                     "Rank classes relative to the reference model's view of its own prototypes (each class's natural "
                     "difficulty cancels), or by the target's view alone")
      ->check(CLI::IsMember(attacks::inversion_calibrations()))
      ->capture_default_str();
  invert->add_option("--forget-count", iv->cfg.forget_count, "How many classes were forgotten, if known (0: unknown)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--tau", iv->cfg.tau, "Threshold criterion: forgotten if the target's confidence is below")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  invert->add_option("--restarts", iv->cfg.restarts, "White-box: random starts per class")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  invert->add_option("--steps", iv->cfg.steps, "White-box: Adam steps")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->capture_default_str();
  invert->add_option("--lr", iv->cfg.lr, "White-box: Adam's rate on the pixels")->check(CLI::PositiveNumber)
      ->capture_default_str();
  invert->add_option("--tv", iv->cfg.tv, "White-box: weight of the squared total variation")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--l2", iv->cfg.l2, "White-box: weight of the pixels' squared norm")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--population", iv->cfg.population, "Black-box: images per class population (P)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  invert->add_option("--generations", iv->cfg.generations, "Black-box: generations (one batched query each)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->capture_default_str();
  invert->add_option("--elites", iv->cfg.elites, "Black-box: best members kept unchanged")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--tournament", iv->cfg.tournament, "Black-box: tournament size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  invert->add_option("--crossover", iv->crossover, "Black-box: uniform or blend (BLX-alpha)")
      ->check(CLI::IsMember({"uniform", "blend"}))
      ->capture_default_str();
  invert->add_option("--blend-alpha", iv->cfg.blend_alpha, "Black-box: BLX alpha")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--mutation-rate", iv->cfg.mutation_rate, "Black-box: probability a gene mutates")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  invert->add_option("--sigma", iv->cfg.sigma, "Black-box: initial mutation scale")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  invert->add_option("--sigma-decay", iv->cfg.sigma_decay, "Black-box: sigma's factor per generation")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  invert->add_option("--reference-epochs", iv->cfg.reference_epochs,
                     "Reference model (--source or --calibrate reference): training epochs on D_aux")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  invert->add_option("--work", iv->work, "Cache directory for the reference model (reused across attacks)");
  invert->add_option("--images", iv->images, "Write the prototypes as a PNG grid into this directory");
  add_global_options(*invert, g);
  const Command hu_recover = add_hu_recover_attack(*app, g);
  const Command hu_label = add_hu_label_attack(*app, g);
  add_global_options(*app, g);

  return {app, [o, iv, &g, param, invert, hu_recover, hu_label] {
            if (param->parsed()) return run_param(*o, g);
            if (invert->parsed()) return run_invert(*iv, g);
            if (hu_recover.app->parsed()) return hu_recover.run();
            if (hu_label.app->parsed()) return hu_label.run();
            throw UsageError("lethe attack: name an attack (param, invert, hu-recover or hu-label)");
          }};
}

}  // namespace lethe::cli
