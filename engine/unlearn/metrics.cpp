#include "engine/unlearn/metrics.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"
#include "engine/trainer.h"
#include "kernels/philox.h"

namespace lethe::unlearn {

namespace {

// Arguments of the logarithms in the features are clamped here (Song & Mittal's code uses the same floor), so a
// probability that underflows to 0 gives a large finite feature instead of -inf.
constexpr double kLogFloor = 1e-30;

double safe_log(double p) { return std::log(std::max(p, kLogFloor)); }

double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// log(1 + exp(z)) without overflow.
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// Solves a x = b in place (a: row-major n x n, destroyed; b becomes x) by Gaussian elimination with partial pivoting.
// The Newton systems here are (dims + 1) x (dims + 1) and positive definite thanks to the L2 term.
void solve_in_place(std::vector<double>& a, std::vector<double>& b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t r = col + 1; r < n; ++r)
      if (std::fabs(a[r * n + col]) > std::fabs(a[pivot * n + col])) pivot = r;
    LETHE_CHECK(a[pivot * n + col] != 0.0, "singular Newton system in the logistic regression");
    if (pivot != col) {
      for (size_t c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      std::swap(b[col], b[pivot]);
    }
    for (size_t r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      for (size_t c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      b[r] -= f * b[col];
    }
  }
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t c = i + 1; c < n; ++c) s -= a[i * n + c] * b[c];
    b[i] = s / a[i * n + i];
  }
}

// The standardised design matrix plus the objective's pieces, so the line search can re-evaluate cheaply.
struct LogisticProblem {
  const std::vector<double>& x;  // standardised, row-major [n, d]
  const std::vector<int>& y;
  int64_t n, d;
  double l2;

  double margin(const std::vector<double>& theta, int64_t i) const {  // theta = [w_0 .. w_{d-1}, bias]
    double z = theta[static_cast<size_t>(d)];
    for (int64_t j = 0; j < d; ++j) z += theta[static_cast<size_t>(j)] * x[static_cast<size_t>(i * d + j)];
    return z;
  }
  // Mean log-loss + (l2 / 2) |w|^2.
  double objective(const std::vector<double>& theta) const {
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double z = margin(theta, i);
      loss += softplus(z) - (y[static_cast<size_t>(i)] ? z : 0.0);
    }
    double reg = 0;
    for (int64_t j = 0; j < d; ++j) reg += theta[static_cast<size_t>(j)] * theta[static_cast<size_t>(j)];
    return loss / static_cast<double>(n) + 0.5 * l2 * reg;
  }
};

// A 64-bit seed for stream `stream` of `seed`, so the two sides of the attack subsample independently.
uint64_t derived_seed(uint64_t seed, uint64_t stream) {
  return (static_cast<uint64_t>(kernels::philox_word(seed, stream, 0)) << 32) | kernels::philox_word(seed, stream, 1);
}

// `per_side` rows of a row-major [n, kMembershipFeatures] matrix, chosen by a seeded permutation and kept in their
// original order.
std::vector<double> subsample_rows(const std::vector<double>& rows, int64_t per_side, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(rows.size()) / kMembershipFeatures;
  std::vector<int64_t> keep = seeded_permutation(n, seed);
  keep.resize(static_cast<size_t>(per_side));
  std::sort(keep.begin(), keep.end());
  std::vector<double> out;
  out.reserve(static_cast<size_t>(per_side * kMembershipFeatures));
  for (int64_t i : keep)
    for (int64_t j = 0; j < kMembershipFeatures; ++j) out.push_back(rows[static_cast<size_t>(i * kMembershipFeatures + j)]);
  return out;
}

// Per-sample predictions and membership features of one dataset under the model.
struct ScoredSet {
  std::vector<int64_t> predictions;
  std::vector<int64_t> labels;
  std::vector<double> features;  // row-major [n, kMembershipFeatures]
  int64_t correct = 0;
};

// The metrics need samples in every set, and sets that fit the model.
void check_set(const Model& model, const Dataset& data, const std::string& role) {
  if (data.size() == 0) throw UsageError("the " + role + " is empty: the unlearning metrics need samples in it");
  check_fits(model, data, role);
}

