#pragma once
// Parameter-based label leakage (Zheng et al.; our protocol, ../shared/research/attacks.md §A, choices in
// docs/attacks/parameter.md). The attacker holds the unlearned target θ_u (white-box) and its own auxiliary data D_aux,
// and names the forgotten class(es):
//   1. auxiliary models: R = θ_u fine-tuned on D_aux (a forgotten class is relearned, so its classifier row moves far
//      more than a retained one) and Z = θ_u fine-tuned on unrelated images labelled by θ_u itself (each row's natural
//      drift under the same schedule);
//   2. per-class features from the classifier rows of θ_u, R and Z (Backend::compare_params: one fused pass), put on a
//      common scale across the K classes of the model;
//   3. a classifier over the K classes: k-means (unsupervised), or a Youden threshold or a CART tree calibrated on
//      shadow runs: the attacker trains its own model on part of D_aux, unlearns each class with a surrogate method,
//      and computes the same features, labelled by the class it unlearned itself.
// The target's ground truth (the forget spec in its metadata, the unlearning record) is never read: attacker_split()
// drops it before anything else sees the metadata. Auxiliary and shadow models are cached in a work directory, keyed
// by the hash of everything they depend on, so repeated attacks reuse them.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attacks/classifiers.h"
#include "attacks/work_cache.h"
#include "datasets/splits.h"
#include "datasets/unrelated.h"
#include "engine/data.h"
#include "engine/model.h"

namespace lethe::attacks {

// The split recorded in a model's metadata as the attacker may see it: the data layout (dataset, seed, classes, the
// auxiliary fraction, the user pool), without the forget spec. Throws UsageError if the metadata records no split.
SplitSpec attacker_split(const nlohmann::json& metadata, const std::string& source);

// A fine-tuning budget of an auxiliary model: SGD with momentum at a constant rate.
struct FineTuneBudget {
  int epochs = 1;
  int64_t subset = 0;  // images at most, a seeded choice (0: all)
  int64_t batch = 64;
  float lr = 0.01f;
  float momentum = 0.9f;
  nlohmann::json to_json() const;
};

struct ShadowConfig {
  std::vector<std::string> methods = {"neggrad"};  // surrogate unlearning methods, each run on every shadow class
  int64_t classes = 0;     // classes 0..classes-1 are unlearned in turn (0: all K)
  int train_epochs = 5;    // the shadow original, from scratch on its half of D_aux (lethe train's default recipe)
  nlohmann::json to_json() const;
};

struct ParamAttackConfig {
  std::string features = "dot";       // "dot" | "diff" (dot: the best measured, docs/attacks/parameter.md)
  std::string classifier = "kmeans";  // "kmeans" | "youden" | "tree"
  int64_t forget_count = 0;           // m, when the attacker knows it; 0: unknown
  FineTuneBudget relearn;             // R, and Z on as many generated images with the same schedule
  UnrelatedKind unrelated = UnrelatedKind::Mixed;
  ShadowConfig shadow;
  TreeConfig tree;
  uint64_t seed = 0;
  nlohmann::json to_json() const;
};
const std::vector<std::string>& feature_families();  // {"dot", "diff"}
const std::vector<std::string>& classifier_names();  // {"kmeans", "youden", "tree"}

// Per-class features of one model, K rows. `raw` are the measurements; `scaled` the same after robust
// standardisation across the K classes ((x - median) / (1.4826 MAD)), so models of different training lengths and
// data sizes are comparable; column 0 of `scaled` is the family's score (higher: more likely forgotten).
struct ClassFeatures {
  std::vector<std::string> names;
  FeatureMatrix raw, scaled;
  std::vector<double> score() const;  // scaled column 0
};

// The features of one family from the classifier rows (weight row and bias) of the target, R and Z.
ClassFeatures class_features(const Model& target, const Model& relearned, const Model& drifted,
                             const std::string& family);

// Labelled shadow features: one row per (shadow run, class), label 1 for the class the run unlearned.
struct ShadowSet {
  FeatureMatrix rows;
  std::vector<int> labels;
  std::vector<std::string> names;
  int64_t runs = 0;
  nlohmann::json to_json() const;
  static ShadowSet from_json(const nlohmann::json& j, const std::string& source);
};

struct ParamAttackResult : CacheCounts {
  std::vector<int64_t> predicted;  // sorted class ids
  std::vector<double> scores;      // per class, higher: more likely forgotten (kmeans/youden: the scaled score; tree:
                                   // P(forgotten))
  ClassFeatures features;
  nlohmann::json calibration;      // the fitted threshold or tree, or the k-means clusters
  double seconds = 0;
};

// The attack. `aux` is D_aux; `work_dir` caches the auxiliary and shadow models (empty: nothing is cached).
ParamAttackResult run_param_attack(const Model& target, const Dataset& aux, const ParamAttackConfig& cfg,
                                   const std::string& work_dir, const AttackLogFn& log = {});

// The decision from per-class scores: the top m when m is known, else the classes `positive` marks (at least the
// top one).
std::vector<int64_t> decide(const std::vector<double>& scores, const std::vector<bool>& positive, int64_t m);

}  // namespace lethe::attacks
