// `lethe defend`: defenses applied to a model after unlearning (engine/defenses.h), written as a new model whose
// metadata records the defense. `prune`: global unstructured magnitude pruning. (The parameter-noise defense is an
// option of `lethe unlearn`, since it acts on the unlearning update itself.)
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "engine/defenses.h"
#include "nets/model_io.h"
#include "tools/common.h"

namespace lethe::cli {
namespace {

struct PruneOptions {
  std::string model, out;
  PruneConfig cfg;
};

int run_prune(const PruneOptions& o, const GlobalOptions& g) {
  const auto t0 = std::chrono::steady_clock::now();
  auto be = open_backend(g);
  auto model = load_model(o.model, *be);
  const PruneResult r = prune_global(*model, o.cfg);
  nlohmann::json& meta = model->metadata();
  // Defenses stack (prune after fine-tune, ...): each appends its record.
  if (!meta.contains("defenses") || !meta["defenses"].is_array()) meta["defenses"] = nlohmann::json::array();
  meta["defenses"].push_back(
      {{"kind", "prune"}, {"config", o.cfg.to_json()}, {"result", r.to_json()}, {"input", o.model}});
  meta["command"] = g.command_line;
  save_model(*model, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (g.json) {
    nlohmann::json j = {{"defense", "prune"}, {"model", o.out}, {"input", o.model}, {"seconds", seconds}};
    j.update(o.cfg.to_json());
    j.update(r.to_json());
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("pruned %s of %s %s values (rate %.3g, threshold |w| <= %.4g)\nsaved %s\n",
              group_digits(r.pruned).c_str(), group_digits(r.considered).c_str(),
              o.cfg.scope == "all" ? "parameter" : "weight", o.cfg.rate, static_cast<double>(r.threshold),
              o.out.c_str());
  return 0;
}

}  // namespace

Command add_defend_command(CLI::App& parent, GlobalOptions& g) {
  CLI::App* app = parent.add_subcommand("defend", "Defend an unlearned model against inversion attacks");
  app->require_subcommand(1);
  auto o = std::make_shared<PruneOptions>();
  CLI::App* prune = app->add_subcommand("prune", "Global unstructured magnitude pruning");
  prune->add_option("--model", o->model, "The model to defend (.safetensors)")->required();
  prune->add_option("--out", o->out, "Where to save the defended model")->required();
  prune->add_option("--rate", o->cfg.rate, "Fraction of the values to zero, smallest magnitudes first")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  prune->add_option("--scope", o->cfg.scope,
                    "weights (conv and linear weights, like PyTorch's global_unstructured) or all (every parameter)")
      ->check(CLI::IsMember({"weights", "all"}))
      ->capture_default_str();
  add_global_options(*prune, g);
  return {app, [o, &g] { return run_prune(*o, g); }};
}

}  // namespace lethe::cli
