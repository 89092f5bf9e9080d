#pragma once
// Defenses against unlearning-inversion attacks (Hu et al.; ../shared/research/attacks.md §B) that act on a model
// after unlearning. The parameter-noise defense lives in the unlearning update itself (unlearn::UnlearnConfig).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/model.h"

namespace lethe {

// Global unstructured magnitude pruning: the floor(rate·n) smallest-magnitude values among the pruned tensors become
// zero, one threshold over all of them (ties at the threshold are pruned too; see kernels/prune.h).
struct PruneConfig {
  double rate = 0.5;               // in [0, 1]
  std::string scope = "weights";   // "weights": conv and linear weights (tensors of >= 2 dims, like PyTorch's
                                   // prune.global_unstructured over module weights); "all": every parameter
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
