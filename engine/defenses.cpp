#include "engine/defenses.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
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

TrainConfig defense_finetune_recipe(int epochs, uint64_t seed) {
  TrainConfig cfg;
  cfg.epochs = cfg.schedule.total_epochs = epochs;
  cfg.batch = 128;
  cfg.optim.lr = 0.01f;
  cfg.optim.momentum = 0.9f;
  cfg.schedule.kind = "constant";
  cfg.seed = seed;
  return cfg;
}

std::string DefenseSpec::name() const {
  if (kind == "none") return kind;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s:%g", kind.c_str(), value);
  return buf;
}

DefenseSpec DefenseSpec::parse(const std::string& token) {
  if (token == "none") return {};
  const size_t colon = token.find(':');
  DefenseSpec d{token.substr(0, colon), 0};
  const std::string number = colon == std::string::npos ? "" : token.substr(colon + 1);
  char* end = nullptr;
  d.value = number.empty() ? std::nan("") : std::strtod(number.c_str(), &end);
  const bool parsed = !number.empty() && end == number.c_str() + number.size() && std::isfinite(d.value);
  const bool valid = parsed && ((d.kind == "noise" && d.value >= 0) || (d.kind == "prune" && d.value >= 0 &&
                                d.value <= 1) || (d.kind == "finetune" && d.value >= 1 && d.value <= 1000 &&
                                d.value == std::floor(d.value)));
  if (!valid)
    throw UsageError("defense '" + token + "': expected none, noise:SIGMA (>= 0), prune:RATE (in [0, 1]) or "
                     "finetune:EPOCHS (a whole number >= 1)");
  return d;
}

nlohmann::json apply_defense(Model& model, const DefenseSpec& spec, const Dataset* held_out, uint64_t seed) {
  nlohmann::json config, result;
  if (spec.kind == "noise") {
    const NoiseConfig cfg{spec.value, "all", seed};
    config = cfg.to_json();
    result = add_parameter_noise(model, cfg).to_json();
  } else if (spec.kind == "prune") {
    const PruneConfig cfg{spec.value, "weights"};
    config = cfg.to_json();
    result = prune_global(model, cfg).to_json();
  } else if (spec.kind == "finetune") {
    if (!held_out || held_out->size() == 0) throw UsageError("defense " + spec.name() + ": no held-out data");
    const TrainConfig cfg = defense_finetune_recipe(static_cast<int>(spec.value), seed);
    const std::vector<EpochReport> epochs = train(model, *held_out, cfg);
    config = {{"images", held_out->size()}, {"train", cfg.to_json()}};
    result = {{"final_loss", epochs.empty() ? 0.0 : epochs.back().loss}};
  } else if (spec.kind != "none") {
    throw UsageError("unknown defense '" + spec.kind + "'");
  }
  return {{"kind", spec.kind}, {"config", config}, {"result", result}};
}

}  // namespace lethe
