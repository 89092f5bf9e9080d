#pragma once
// Defenses against unlearning-inversion attacks (Hu et al.; ../shared/research/attacks.md §B) that act on a model
// after unlearning: parameter noise, pruning, and (in tools/cmd_defend.cpp, with the trainer) fine-tuning on
// held-out data. Noise added to θ_u is noise on the unlearning update θ_u - θ_o; the per-step variant lives in the
// ascent update itself (unlearn::AscentConfig::noise_std).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"
#include "engine/model.h"
#include "engine/trainer.h"

namespace lethe {

// Which parameters a defense acts on: "weights" (conv and linear weights, tensors of >= 2 dims, like PyTorch's
// prune.global_unstructured over module weights) or "all" (every parameter). UsageError for another name.
std::vector<const ParamEntry*> defended_params(const Model& model, const std::string& scope);

// Parameter obfuscation: θ += sigma·N(0, 1) on the scope's parameters, the noise drawn from Philox (seed, stream =
// the parameter's arena offset), so the CPU and CUDA backends add the same noise.
struct NoiseConfig {
  double sigma = 0.01;          // >= 0
  std::string scope = "all";
  uint64_t seed = 0;
  nlohmann::json to_json() const;
};
struct NoiseResult {
  int64_t perturbed = 0;     // values that received noise
  double noise_norm = 0;     // ‖noise‖₂ actually added
  nlohmann::json to_json() const;
};
NoiseResult add_parameter_noise(Model& model, const NoiseConfig& cfg);

// Global unstructured magnitude pruning: the floor(rate·n) smallest-magnitude values among the pruned tensors become
// zero, one threshold over all of them (ties at the threshold are pruned too; see kernels/prune.h).
struct PruneConfig {
  double rate = 0.5;               // in [0, 1]
  std::string scope = "weights";   // see defended_params
  nlohmann::json to_json() const;
};

struct PruneResult {
  int64_t considered = 0;  // values the threshold was chosen among
  int64_t pruned = 0;      // of those, now zero because of the pruning (ties included)
  float threshold = 0;     // the largest pruned magnitude
  nlohmann::json to_json() const;
};

PruneResult prune_global(Model& model, const PruneConfig& cfg);

// Fine-tuning on held-out data as a defense: SGD with momentum 0.9 at a constant lr 0.01, batch 128, for `epochs`.
TrainConfig defense_finetune_recipe(int epochs, uint64_t seed);

// A defense named in one token, as the audit's --defenses takes them: "none", "noise:SIGMA" (on every parameter),
// "prune:RATE" (the conv and linear weights) or "finetune:EPOCHS" (on held-out data).
struct DefenseSpec {
  std::string kind = "none";  // "none" | "noise" | "prune" | "finetune"
  double value = 0;
  std::string name() const;   // the token it was parsed from, normalised ("prune:0.5")
  static DefenseSpec parse(const std::string& token);  // UsageError for anything else
};
// Applies `spec` with each defense's defaults (seed for the noise draws and the fine-tuning order; `held_out` for
// finetune). Returns {"kind", "config", "result"}, the record lethe defend keeps in a model's metadata.
nlohmann::json apply_defense(Model& model, const DefenseSpec& spec, const Dataset* held_out, uint64_t seed);

}  // namespace lethe
