#include "engine/defenses.h"

#include <cmath>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"

namespace lethe {

nlohmann::json PruneConfig::to_json() const { return {{"rate", rate}, {"scope", scope}}; }

nlohmann::json PruneResult::to_json() const {
  return {{"considered", considered}, {"pruned", pruned}, {"threshold", threshold}};
}

PruneResult prune_global(Model& model, const PruneConfig& cfg) {
  if (!(cfg.rate >= 0.0 && cfg.rate <= 1.0)) throw UsageError("--rate must be in [0, 1]");
  if (cfg.scope != "weights" && cfg.scope != "all") throw UsageError("unknown pruning scope '" + cfg.scope + "'");
  Backend& be = model.backend();
  std::vector<const ParamEntry*> pruned_entries;
  PruneResult result;
  for (const ParamEntry& e : model.arena().entries())
    if (cfg.scope == "all" || e.shape.size() >= 2) {
      pruned_entries.push_back(&e);
      result.considered += e.numel;
    }
  const auto k = static_cast<int64_t>(std::floor(cfg.rate * static_cast<double>(result.considered)));
  if (k == 0) return result;

  // One threshold over every pruned tensor: gather them into one vector (the arena interleaves weights and biases).
  Tensor gathered = Tensor::empty({result.considered}, DType::F32, be.device());
  int64_t at = 0;
  for (const ParamEntry* e : pruned_entries) {
    Tensor slot = gathered.rows(at, e->numel);
    be.copy(*e->value_slot, slot);
    at += e->numel;
  }
  for (const float v : gathered.to_vector())
    if (!std::isfinite(v)) throw InputError("prune: the model holds a non-finite parameter");
  result.threshold = be.magnitude_kth(gathered, k - 1);
  for (const float v : gathered.to_vector()) result.pruned += std::fabs(v) <= result.threshold && v != 0.0f ? 1 : 0;
  for (const ParamEntry* e : pruned_entries) be.prune_magnitude(*e->value_slot, result.threshold);
  return result;
}

}  // namespace lethe
