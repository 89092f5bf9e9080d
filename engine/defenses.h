#pragma once
// Defenses against unlearning-inversion attacks (Hu et al.; ../shared/research/attacks.md §B) that act on a model
// after unlearning: parameter noise, pruning, and (in tools/cmd_defend.cpp, with the trainer) fine-tuning on
// held-out data. Noise added to θ_u is noise on the unlearning update θ_u - θ_o; the per-step variant lives in the
// ascent update itself (unlearn::AscentConfig::noise_std).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model.h"

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

}  // namespace lethe
