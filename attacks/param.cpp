#include "attacks/param.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "engine/error.h"
#include "engine/hash.h"
#include "engine/json_fields.h"
#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "engine/unlearn/methods.h"
#include "engine/unlearn/update_log.h"
#include "nets/model_io.h"
#include "nets/nets.h"

namespace lethe::attacks {
namespace {

using Clock = std::chrono::steady_clock;

// Bump when the features or the models behind them change meaning, so stale cache entries are never reused.
constexpr int kCacheVersion = 3;  // 3: each family's score column is its relearn-minus-drift contrast

TrainConfig fine_tune_recipe(const FineTuneBudget& b, uint64_t seed) {
  TrainConfig cfg;
  cfg.epochs = b.epochs;
  cfg.batch = b.batch;
  cfg.optim.kind = "sgd";
  cfg.optim.lr = b.lr;
  cfg.optim.momentum = b.momentum;
  cfg.schedule.kind = "constant";
  cfg.schedule.total_epochs = b.epochs;
  cfg.seed = seed;
  return cfg;
}

Dataset budget_subset(const Dataset& d, const FineTuneBudget& b, uint64_t seed) {
  return (b.subset > 0 && b.subset < d.size()) ? take_shuffled(d, b.subset, seed) : d;
}

// `n` generated images labelled by the model's own predictions.
Dataset unrelated_labelled_by(Model& model, int64_t n, UnrelatedKind kind, uint64_t seed) {
  const ModelSpec& s = model.spec();
  Dataset d = make_unrelated(n, s.channels, s.height, s.width, kind, seed);
  d.num_classes = s.num_classes;
  infer_in_chunks(model, d, 1024, [&](int64_t start, int64_t count, const Tensor& logits) {
    const std::vector<float> v = logits.to_vector();
    for (int64_t i = 0; i < count; ++i) {
      const float* row = v.data() + i * s.num_classes;
      d.labels.i64()[start + i] = std::max_element(row, row + s.num_classes) - row;
    }
  });
  return d;
}

// R: the model fine-tuned on `aux`. Z: fine-tuned on as many unrelated images, labelled by the model itself.
struct AuxModels {
  std::unique_ptr<Model> relearned, drifted;
};
AuxModels auxiliary_models(const Model& model, const Dataset& aux, const ParamAttackConfig& cfg, WorkCache& cache,
                           const std::string& role) {
  Backend& be = model.backend();
  const Dataset relearn_set = budget_subset(aux, cfg.relearn, cfg.seed);
  const nlohmann::json base = {{"v", kCacheVersion}, {"model", unlearn::params_hash(model)}, {"seed", cfg.seed}};
  AuxModels out;
  out.relearned = cache.model(role + "-R", {base, {"data", data_hash(relearn_set)}, {"budget", cfg.relearn.to_json()}},
                              be, [&] {
                                auto r = copy_of(model);
                                train(*r, relearn_set, fine_tune_recipe(cfg.relearn, cfg.seed));
                                return r;
                              });
  const int64_t n_unrelated = relearn_set.size();
  out.drifted = cache.model(role + "-Z",
                            {base,
                             {"unrelated", unrelated_kind_name(cfg.unrelated)},
                             {"n", n_unrelated},
                             {"budget", cfg.relearn.to_json()}},
                            be, [&] {
                              auto z = copy_of(model);
                              const Dataset noise = unrelated_labelled_by(*z, n_unrelated, cfg.unrelated, cfg.seed);
                              train(*z, noise, fine_tune_recipe(cfg.relearn, cfg.seed));
                              return z;
                            });
  return out;
}

// (x - median) / (1.4826 MAD) per column; falls back to the mean absolute deviation, then to 1, when the spread is 0.
FeatureMatrix robust_scale(const FeatureMatrix& raw) {
  FeatureMatrix out = raw;
  if (raw.empty()) return out;
  const size_t n = raw.size();
  for (size_t c = 0; c < raw[0].size(); ++c) {
    std::vector<double> col(n);
    for (size_t i = 0; i < n; ++i) col[i] = raw[i][c];
    const auto median_of = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      const size_t h = v.size() / 2;
      return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
    };
    const double med = median_of(col);
    std::vector<double> dev(n);
    double mean_abs = 0;
    for (size_t i = 0; i < n; ++i) {
      dev[i] = std::fabs(col[i] - med);
      mean_abs += dev[i] / static_cast<double>(n);
    }
    double scale = 1.4826 * median_of(dev);
    if (!(scale > 1e-12)) scale = mean_abs > 1e-12 ? 1.2533 * mean_abs : 1.0;
    for (size_t i = 0; i < n; ++i) out[i][c] = (col[i] - med) / scale;
  }
  return out;
}

// Stats of the classifier rows of `bank_models` against the target's: one compare_params pass over the weight block.
std::vector<kernels::SegmentStats> classifier_row_stats(const Model& target, const std::vector<const Model*>& others) {
  Backend& be = target.backend();
  const Linear& fc = target.classifier();
  const int64_t k = fc.out_features(), in = fc.in_features();
  const int64_t offset = fc.weight.f32() - target.arena().params().f32();
  LETHE_CHECK(offset >= 0 && offset + k * in <= target.arena().size(), "classifier weight outside the arena");
  const int64_t ld = kernels::compare_row_stride(k * in);
  Tensor bank = Tensor::empty({static_cast<int64_t>(others.size()), ld}, DType::F32, be.device());
  be.fill(bank, 0.0f);
  for (size_t j = 0; j < others.size(); ++j) {
    const Tensor& w = others[j]->classifier().weight;
    Tensor row = Tensor::borrow(bank.f32() + static_cast<int64_t>(j) * ld, {k * in}, DType::F32, be.device());
    be.copy(w, row);
  }
  const Tensor target_w = Tensor::borrow(fc.weight.f32(), {k * in}, DType::F32, be.device());
  std::vector<int64_t> bounds(static_cast<size_t>(k + 1));
  for (int64_t c = 0; c <= k; ++c) bounds[static_cast<size_t>(c)] = c * in;
  return be.compare_params(target_w, bank, bounds);
}

}  // namespace

