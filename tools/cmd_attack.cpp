// `lethe attack`: the label-leakage attacks against an unlearned model. `attack param` is Zheng et al.'s
// parameter-based attack (attacks/param.h). An attack sees the target's weights and the attacker's own data only:
// the forget spec and the unlearning record in the target's metadata are never read.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>

#include <CLI/CLI.hpp>

#include "attacks/param.h"
#include "datasets/registry.h"
#include "nets/model_io.h"
#include "tools/common.h"

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
Dataset attacker_aux(const ParamOptions& o, const Model& target, const Dataset& full_train, const Dataset& full_test) {
  const SplitSpec fallback = attacks::attacker_split(target.metadata(), o.target);
  const ResolvedSplit split = resolve_split(o.part, fallback, o.target + " (split, without its forget spec)",
                                            full_train, full_test);
  return select_part(split, "aux", full_train, full_test);
}

void print_result(const attacks::ParamAttackResult& r, const attacks::ParamAttackConfig& cfg, const ParamOptions& o,
                  const Dataset& data, const GlobalOptions& g) {
  if (g.json) {
    const nlohmann::json j = {{"attack", "param"},
                              {"features", cfg.features},
                              {"classifier", cfg.classifier},
                              {"predicted", r.predicted},
                              {"scores", r.scores},
                              {"forget_count", cfg.forget_count},
                              {"feature_names", r.features.names},
                              {"features_raw", r.features.raw},
                              {"features_scaled", r.features.scaled},
                              {"calibration", r.calibration},
                              {"config", cfg.to_json()},
                              {"models_trained", r.models_trained},
                              {"models_cached", r.models_cached},
                              {"target", o.target},
                              {"seconds", r.seconds}};
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
  const Dataset aux = attacker_aux(o, *target, full_train, full_test);
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
  add_global_options(*app, g);

  return {app, [o, &g, param] {
            if (param->parsed()) return run_param(*o, g);
            throw UsageError("lethe attack: name an attack (param)");
          }};
}

}  // namespace lethe::cli