ScoredSet score(Model& model, const Dataset& data, int64_t chunk, const std::string& role) {
  const int64_t n = data.size(), k = model.spec().num_classes;
  ScoredSet out;
  out.predictions.resize(static_cast<size_t>(n));
  out.labels.assign(data.labels.i64(), data.labels.i64() + n);
  out.features.resize(static_cast<size_t>(n * kMembershipFeatures));
  std::vector<double> probs(static_cast<size_t>(k));
  infer_in_chunks(model, data, chunk, [&](int64_t start, int64_t count, const Tensor& logits) {
    const Tensor host = logits.to_cpu();
    for (int64_t i = 0; i < count; ++i) {
      const float* row = host.f32() + i * k;
      const int64_t index = start + i;
      int64_t best = 0;
      for (int64_t c = 0; c < k; ++c) {
        if (!std::isfinite(row[c]))
          throw InputError("the model produced a non-finite logit on sample " + std::to_string(index) + " of the " +
                           role + " ('" + data.name + "'): its weights hold NaN or Inf");
        if (row[c] > row[best]) best = c;
      }
      // Softmax in double, shifted by the maximum so exp cannot overflow.
      double sum = 0;
      for (int64_t c = 0; c < k; ++c) sum += probs[static_cast<size_t>(c)] = std::exp(static_cast<double>(row[c]) - row[best]);
      for (double& p : probs) p /= sum;
      const int64_t label = out.labels[static_cast<size_t>(index)];
      out.predictions[static_cast<size_t>(index)] = best;
      out.correct += best == label;
      const MembershipFeatures f = membership_features(probs.data(), k, label);
      std::copy(f.begin(), f.end(), out.features.begin() + index * kMembershipFeatures);
    }
  });
  return out;
}

double fraction(int64_t part, int64_t whole) { return static_cast<double>(part) / static_cast<double>(whole); }

}  // namespace

double LogisticModel::probability(const double* x) const {
  double z = bias;
  for (size_t j = 0; j < weights.size(); ++j) z += weights[j] * (x[j] - mean[j]) / scale[j];
  return sigmoid(z);
}

double LogisticModel::raw_weight(int64_t j) const {
  return weights[static_cast<size_t>(j)] / scale[static_cast<size_t>(j)];
}

LogisticModel fit_logistic(const std::vector<double>& features, const std::vector<int>& labels, int64_t dims,
                           const LogisticConfig& cfg) {
  if (dims <= 0) throw UsageError("logistic regression: the feature count must be positive");
  const int64_t n = static_cast<int64_t>(labels.size());
  if (n == 0) throw UsageError("logistic regression: no samples to fit");
  if (static_cast<int64_t>(features.size()) != n * dims)
    throw UsageError("logistic regression: " + std::to_string(features.size()) + " feature values for " +
                     std::to_string(n) + " samples of " + std::to_string(dims) + " features");
  if (!(cfg.l2 > 0) || cfg.max_iterations <= 0)
    throw UsageError("logistic regression: l2 must be positive and max_iterations at least 1");
  int64_t positives = 0;
  for (int y : labels) {
    if (y != 0 && y != 1) throw UsageError("logistic regression: labels must be 0 or 1, got " + std::to_string(y));
    positives += y;
  }
  // With one class only the bias has no finite optimum.
  if (positives == 0 || positives == n) throw UsageError("logistic regression: the labels must include both 0 and 1");
  for (double v : features)
    if (!std::isfinite(v)) throw UsageError("logistic regression: a feature value is not finite");

  LogisticModel m;
  const size_t d = static_cast<size_t>(dims);
  m.mean.assign(d, 0.0);
  m.scale.assign(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) m.mean[j] += features[static_cast<size_t>(i) * d + j];
  for (double& v : m.mean) v /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) {
      const double c = features[static_cast<size_t>(i) * d + j] - m.mean[j];
      m.scale[j] += c * c;
    }
  // A constant feature keeps scale 1: its standardised column is all zeros and the L2 term pins its weight at 0.
  for (double& v : m.scale) v = v > 0 ? std::sqrt(v / static_cast<double>(n)) : 1.0;
  std::vector<double> x(features.size());
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j)
      x[static_cast<size_t>(i) * d + j] = (features[static_cast<size_t>(i) * d + j] - m.mean[j]) / m.scale[j];

  const LogisticProblem problem{x, labels, n, dims, cfg.l2};
  const size_t p = d + 1;  // weights then bias
  std::vector<double> theta(p, 0.0), grad(p), hess(p * p), step(p), trial(p);
  double objective = problem.objective(theta);
  for (int it = 0; it < cfg.max_iterations; ++it) {
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(hess.begin(), hess.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const double prob = sigmoid(problem.margin(theta, i));
      const double residual = prob - labels[static_cast<size_t>(i)], curvature = prob * (1.0 - prob);
      const double* xi = x.data() + static_cast<size_t>(i) * d;
      for (size_t a = 0; a < p; ++a) {
        const double xa = a < d ? xi[a] : 1.0;
        grad[a] += residual * xa;
        for (size_t b = 0; b <= a; ++b) hess[a * p + b] += curvature * xa * (b < d ? xi[b] : 1.0);
      }
    }
    for (size_t a = 0; a < p; ++a) {
      grad[a] /= static_cast<double>(n);
      for (size_t b = 0; b <= a; ++b) hess[b * p + a] = hess[a * p + b] /= static_cast<double>(n);
    }
    for (size_t j = 0; j < d; ++j) {
      grad[j] += cfg.l2 * theta[j];
      hess[j * p + j] += cfg.l2;
    }
    step = grad;
    solve_in_place(hess, step);
    // Backtracking (Armijo) line search: a full Newton step can overshoot far from the optimum.
    double directional = 0;
    for (size_t a = 0; a < p; ++a) directional += grad[a] * step[a];
    double t = 1.0, trial_objective = objective;
    bool accepted = false;
    for (int halving = 0; halving < 40; ++halving, t *= 0.5) {
      for (size_t a = 0; a < p; ++a) trial[a] = theta[a] - t * step[a];
      trial_objective = problem.objective(trial);
      if (trial_objective <= objective - 1e-4 * t * directional) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // no decrease left at double precision: converged
    double largest = 0;
    for (size_t a = 0; a < p; ++a) largest = std::max(largest, std::fabs(t * step[a]));
    theta = trial;
    objective = trial_objective;
    m.iterations = it + 1;
    if (largest < cfg.tolerance) break;
  }
  m.weights.assign(theta.begin(), theta.begin() + static_cast<std::ptrdiff_t>(d));
  m.bias = theta[d];
  return m;
}