SplitSpec attacker_split(const nlohmann::json& metadata, const std::string& source) {
  if (!metadata.is_object() || !metadata.contains("split") || !metadata["split"].is_object() ||
      !metadata["split"].contains("spec") || !metadata["split"]["spec"].is_object())
    throw UsageError(source + " records no split in its metadata, so the attacker's auxiliary data is unknown: "
                     "give the attacker's split with --split FILE");
  nlohmann::json spec = metadata["split"]["spec"];
  spec.erase("forget");  // ground truth: the attacker never sees it
  return SplitSpec::from_json(spec, source + " metadata");
}

nlohmann::json FineTuneBudget::to_json() const {
  return {{"epochs", epochs}, {"subset", subset}, {"batch", batch}, {"lr", lr}, {"momentum", momentum}};
}

nlohmann::json ShadowConfig::to_json() const {
  return {{"methods", methods}, {"classes", classes}, {"train_epochs", train_epochs}};
}

nlohmann::json ParamAttackConfig::to_json() const {
  return {{"features", features},
          {"classifier", classifier},
          {"forget_count", forget_count},
          {"relearn", relearn.to_json()},
          {"unrelated", unrelated_kind_name(unrelated)},
          {"shadow", shadow.to_json()},
          {"tree", {{"max_depth", tree.max_depth}, {"min_leaf", tree.min_leaf}, {"balance_classes", tree.balance_classes}}},
          {"seed", seed}};
}

const std::vector<std::string>& feature_families() {
  static const std::vector<std::string> names = {"dot", "diff"};
  return names;
}

const std::vector<std::string>& classifier_names() {
  static const std::vector<std::string> names = {"kmeans", "youden", "tree"};
  return names;
}

std::vector<double> ClassFeatures::score() const {
  std::vector<double> s;
  for (const auto& row : scaled) s.push_back(row.at(0));
  return s;
}

