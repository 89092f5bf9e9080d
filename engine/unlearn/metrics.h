#pragma once
// The unlearning metrics of the literature (SalUn, "model sparsity", ...): UA, RA, TA, test accuracy on the
// forgotten classes, per-class test accuracy and MIA-efficacy, measured on a model after unlearning.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"
#include "engine/model.h"

namespace lethe::unlearn {

// ---- L2-regularised logistic regression (the membership classifier) ----

struct LogisticConfig {
  double l2 = 1e-3;         // penalty (l2 / 2) * |w|^2 on the standardised weights (not the bias), per mean sample loss
  int max_iterations = 30;  // Newton steps; a 3-feature problem converges in well under ten
  double tolerance = 1e-10; // stop when the largest Newton step component is below this
};

// A fitted classifier: P(label 1 | x) = sigmoid(bias + sum_j weights[j] * (x[j] - mean[j]) / scale[j]).
struct LogisticModel {
  std::vector<double> mean, scale;  // per-feature standardisation, from the fitting set (scale 1 for a constant feature)
  std::vector<double> weights;      // on the standardised features
  double bias = 0;
  int iterations = 0;               // Newton steps taken

  int64_t dims() const { return static_cast<int64_t>(weights.size()); }
  double probability(const double* x) const;              // x: dims() values
  bool predict(const double* x) const { return probability(x) >= 0.5; }
  // The weight of feature j in the original (unstandardised) units: weights[j] / scale[j].
  double raw_weight(int64_t j) const;
};

// Fits by Newton's method (IRLS) in double with a backtracking line search, from zero weights, single-threaded:
// the result is a pure function of the inputs. features: row-major [n, dims]; labels: n values, each 0 or 1.
// Throws UsageError for empty input, a label other than 0/1 or a non-finite feature.
LogisticModel fit_logistic(const std::vector<double>& features, const std::vector<int>& labels, int64_t dims,
                           const LogisticConfig& cfg = {});
// P(label 1) for each row of `features` (row-major [n, model.dims()]).
std::vector<double> predict_probability(const LogisticModel& model, const std::vector<double>& features);

// ---- membership features ----

inline constexpr int64_t kMembershipFeatures = 3;
using MembershipFeatures = std::array<double, kMembershipFeatures>;
// From one softmax row `probs` (k values summing to 1) and the sample's true label:
//   [0] log p_label, clamped below at log(1e-30);
//   [1] the prediction entropy -sum_i p_i log p_i;
//   [2] the modified entropy of Song & Mittal (2021), -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i), with the
//       logarithms' arguments clamped below at 1e-30 as in their code.
MembershipFeatures membership_features(const double* probs, int64_t k, int64_t label);

// ---- the membership inference attack ----

struct MembershipAttackConfig {
  int64_t max_per_side = 10000;  // cap on each side of the fitting set, so 60k-image datasets stay fast
  uint64_t seed = 0;             // which samples the balancing subsample keeps
  LogisticConfig logistic;
};
struct MembershipAttackResult {
  double nonmember_fraction = 0;  // of the targets (MIA-efficacy when the targets are D_f)
  double fit_accuracy = 0;        // of the classifier on its own (balanced) fitting set: ~0.5 when nothing leaks
  int64_t fit_per_side = 0;
  LogisticModel classifier;
};
// Fits a member (1) / non-member (0) classifier on a balanced, seeded subsample of `members` and `nonmembers` (both
// row-major [n, kMembershipFeatures]) and applies it to `targets`. Throws UsageError if any side is empty.
MembershipAttackResult membership_attack(const std::vector<double>& members, const std::vector<double>& nonmembers,
                                         const std::vector<double>& targets, const MembershipAttackConfig& cfg = {});

// ---- the whole measurement ----

struct MetricsConfig {
  int64_t chunk = 1024;  // images per inference call
  MembershipAttackConfig mia;
};

struct UnlearningMetrics {
  double ua = 0;                              // 1 - accuracy on D_f
  double ra = 0;                              // accuracy on D_r
  double ta = 0;                              // test accuracy on the retained classes (all classes if none forgotten)
  std::optional<double> forgotten_test_acc;   // test accuracy on the forgotten classes; empty if none is forgotten
                                              // or the test set holds none of their samples
  double mia = 0;                             // MIA-efficacy: fraction of D_f judged non-member
  std::vector<double> per_class_accuracy;     // test accuracy per class (0 for a class with no test sample)
  std::vector<int64_t> per_class_count;       // test samples per class
  int64_t n_forget = 0, n_retain = 0, n_test = 0;

  // Keys: UA, RA, TA, forgotten_test_acc (null when empty), MIA, per_class_accuracy, per_class_count, n_forget,
  // n_retain, n_test.
  nlohmann::json to_json() const;
};

// Measures `model` (after unlearning) on the forget set, the retain set and the test set. `forgotten_classes` is
// empty for sample forgetting. Throws UsageError for an empty set, a forgotten class outside the model's classes or
// every class forgotten, and InputError for data that do not fit the model or non-finite logits.
UnlearningMetrics measure_unlearning(Model& model, const Dataset& forget, const Dataset& retain, const Dataset& test,
                                     const std::vector<int64_t>& forgotten_classes, const MetricsConfig& cfg = {});

}  // namespace lethe::unlearn