std::vector<double> predict_probability(const LogisticModel& model, const std::vector<double>& features) {
  const int64_t d = model.dims();
  LETHE_CHECK(d > 0 && static_cast<int64_t>(features.size()) % d == 0, "feature matrix does not match the model");
  std::vector<double> out(features.size() / static_cast<size_t>(d));
  for (size_t i = 0; i < out.size(); ++i) out[i] = model.probability(features.data() + i * static_cast<size_t>(d));
  return out;
}

MembershipFeatures membership_features(const double* probs, int64_t k, int64_t label) {
  LETHE_CHECK(label >= 0 && label < k, "label outside the probability row");
  const double py = probs[label];
  double entropy = 0, modified_entropy = -(1.0 - py) * safe_log(py);
  for (int64_t c = 0; c < k; ++c) {
    const double pc = probs[c];
    if (pc > 0) entropy -= pc * std::log(pc);  // 0 log 0 = 0
    if (c != label) modified_entropy -= pc * safe_log(1.0 - pc);
  }
  return {safe_log(py), entropy, modified_entropy};
}

MembershipAttackResult membership_attack(const std::vector<double>& members, const std::vector<double>& nonmembers,
                                         const std::vector<double>& targets, const MembershipAttackConfig& cfg) {
  const int64_t n_members = static_cast<int64_t>(members.size()) / kMembershipFeatures;
  const int64_t n_nonmembers = static_cast<int64_t>(nonmembers.size()) / kMembershipFeatures;
  const int64_t n_targets = static_cast<int64_t>(targets.size()) / kMembershipFeatures;
  if (n_members == 0 || n_nonmembers == 0 || n_targets == 0)
    throw UsageError("membership attack: members, non-members and targets must all be non-empty");
  if (cfg.max_per_side <= 0) throw UsageError("membership attack: max_per_side must be positive");

  // Balanced classes, so 0.5 is chance and the fraction judged non-member is not skewed by the set sizes.
  MembershipAttackResult r;
  r.fit_per_side = std::min({n_members, n_nonmembers, cfg.max_per_side});
  const std::vector<double> fit_members = subsample_rows(members, r.fit_per_side, derived_seed(cfg.seed, 1));
  const std::vector<double> fit_nonmembers = subsample_rows(nonmembers, r.fit_per_side, derived_seed(cfg.seed, 2));
  std::vector<double> x = fit_members;
  x.insert(x.end(), fit_nonmembers.begin(), fit_nonmembers.end());
  std::vector<int> y(static_cast<size_t>(r.fit_per_side), 1);
  y.resize(static_cast<size_t>(2 * r.fit_per_side), 0);
  r.classifier = fit_logistic(x, y, kMembershipFeatures, cfg.logistic);

  int64_t fit_correct = 0;
  const std::vector<double> fit_prob = predict_probability(r.classifier, x);
  for (size_t i = 0; i < y.size(); ++i) fit_correct += (fit_prob[i] >= 0.5) == (y[i] == 1);
  r.fit_accuracy = fraction(fit_correct, 2 * r.fit_per_side);

  int64_t judged_nonmember = 0;
  for (double prob : predict_probability(r.classifier, targets)) judged_nonmember += prob < 0.5;
  r.nonmember_fraction = fraction(judged_nonmember, n_targets);
  return r;
}