ClassFeatures class_features(const Model& target, const Model& relearned, const Model& drifted,
                             const std::string& family) {
  if (std::find(feature_families().begin(), feature_families().end(), family) == feature_families().end())
    throw UsageError("unknown feature family '" + family + "' (dot or diff)");
  for (const Model* m : {&relearned, &drifted})
    if (m->spec().arch != target.spec().arch || m->arena().size() != target.arena().size())
      throw UsageError("auxiliary model is not of the target's architecture");
  const int64_t k = target.spec().num_classes;
  const std::vector<kernels::SegmentStats> stats = classifier_row_stats(target, {&relearned, &drifted});
  const std::vector<float> bias_u = target.classifier().bias.to_vector();
  const std::vector<float> bias_r = relearned.classifier().bias.to_vector();
  const std::vector<float> bias_z = drifted.classifier().bias.to_vector();

  ClassFeatures f;
  // Each family's score (column 0) is relearning minus drift: confusable classes move under any fine-tuning, and Z
  // moves them as much as R does, unless the class was forgotten.
  if (family == "dot")
    f.names = {"cos_Z - cos_R", "1 - cos_R", "1 - cos_Z"};
  else
    f.names = {"(|dR| - |dZ|) / |u|", "|dR| / |u|", "|dZ| / |u|", "db_R - db_Z", "|r| / |u| - 1"};
  for (int64_t c = 0; c < k; ++c) {
    const kernels::SegmentStats& r = stats[static_cast<size_t>(c)];
    const kernels::SegmentStats& z = stats[static_cast<size_t>(k + c)];
    const double norm_u = std::sqrt(r.target_sq) + 1e-12;
    if (family == "dot") {
      const double cos_r = r.dot / (std::sqrt(r.aux_sq * r.target_sq) + 1e-30);
      const double cos_z = z.dot / (std::sqrt(z.aux_sq * z.target_sq) + 1e-30);
      f.raw.push_back({cos_z - cos_r, 1 - cos_r, 1 - cos_z});
    } else {
      const double d_r = std::sqrt(r.diff_sq) / norm_u, d_z = std::sqrt(z.diff_sq) / norm_u;
      const size_t i = static_cast<size_t>(c);
      const double db = (static_cast<double>(bias_r[i]) - bias_u[i]) - (static_cast<double>(bias_z[i]) - bias_u[i]);
      f.raw.push_back({d_r - d_z, d_r, d_z, db, std::sqrt(r.aux_sq) / norm_u - 1});
    }
  }
  for (const auto& row : f.raw)
    for (double v : row)
      if (!std::isfinite(v)) throw InputError("parameter features are not finite (the model holds NaN or Inf)");
  f.scaled = robust_scale(f.raw);
  return f;
}

nlohmann::json ShadowSet::to_json() const {
  return {{"rows", rows}, {"labels", labels}, {"names", names}, {"runs", runs}};
}

ShadowSet ShadowSet::from_json(const nlohmann::json& j, const std::string& source) {
  ShadowSet s;
  try {
    s.rows = j.at("rows").get<FeatureMatrix>();
    s.labels = j.at("labels").get<std::vector<int>>();
    s.names = j.at("names").get<std::vector<std::string>>();
    s.runs = j.at("runs").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source + ": not a shadow feature set (" + e.what() + ")");
  }
  if (s.rows.size() != s.labels.size()) throw InputError(source + ": shadow rows and labels differ in number");
  return s;
}

