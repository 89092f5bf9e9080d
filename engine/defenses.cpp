#include "engine/defenses.h"

#include <cmath>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"

namespace lethe {

std::vector<const ParamEntry*> defended_params(const Model& model, const std::string& scope) {
  if (scope != "weights" && scope != "all") throw UsageError("unknown defense scope '" + scope + "' (weights or all)");
  std::vector<const ParamEntry*> out;
  for (const ParamEntry& e : model.arena().entries())
    if (scope == "all" || e.shape.size() >= 2) out.push_back(&e);
  return out;
}

nlohmann::json NoiseConfig::to_json() const { return {{"sigma", sigma}, {"scope", scope}, {"seed", seed}}; }
nlohmann::json NoiseResult::to_json() const { return {{"perturbed", perturbed}, {"noise_norm", noise_norm}}; }

NoiseResult add_parameter_noise(Model& model, const NoiseConfig& cfg) {
  if (!(cfg.sigma >= 0.0 && std::isfinite(cfg.sigma))) throw UsageError("--sigma must be finite and >= 0");
  Backend& be = model.backend();
  NoiseResult result;
  double squares = 0;
  for (const ParamEntry* e : defended_params(model, cfg.scope)) {
    Tensor noise = Tensor::empty({e->numel}, DType::F32, be.device());
    be.fill_normal(noise, 0.0f, static_cast<float>(cfg.sigma), cfg.seed, static_cast<uint64_t>(e->offset));
    Tensor values = e->value_slot->reshape({e->numel});
    be.axpy(1.0f, noise, values);
    squares += be.sum_squares(noise);
    result.perturbed += e->numel;
  }
  result.noise_norm = std::sqrt(squares);
  return result;
}

nlohmann::json PruneConfig::to_json() const { return {{"rate", rate}, {"scope", scope}}; }

nlohmann::json PruneResult::to_json() const {
  return {{"considered", considered}, {"pruned", pruned}, {"threshold", threshold}};
}

PruneResult prune_global(Model& model, const PruneConfig& cfg) {
  if (!(cfg.rate >= 0.0 && cfg.rate <= 1.0)) throw UsageError("--rate must be in [0, 1]");
  Backend& be = model.backend();
  const std::vector<const ParamEntry*> pruned_entries = defended_params(model, cfg.scope);
  PruneResult result;
  for (const ParamEntry* e : pruned_entries) result.considered += e->numel;
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
