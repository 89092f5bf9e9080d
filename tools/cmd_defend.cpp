// `lethe defend`: Hu et al.'s three defenses, applied to a model after unlearning (engine/defenses.h), each written
// as a new model whose metadata appends a record of the defense to its "defenses" list:
//   noise     Gaussian noise of scale sigma on the parameters (noise on the unlearning update θ_u - θ_o);
//   prune     global unstructured magnitude pruning at a rate;
//   finetune  training on held-out data (the split's aux part by default) within a budget of epochs and images.
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "engine/defenses.h"
#include "nets/model_io.h"
#include "tools/common.h"

namespace lethe::cli {
namespace {

struct DefenseOptions {
  std::string model, out;
};

// What one defense did to the model: its record (config and result) and a line for the terminal.
struct DefenseOutcome {
  nlohmann::json config, result;
  std::string summary;
};

// Loads the model, applies the defense, records it, saves the result and reports it.
int run_defense(const std::string& kind, const DefenseOptions& o, const GlobalOptions& g,
                const std::function<DefenseOutcome(Model&)>& apply) {
  const auto t0 = std::chrono::steady_clock::now();
  auto be = open_backend(g);
  auto model = load_model(o.model, *be);
  const DefenseOutcome d = apply(*model);
  nlohmann::json& meta = model->metadata();
  // Defenses stack (prune after fine-tune, ...): each appends its record.
  if (!meta.contains("defenses") || !meta["defenses"].is_array()) meta["defenses"] = nlohmann::json::array();
  meta["defenses"].push_back({{"kind", kind}, {"config", d.config}, {"result", d.result}, {"input", o.model}});
  meta["command"] = g.command_line;
  save_model(*model, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (g.json) {
    nlohmann::json j = {{"defense", kind}, {"model", o.out}, {"input", o.model}, {"seconds", seconds}};
    j.update(d.config);
    j.update(d.result);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s\nsaved %s\n", d.summary.c_str(), o.out.c_str());
  return 0;
}

CLI::App* add_defense(CLI::App& parent, const std::string& name, const std::string& what, DefenseOptions& o) {
  CLI::App* app = parent.add_subcommand(name, what);
  app->add_option("--model", o.model, "The model to defend (.safetensors)")->required();
  app->add_option("--out", o.out, "Where to save the defended model")->required();
  return app;
}

void add_scope_option(CLI::App& app, std::string& scope) {
  app.add_option("--scope", scope,
                 "weights (conv and linear weights, like PyTorch's global_unstructured) or all (every parameter)")
      ->check(CLI::IsMember({"weights", "all"}))
      ->capture_default_str();
}

struct FinetuneOptions {
  DataOptions data;
  PartOptions part;
  TrainConfig train;
  int64_t limit = 0;  // held-out images used at most (0: all of the part)
};

DefenseOutcome finetune(Model& model, const FinetuneOptions& f, const GlobalOptions& g, const std::string& path) {
  if (f.part.part == "test") throw UsageError("--part test: fine-tuning on the test split defeats its evaluation");
  const DataRef ref = parse_data_ref(f.data.data);
  const LoadOptions load = f.data.load_options();
  const Dataset full_train = load_dataset(ref, Split::Train, load);
  const Dataset full_test = load_dataset(ref, Split::Test, load);
  const ResolvedSplit split = resolve_split(f.part, model_split_spec(model, full_train.name, path),
                                            path + " (recorded split)", full_train, full_test);
  Dataset held_out = select_part(split, f.part.part, full_train, full_test);
  if (held_out.size() == 0)
    throw UsageError("--part " + f.part.part + " is empty in split " + split.source +
                     "; make a split with held-out data (lethe data split --aux-fraction)");
  if (f.limit > 0) held_out = take_shuffled(held_out, f.limit, g.seed);
  check_data_fits_model(held_out, model.spec(), path);
  TrainConfig cfg = f.train;
  cfg.seed = g.seed;
  cfg.schedule.total_epochs = cfg.epochs;
  note(g, "fine-tuning on " + group_digits(held_out.size()) + " held-out images of part '" + f.part.part + "'");
  EpochLog log(g, cfg.epochs);
  const std::vector<EpochReport> epochs = train(model, held_out, cfg, {log.progress(), log.on_epoch(), {}, {}});
  const nlohmann::json config = {{"part", f.part.part},   {"split", split.spec.hash()}, {"images", held_out.size()},
                                 {"limit", f.limit},      {"train", cfg.to_json()}};
  char line[160];
  std::snprintf(line, sizeof line, "fine-tuned %d epoch(s) on %s held-out images (part %s), final loss %.4f",
                cfg.epochs, group_digits(held_out.size()).c_str(), f.part.part.c_str(),
                epochs.empty() ? 0.0 : epochs.back().loss);
  return {config, {{"epochs", log.epochs()}}, line};
}

}  // namespace

Command add_defend_command(CLI::App& parent, GlobalOptions& g) {
  CLI::App* app = parent.add_subcommand("defend", "Defend an unlearned model against unlearning-inversion attacks");
  app->require_subcommand(1);

  auto noise_o = std::make_shared<DefenseOptions>();
  auto noise_cfg = std::make_shared<NoiseConfig>();
  CLI::App* noise = add_defense(*app, "noise", "Gaussian noise on the parameters (on the unlearning update)",
                                *noise_o);
  noise->add_option("--sigma", noise_cfg->sigma, "Standard deviation of the noise")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  add_scope_option(*noise, noise_cfg->scope);
  add_global_options(*noise, g);

  auto prune_o = std::make_shared<DefenseOptions>();
  auto prune_cfg = std::make_shared<PruneConfig>();
  CLI::App* prune = add_defense(*app, "prune", "Global unstructured magnitude pruning", *prune_o);
  prune->add_option("--rate", prune_cfg->rate, "Fraction of the values to zero, smallest magnitudes first")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  add_scope_option(*prune, prune_cfg->scope);
  add_global_options(*prune, g);

  auto ft_o = std::make_shared<DefenseOptions>();
  auto ft = std::make_shared<FinetuneOptions>();
  ft->train = defense_finetune_recipe(1, 0);  // the flags below replace its parts
  CLI::App* finetune_app = add_defense(*app, "finetune", "Fine-tune on held-out data within a budget", *ft_o);
  add_data_options(*finetune_app, ft->data);
  add_part_options(*finetune_app, ft->part, "aux", "held-out images to fine-tune on");
  finetune_app->add_option("--epochs", ft->train.epochs, "Budget: passes over the held-out images")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  finetune_app->add_option("--limit", ft->limit, "Budget: held-out images used at most, a seeded subset (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  finetune_app->add_option("--lr", ft->train.optim.lr, "SGD learning rate (constant)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  finetune_app->add_option("--momentum", ft->train.optim.momentum, "SGD momentum")->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  finetune_app->add_option("--batch", ft->train.batch, "Mini-batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  finetune_app->add_flag("--freeze-bn", ft->train.freeze_bn, "BatchNorm in eval mode while fine-tuning");
  add_global_options(*finetune_app, g);

  return {app, [=, &g] {
            if (noise->parsed())
              return run_defense("noise", *noise_o, g, [&](Model& m) -> DefenseOutcome {
                NoiseConfig cfg = *noise_cfg;
                cfg.seed = g.seed;
                const NoiseResult r = add_parameter_noise(m, cfg);
                char line[160];
                std::snprintf(line, sizeof line, "added N(0, %.4g²) to %s %s values (noise norm %.4g)", cfg.sigma,
                              group_digits(r.perturbed).c_str(), cfg.scope == "all" ? "parameter" : "weight",
                              r.noise_norm);
                return {cfg.to_json(), r.to_json(), line};
              });
            if (prune->parsed())
              return run_defense("prune", *prune_o, g, [&](Model& m) -> DefenseOutcome {
                const PruneResult r = prune_global(m, *prune_cfg);
                char line[160];
                std::snprintf(line, sizeof line, "pruned %s of %s %s values (rate %.3g, threshold |w| <= %.4g)",
                              group_digits(r.pruned).c_str(), group_digits(r.considered).c_str(),
                              prune_cfg->scope == "all" ? "parameter" : "weight", prune_cfg->rate,
                              static_cast<double>(r.threshold));
                return {prune_cfg->to_json(), r.to_json(), line};
              });
            return run_defense("finetune", *ft_o, g,
                               [&](Model& m) { return finetune(m, *ft, g, ft_o->model); });
          }};
}

}  // namespace lethe::cli