std::vector<int64_t> decide(const std::vector<double>& scores, const std::vector<bool>& positive, int64_t m) {
  const int64_t k = static_cast<int64_t>(scores.size());
  LETHE_CHECK(static_cast<int64_t>(positive.size()) == k, "decide: one positive flag per class");
  if (m > k) throw UsageError("--forget-count " + std::to_string(m) + " exceeds the " + std::to_string(k) + " classes");
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  // Highest score first; equal scores keep the lower class first, so the decision is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<int64_t> chosen;
  if (m > 0) {
    chosen.assign(order.begin(), order.begin() + m);
  } else {
    for (int64_t c : order)
      if (positive[static_cast<size_t>(c)]) chosen.push_back(c);
    if (chosen.empty()) chosen.push_back(order.front());
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

namespace {

// The shadow runs: the attacker's own original on half of D_aux, each class unlearned in turn with each surrogate
// method, and the same features computed with the other half as its relearning data. Rows are labelled by the class
// the attacker itself unlearned.
ShadowSet shadow_set(const Model& target, const Dataset& aux, const ParamAttackConfig& cfg, WorkCache& cache) {
  Backend& be = target.backend();
  const ModelSpec& spec = target.spec();
  const int64_t k = spec.num_classes;
  const int64_t classes = cfg.shadow.classes > 0 ? std::min(cfg.shadow.classes, k) : k;
  const uint64_t shadow_seed = cfg.seed ^ 0x5AD0u;
  // Halves of D_aux: the shadow's training data, and its stand-in for the attacker's relearning data.
  const std::vector<int64_t> perm = seeded_permutation(aux.size(), shadow_seed);
  const std::vector<int64_t> half_a(perm.begin(), perm.begin() + aux.size() / 2);
  const std::vector<int64_t> half_b(perm.begin() + aux.size() / 2, perm.end());
  const Dataset train_half = subset(aux, half_a), probe_half = subset(aux, half_b);

  const TrainConfig recipe = standard_recipe(cfg.shadow.train_epochs, shadow_seed);

  const nlohmann::json spec_key = {{"arch", spec.arch},          {"shape", {spec.channels, spec.height, spec.width}},
                                   {"classes", k},               {"base_channels", spec.base_channels},
                                   {"hidden", spec.hidden},      {"mean", spec.mean},
                                   {"std", spec.std}};
  const nlohmann::json original_key = {{"v", kCacheVersion}, {"spec", spec_key},  {"data", data_hash(train_half)},
                                       {"recipe", recipe.to_json()}, {"seed", shadow_seed}};
  auto original = cache.model("shadow-original", original_key, be, [&] {
    auto m = make_model(spec, be, shadow_seed);
    train(*m, train_half, recipe);
    return m;
  });

  ShadowSet set;
  for (const std::string& method : cfg.shadow.methods) {
    for (int64_t c = 0; c < classes; ++c) {
      const nlohmann::json run_key = {{"original", original_key}, {"method", method},     {"class", c},
                                      {"probe", data_hash(probe_half)}, {"relearn", cfg.relearn.to_json()},
                                      {"unrelated", unrelated_kind_name(cfg.unrelated)}};
      std::vector<int64_t> forget_rows, retain_rows;
      for (int64_t i = 0; i < train_half.size(); ++i)
        (train_half.labels.i64()[i] == c ? forget_rows : retain_rows).push_back(i);
      if (forget_rows.empty()) {
        cache.say("shadow: class " + std::to_string(c) + " has no image in the shadow's half of D_aux; skipped");
        continue;
      }
      const nlohmann::json run = cache.json("shadow-run", run_key, [&] {
        cache.say("shadow: " + method + " unlearns class " + std::to_string(c));
        const Dataset forget = subset(train_half, forget_rows), retain = subset(train_half, retain_rows);
        auto unlearned = method == "retrain" ? make_model(spec, be, shadow_seed) : copy_of(*original);
        unlearn::UnlearnConfig ucfg = unlearn::default_config(method, recipe);
        ucfg.seed = shadow_seed + static_cast<uint64_t>(c);
        unlearn::run_unlearning(*unlearned, ucfg, {forget, retain, {c}, {}});
        WorkCache transient = cache.transient();
        AuxModels aux_models = auxiliary_models(*unlearned, probe_half, cfg, transient, "shadow");
        nlohmann::json features = nlohmann::json::object();
        for (const std::string& family : feature_families())
          features[family] = class_features(*unlearned, *aux_models.relearned, *aux_models.drifted, family).scaled;
        return nlohmann::json{{"forgotten", c}, {"features", features}};
      });
      const FeatureMatrix rows = run.at("features").at(cfg.features).get<FeatureMatrix>();
      for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i) {
        set.rows.push_back(rows[static_cast<size_t>(i)]);
        set.labels.push_back(i == c ? 1 : 0);
      }
      ++set.runs;
    }
  }
  if (set.runs == 0) throw UsageError("no shadow run was possible: D_aux is too small to unlearn any class");
  return set;
}

}  // namespace

ParamAttackResult run_param_attack(const Model& target, const Dataset& aux, const ParamAttackConfig& cfg,
                                   const std::string& work_dir, const AttackLogFn& log) {
  const auto t0 = Clock::now();
  if (std::find(classifier_names().begin(), classifier_names().end(), cfg.classifier) == classifier_names().end())
    throw UsageError("unknown classifier '" + cfg.classifier + "' (kmeans, youden or tree)");
  const int64_t k = target.spec().num_classes;
  if (k < 2) throw UsageError("the parameter attack needs a model with at least 2 classes");
  if (cfg.forget_count < 0 || cfg.forget_count >= k)
    throw UsageError("--forget-count must be in [1, " + std::to_string(k - 1) + "] (0: unknown)");
  if (aux.size() == 0) throw UsageError("the attacker's auxiliary data is empty");
  if (aux.num_classes != k) throw UsageError("the auxiliary data has " + std::to_string(aux.num_classes) +
                                             " classes, the target " + std::to_string(k));
  for (const std::string& m : cfg.shadow.methods)
    if (std::find(unlearn::method_names().begin(), unlearn::method_names().end(), m) == unlearn::method_names().end() ||
        m == "hu-exact" || m == "hu-approx")
      throw UsageError("unknown shadow method '" + m + "' (retrain, finetune, randlabel, amnesiac or neggrad)");

  ParamAttackResult result;
  WorkCache cache(work_dir, result, log);
  const AuxModels aux_models = auxiliary_models(target, aux, cfg, cache, "target");
  result.features = class_features(target, *aux_models.relearned, *aux_models.drifted, cfg.features);
  const std::vector<double> score = result.features.score();

  std::vector<bool> positive(static_cast<size_t>(k), false);
  if (cfg.classifier == "kmeans") {
    // Two clusters over the K classes; the forgotten one is the cluster whose members moved more (higher mean score).
    const KMeansResult km = kmeans(result.features.scaled, 2, cfg.seed);
    double mean_score[2] = {0, 0};
    int64_t size[2] = {0, 0};
    for (int64_t c = 0; c < k; ++c) {
      mean_score[km.assignment[c]] += score[c];
      ++size[km.assignment[c]];
    }
    for (int i = 0; i < 2; ++i) mean_score[i] = size[i] ? mean_score[i] / static_cast<double>(size[i]) : -INFINITY;
    const int forgotten = mean_score[1] > mean_score[0] ? 1 : 0;
    for (int64_t c = 0; c < k; ++c) positive[c] = km.assignment[c] == forgotten;
    result.scores = score;
    result.calibration = {{"assignment", km.assignment}, {"centroids", km.centroids}, {"forgotten_cluster", forgotten},
                          {"inertia", km.inertia}};
  } else {
    const ShadowSet shadow = shadow_set(target, aux, cfg, cache);
    if (cfg.classifier == "youden") {
      std::vector<double> shadow_scores;
      for (const auto& row : shadow.rows) shadow_scores.push_back(row.at(0));
      const YoudenThreshold th = fit_youden(shadow_scores, shadow.labels);
      for (int64_t c = 0; c < k; ++c) positive[c] = score[c] >= th.threshold;
      result.scores = score;
      result.calibration = th.to_json();
    } else {
      DecisionTree tree;
      tree.fit(shadow.rows, shadow.labels, cfg.tree);
      // Leaves are coarse, so classes in one leaf are ordered by the family score within it.
      for (int64_t c = 0; c < k; ++c) {
        const double p = tree.predict_proba(result.features.scaled[c]);
        positive[c] = p >= 0.5;
        result.scores.push_back(p + 1e-9 * std::tanh(score[c]));
      }
      result.calibration = tree.to_json();
    }
    result.calibration["shadow_runs"] = shadow.runs;
  }
  result.predicted = decide(result.scores, positive, cfg.forget_count);
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace lethe::attacks