nlohmann::json UnlearningMetrics::to_json() const {
  nlohmann::json j;
  j["UA"] = ua;
  j["RA"] = ra;
  j["TA"] = ta;
  j["forgotten_test_acc"] = forgotten_test_acc ? nlohmann::json(*forgotten_test_acc) : nlohmann::json(nullptr);
  j["MIA"] = mia;
  j["per_class_accuracy"] = per_class_accuracy;
  j["per_class_count"] = per_class_count;
  j["n_forget"] = n_forget;
  j["n_retain"] = n_retain;
  j["n_test"] = n_test;
  return j;
}

UnlearningMetrics measure_unlearning(Model& model, const Dataset& forget, const Dataset& retain, const Dataset& test,
                                     const std::vector<int64_t>& forgotten_classes, const MetricsConfig& cfg) {
  if (cfg.chunk <= 0) throw UsageError("unlearning metrics: the inference chunk must be positive");
  const int64_t k = model.spec().num_classes;
  std::vector<bool> forgotten(static_cast<size_t>(k), false);
  for (int64_t c : forgotten_classes) {
    if (c < 0 || c >= k)
      throw UsageError("forgotten class " + std::to_string(c) + " is outside the model's " + std::to_string(k) +
                       " classes");
    forgotten[static_cast<size_t>(c)] = true;
  }
  if (std::count(forgotten.begin(), forgotten.end(), true) == k)
    throw UsageError("every class is forgotten: test accuracy on the retained classes is undefined");
  check_set(model, forget, "forget set");
  check_set(model, retain, "retain set");
  check_set(model, test, "test set");

  const ScoredSet f = score(model, forget, cfg.chunk, "forget set");
  const ScoredSet r = score(model, retain, cfg.chunk, "retain set");
  const ScoredSet t = score(model, test, cfg.chunk, "test set");

  UnlearningMetrics m;
  m.n_forget = forget.size();
  m.n_retain = retain.size();
  m.n_test = test.size();
  m.ua = 1.0 - fraction(f.correct, m.n_forget);
  m.ra = fraction(r.correct, m.n_retain);

  std::vector<int64_t> correct_per_class(static_cast<size_t>(k), 0);
  m.per_class_count.assign(static_cast<size_t>(k), 0);
  for (int64_t i = 0; i < m.n_test; ++i) {
    const size_t label = static_cast<size_t>(t.labels[static_cast<size_t>(i)]);
    ++m.per_class_count[label];
    correct_per_class[label] += t.predictions[static_cast<size_t>(i)] == t.labels[static_cast<size_t>(i)];
  }
  m.per_class_accuracy.assign(static_cast<size_t>(k), 0.0);
  int64_t retained_n = 0, retained_correct = 0, forgotten_n = 0, forgotten_correct = 0;
  for (size_t c = 0; c < static_cast<size_t>(k); ++c) {
    if (m.per_class_count[c]) m.per_class_accuracy[c] = fraction(correct_per_class[c], m.per_class_count[c]);
    (forgotten[c] ? forgotten_n : retained_n) += m.per_class_count[c];
    (forgotten[c] ? forgotten_correct : retained_correct) += correct_per_class[c];
  }
  if (retained_n == 0)
    throw UsageError("the test set ('" + test.name + "') has no sample of a retained class: TA is undefined");
  m.ta = fraction(retained_correct, retained_n);
  if (forgotten_n > 0) m.forgotten_test_acc = fraction(forgotten_correct, forgotten_n);

  // MIA-efficacy as in SalUn / "model sparsity" (Jia et al. 2023): a classifier learns to tell the model's outputs
  // on training members (D_r) from those on unseen samples (the test set) using confidence-based features of the
  // softmax, then judges D_f. Their SVC_MIA uses the same three signals (true-label confidence, entropy and Song &
  // Mittal's modified entropy); one standardised logistic regression over all three replaces their per-feature SVCs,
  // which is deterministic and fast on 60k-image sets. A well-unlearned D_f looks unseen, so MIA is high.
  m.mia = membership_attack(r.features, t.features, f.features, cfg.mia).nonmember_fraction;
  return m;
}

}  // namespace lethe::unlearn
