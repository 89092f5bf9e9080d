#include "attacks/classifiers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "engine/error.h"
#include "engine/json_fields.h"
#include "kernels/philox.h"

namespace lethe::attacks {

namespace {

// ---- input checks ----

// Checks `x` is a non-empty rectangular matrix of finite values with at least one column; returns the column count.
size_t check_matrix(const FeatureMatrix& x, const std::string& what) {
  if (x.empty()) throw InputError(what + ": no rows");
  const size_t dims = x[0].size();
  if (dims == 0) throw InputError(what + ": rows have no features");
  for (size_t r = 0; r < x.size(); ++r) {
    if (x[r].size() != dims)
      throw InputError(what + ": row " + std::to_string(r) + " has " + std::to_string(x[r].size()) +
                       " features, row 0 has " + std::to_string(dims));
    for (size_t c = 0; c < dims; ++c)
      if (!std::isfinite(x[r][c]))
        throw InputError(what + ": value at row " + std::to_string(r) + ", feature " + std::to_string(c) +
                         " is not finite");
  }
  return dims;
}

// Checks labels are 0/1 with both present; returns the number of 1s.
int64_t check_binary_labels(const std::vector<int>& labels, const std::string& what) {
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1)
      throw InputError(what + ": label " + std::to_string(i) + " is " + std::to_string(labels[i]) +
                       "; labels must be 0 or 1");
    positives += labels[i];
  }
  if (positives == 0 || positives == static_cast<int64_t>(labels.size()))
    throw InputError(what + ": the labels must include both 0 and 1 (got only " +
                     std::string(positives == 0 ? "0" : "1") + "s)");
  return positives;
}

// A cut strictly above a and at most b (a < b), so "value >= cut" separates them. std::midpoint cannot overflow; for
// adjacent doubles the midpoint rounds to a or b, and rounding to a would put a on the wrong side, so b is used then.
double cut_between(double a, double b) {
  const double m = std::midpoint(a, b);
  return m > a ? m : b;
}

double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

// ---- k-means ----

// Uniform in [0, 1) with 53 random bits (philox_u01's 24 bits would make weights below ~1e-7 of the total
// undrawable), from the block at (seed, counter_lo = draw, counter_hi = restart).
double uniform53(uint64_t seed, uint64_t draw, uint64_t restart) {
  const kernels::Philox4 r = kernels::philox4x32_10(seed, draw, restart);
  const uint64_t bits = ((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

void check_kmeans_arguments(const FeatureMatrix& points, int k) {
  check_matrix(points, "k-means");
  if (k < 1 || static_cast<size_t>(k) > points.size())
    throw UsageError("k-means: k = " + std::to_string(k) + " must be between 1 and the number of rows (" +
                     std::to_string(points.size()) + ")");
  FeatureMatrix distinct = points;
  std::sort(distinct.begin(), distinct.end());
  const size_t n_distinct = static_cast<size_t>(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  if (n_distinct < static_cast<size_t>(k))
    throw InputError("k-means: only " + std::to_string(n_distinct) + " distinct rows for k = " + std::to_string(k) +
                     " clusters");
}

std::vector<int64_t> seeds_unchecked(const FeatureMatrix& points, int k, uint64_t seed, int restart) {
  const size_t n = points.size();
  std::vector<int64_t> seeds;
  seeds.push_back(std::min(static_cast<int64_t>(uniform53(seed, 0, static_cast<uint64_t>(restart)) *
                                                static_cast<double>(n)),
                           static_cast<int64_t>(n) - 1));
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
  for (int s = 1; s < k; ++s) {
    const std::vector<double>& last = points[static_cast<size_t>(seeds.back())];
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
      nearest[i] = std::min(nearest[i], squared_distance(points[i], last));
      total += nearest[i];
    }
    // total > 0: check_kmeans_arguments guaranteed at least k distinct rows.
    LETHE_CHECK(total > 0, "k-means++ ran out of distinct rows");
    const double target = uniform53(seed, static_cast<uint64_t>(s), static_cast<uint64_t>(restart)) * total;
    // Only rows of positive weight can be drawn; if rounding leaves the running sum short of target, the last such
    // row is taken.
    int64_t pick = -1;
    double running = 0;
    for (size_t i = 0; i < n; ++i) {
      if (nearest[i] <= 0) continue;
      pick = static_cast<int64_t>(i);
      running += nearest[i];
      if (running > target) break;
    }
    seeds.push_back(pick);
  }
  return seeds;
}

// Nearest centroid per row, ties to the lower cluster index.
std::vector<int> assign(const FeatureMatrix& points, const FeatureMatrix& centroids) {
  std::vector<int> out(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    int best = 0;
    double best_d = squared_distance(points[i], centroids[0]);
    for (size_t c = 1; c < centroids.size(); ++c) {
      const double d = squared_distance(points[i], centroids[c]);
      if (d < best_d) best_d = d, best = static_cast<int>(c);
    }
    out[i] = best;
  }
  return out;
}

void mean_of_members(const FeatureMatrix& points, const std::vector<int>& assignment, int cluster,
                     std::vector<double>& centroid) {
  std::fill(centroid.begin(), centroid.end(), 0.0);
  int64_t count = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    if (assignment[i] != cluster) continue;
    ++count;
    for (size_t d = 0; d < centroid.size(); ++d) centroid[d] += points[i][d];
  }
  LETHE_CHECK(count > 0, "mean of an empty cluster");
  for (double& v : centroid) v /= static_cast<double>(count);
}

// Centroids = means of the clusters. An empty cluster takes the row farthest from its own centroid among clusters
// with two or more members (so no other cluster empties), which `assignment` records.
void update_centroids(const FeatureMatrix& points, std::vector<int>& assignment, FeatureMatrix& centroids) {
  const int k = static_cast<int>(centroids.size());
  std::vector<int64_t> counts(static_cast<size_t>(k), 0);
  for (int a : assignment) ++counts[static_cast<size_t>(a)];
  for (int c = 0; c < k; ++c)
    if (counts[static_cast<size_t>(c)] > 0) mean_of_members(points, assignment, c, centroids[static_cast<size_t>(c)]);
  for (int c = 0; c < k; ++c) {
    if (counts[static_cast<size_t>(c)] > 0) continue;
    int64_t far = -1;
    double far_d = -1;
    for (size_t i = 0; i < points.size(); ++i) {
      const int own = assignment[i];
      if (counts[static_cast<size_t>(own)] < 2) continue;
      const double d = squared_distance(points[i], centroids[static_cast<size_t>(own)]);
      if (d > far_d) far_d = d, far = static_cast<int64_t>(i);
    }
    LETHE_CHECK(far >= 0, "no cluster has a row to spare");  // n >= k, so some cluster has two rows
    const int old = assignment[static_cast<size_t>(far)];
    assignment[static_cast<size_t>(far)] = c;
    --counts[static_cast<size_t>(old)];
    counts[static_cast<size_t>(c)] = 1;
    centroids[static_cast<size_t>(c)] = points[static_cast<size_t>(far)];
    mean_of_members(points, assignment, old, centroids[static_cast<size_t>(old)]);
  }
}

KMeansResult lloyd(const FeatureMatrix& points, int k, const std::vector<int64_t>& seeds, int max_iterations) {
  KMeansResult run;
  for (int64_t s : seeds) run.centroids.push_back(points[static_cast<size_t>(s)]);
  run.assignment = assign(points, run.centroids);
  bool converged = false;
  for (int it = 1; it <= max_iterations && !converged; ++it) {
    update_centroids(points, run.assignment, run.centroids);
    run.iterations = it;
    std::vector<int> next = assign(points, run.centroids);
    converged = next == run.assignment;
    run.assignment = std::move(next);
  }
  // Out of iterations: the last assignment's own means, so the centroids are always the clusters' means.
  if (!converged) update_centroids(points, run.assignment, run.centroids);
  LETHE_CHECK(static_cast<int>(run.centroids.size()) == k, "k-means lost a centroid");
  for (size_t i = 0; i < points.size(); ++i)
    run.inertia += squared_distance(points[i], run.centroids[static_cast<size_t>(run.assignment[i])]);
  return run;
}

// Renumbers clusters in the order of their first member.
void canonical_numbering(KMeansResult& r) {
  const size_t k = r.centroids.size();
  std::vector<int> renumber(k, -1);
  int next = 0;
  for (int a : r.assignment)
    if (renumber[static_cast<size_t>(a)] < 0) renumber[static_cast<size_t>(a)] = next++;
  LETHE_CHECK(next == static_cast<int>(k), "k-means left a cluster empty");
  FeatureMatrix centroids(k);
  for (size_t c = 0; c < k; ++c) centroids[static_cast<size_t>(renumber[c])] = std::move(r.centroids[c]);
  r.centroids = std::move(centroids);
  for (int& a : r.assignment) a = renumber[static_cast<size_t>(a)];
}

// ---- strict JSON reading ----

const nlohmann::json& require(const nlohmann::json& obj, const char* key, const std::string& source,
                              const std::string& where) {
  if (!obj.contains(key)) throw InputError(source + ": " + where + " lacks the field '" + key + "'");
  return obj.at(key);
}

double read_number(const nlohmann::json& obj, const char* key, const std::string& source, const std::string& where,
                   double lo, double hi) {
  const nlohmann::json& v = require(obj, key, source, where);
  if (!v.is_number())
    throw InputError(source + ": " + where + " field '" + key + "' must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    throw InputError(source + ": " + where + " field '" + key + "' = " + v.dump() + " is out of range [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

int64_t read_integer(const nlohmann::json& obj, const char* key, const std::string& source, const std::string& where,
                     int64_t lo, int64_t hi) {
  const nlohmann::json& v = require(obj, key, source, where);
  // is_number_integer() also holds for unsigned values, which may exceed int64_t.
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) : v.is_number_integer();
  if (!fits || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    throw InputError(source + ": " + where + " field '" + key + "' must be an integer in [" + std::to_string(lo) +
                     ", " + std::to_string(hi) + "], got " + v.dump());
  return v.get<int64_t>();
}

bool read_bool(const nlohmann::json& obj, const char* key, const std::string& source, const std::string& where) {
  const nlohmann::json& v = require(obj, key, source, where);
  if (!v.is_boolean()) throw InputError(source + ": " + where + " field '" + key + "' must be true or false");
  return v.get<bool>();
}

constexpr const char* kTreeFormat = "lethe.decision_tree";
constexpr int64_t kTreeVersion = 1;

}  // namespace

// ---- k-means ----

std::vector<int64_t> kmeans_plus_plus_seeds(const FeatureMatrix& points, int k, uint64_t seed, int restart) {
  check_kmeans_arguments(points, k);
  if (restart < 0) throw UsageError("k-means++: the restart index must be non-negative");
  return seeds_unchecked(points, k, seed, restart);
}

KMeansResult kmeans(const FeatureMatrix& points, int k, uint64_t seed, int restarts, int max_iterations) {
  check_kmeans_arguments(points, k);
  if (restarts < 1) throw UsageError("k-means: restarts must be at least 1");
  if (max_iterations < 1) throw UsageError("k-means: max_iterations must be at least 1");
  KMeansResult best;
  for (int r = 0; r < restarts; ++r) {
    KMeansResult run = lloyd(points, k, seeds_unchecked(points, k, seed, r), max_iterations);
    if (r == 0 || run.inertia < best.inertia) best = std::move(run);
  }
  canonical_numbering(best);
  return best;
}

// ---- Youden's threshold ----

YoudenThreshold fit_youden(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size())
    throw UsageError("Youden threshold: " + std::to_string(scores.size()) + " scores but " +
                     std::to_string(labels.size()) + " labels");
  if (scores.empty()) throw InputError("Youden threshold: no scores");
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i])) throw InputError("Youden threshold: score " + std::to_string(i) + " is not finite");
  const int64_t p = check_binary_labels(labels, "Youden threshold");
  const int64_t n = static_cast<int64_t>(labels.size()) - p;

  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });

  struct Candidate {
    int64_t j_numerator;  // TP * N - FP * P = J * P * N, exact
    double margin, threshold;
    int64_t tp, fp;
  };
  const auto better = [](const Candidate& a, const Candidate& b) {
    if (a.j_numerator != b.j_numerator) return a.j_numerator > b.j_numerator;
    if (a.margin != b.margin) return a.margin > b.margin;
    return a.threshold < b.threshold;
  };
  const double lowest = scores[order.front()], highest = scores[order.back()];
  Candidate best{0, 0.0, lowest, p, n};  // the smallest score: all positive
  int64_t pos_below = 0, neg_below = 0;  // at or below the current distinct score
  for (size_t i = 0; i < order.size();) {
    const double value = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == value; ++i) (labels[order[i]] ? pos_below : neg_below)++;
    const bool last = i == order.size();
    Candidate c;
    c.tp = p - pos_below;
    c.fp = n - neg_below;
    c.j_numerator = c.tp * n - c.fp * p;
    // Past the largest score: all negative. Never wins (J = 0 and margin 0, like the all-positive cut, which is lower).
    c.threshold = last ? std::nextafter(highest, std::numeric_limits<double>::infinity())
                       : cut_between(value, scores[order[i]]);
    c.margin = last ? 0.0 : scores[order[i]] - value;
    if (better(c, best)) best = c;
  }
  YoudenThreshold out;
  out.threshold = best.threshold;
  out.tpr = static_cast<double>(best.tp) / static_cast<double>(p);
  out.fpr = static_cast<double>(best.fp) / static_cast<double>(n);
  out.j = out.tpr - out.fpr;
  out.positives = p;
  out.negatives = n;
  return out;
}

nlohmann::json YoudenThreshold::to_json() const {
  return {{"threshold", threshold}, {"tpr", tpr},           {"fpr", fpr},
          {"j", j},                 {"positives", positives}, {"negatives", negatives}};
}

YoudenThreshold YoudenThreshold::from_json(const nlohmann::json& j, const std::string& source) {
  const std::string where = "the Youden threshold";
  reject_unknown_keys(j, {"threshold", "tpr", "fpr", "j", "positives", "negatives"}, source, where);
  YoudenThreshold t;
  const double big = std::numeric_limits<double>::max();
  t.threshold = read_number(j, "threshold", source, where, -big, big);
  t.tpr = read_number(j, "tpr", source, where, 0, 1);
  t.fpr = read_number(j, "fpr", source, where, 0, 1);
  t.j = read_number(j, "j", source, where, -1, 1);
  t.positives = read_integer(j, "positives", source, where, 1, std::numeric_limits<int64_t>::max());
  t.negatives = read_integer(j, "negatives", source, where, 1, std::numeric_limits<int64_t>::max());
  if (std::fabs(t.j - (t.tpr - t.fpr)) > 1e-12)
    throw InputError(source + ": " + where + " has j = " + std::to_string(t.j) + ", not tpr - fpr");
  return t;
}

// ---- CART decision tree ----

namespace {

struct TreeBuilder {
  const FeatureMatrix& x;
  const std::vector<int>& y;
  const std::vector<double>& w;
  const TreeConfig& cfg;
  size_t dims;
  std::vector<TreeNode> nodes;

  struct Split {
    int feature = -1;
    double threshold = 0, decrease = 0;
  };

  static double gini(double pos, double total) {
    const double p = pos / total;
    return 2 * p * (1 - p);
  }

  // The best split of `rows` (see DecisionTree's comment for the rule), or feature -1 when none is allowed.
  Split best_split(std::vector<size_t>& rows, double node_pos, double node_weight) const {
    constexpr double kTie = 1e-12;
    const double node_gini = gini(node_pos, node_weight);
    const int64_t n = static_cast<int64_t>(rows.size());
    Split best;
    for (size_t f = 0; f < dims; ++f) {
      std::sort(rows.begin(), rows.end(), [&](size_t a, size_t b) {
        return x[a][f] != x[b][f] ? x[a][f] < x[b][f] : a < b;
      });
      double left_pos = 0, left_weight = 0;
      for (int64_t i = 0; i + 1 < n; ++i) {
        const size_t r = rows[static_cast<size_t>(i)];
        left_weight += w[r];
        if (y[r]) left_pos += w[r];
        const double here = x[r][f], next = x[rows[static_cast<size_t>(i + 1)]][f];
        if (here == next || i + 1 < cfg.min_leaf || n - (i + 1) < cfg.min_leaf) continue;
        const double right_weight = node_weight - left_weight, right_pos = node_pos - left_pos;
        const double decrease = node_gini - (left_weight / node_weight) * gini(left_pos, left_weight) -
                                (right_weight / node_weight) * gini(right_pos, right_weight);
        if (best.feature < 0 || decrease > best.decrease + kTie)
          best = Split{static_cast<int>(f), cut_between(here, next), decrease};
      }
    }
    return best;
  }

  // Appends the subtree of `rows` in pre-order; returns its root's index.
  int build(std::vector<size_t> rows, int depth) {
    TreeNode node;
    double pos = 0;
    int64_t pos_count = 0;
    for (size_t r : rows) {
      node.weight += w[r];
      if (y[r]) pos += w[r], ++pos_count;
    }
    node.samples = static_cast<int64_t>(rows.size());
    node.probability = pos / node.weight;
    node.impurity = gini(pos, node.weight);
    const int index = static_cast<int>(nodes.size());
    nodes.push_back(node);
    const bool pure = pos_count == 0 || pos_count == node.samples;
    if (pure || depth >= cfg.max_depth || node.samples / 2 < cfg.min_leaf) return index;
    const Split split = best_split(rows, pos, node.weight);
    if (split.feature < 0) return index;
    std::vector<size_t> left, right;
    for (size_t r : rows) (x[r][static_cast<size_t>(split.feature)] < split.threshold ? left : right).push_back(r);
    const int l = build(std::move(left), depth + 1);
    const int rr = build(std::move(right), depth + 1);
    TreeNode& self = nodes[static_cast<size_t>(index)];
    self.feature = split.feature;
    self.threshold = split.threshold;
    self.left = l;
    self.right = rr;
    return index;
  }
};

// Depth of every node, from the parent links (children have larger indices, so one forward pass suffices).
std::vector<int> node_depths(const std::vector<TreeNode>& nodes) {
  std::vector<int> depth(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!nodes[i].is_leaf())
      depth[static_cast<size_t>(nodes[i].left)] = depth[static_cast<size_t>(nodes[i].right)] = depth[i] + 1;
  return depth;
}

void check_tree_config(const TreeConfig& cfg, const std::string& what) {
  if (cfg.max_depth < 0) throw UsageError(what + ": max_depth must be non-negative");
  if (cfg.min_leaf < 1) throw UsageError(what + ": min_leaf must be at least 1");
}

}  // namespace

void DecisionTree::fit(const FeatureMatrix& x, const std::vector<int>& y, const TreeConfig& cfg,
                       const std::vector<double>& sample_weights) {
  const std::string what = "decision tree";
  check_tree_config(cfg, what);
  const size_t dims = check_matrix(x, what);
  if (y.size() != x.size())
    throw UsageError(what + ": " + std::to_string(x.size()) + " rows but " + std::to_string(y.size()) + " labels");
  if (!sample_weights.empty() && sample_weights.size() != x.size())
    throw UsageError(what + ": " + std::to_string(x.size()) + " rows but " + std::to_string(sample_weights.size()) +
                     " sample weights");
  check_binary_labels(y, what);
  std::vector<double> w = sample_weights.empty() ? std::vector<double>(x.size(), 1.0) : sample_weights;
  for (size_t i = 0; i < w.size(); ++i)
    if (!std::isfinite(w[i]) || w[i] <= 0)
      throw InputError(what + ": sample weight " + std::to_string(i) + " must be positive and finite");
  if (cfg.balance_classes) {
    double class_weight[2] = {0, 0};
    for (size_t i = 0; i < w.size(); ++i) class_weight[y[i]] += w[i];
    const double half = (class_weight[0] + class_weight[1]) / 2;
    for (size_t i = 0; i < w.size(); ++i) w[i] *= half / class_weight[y[i]];
  }
  TreeBuilder builder{x, y, w, cfg, dims, {}};
  std::vector<size_t> rows(x.size());
  std::iota(rows.begin(), rows.end(), size_t{0});
  builder.build(std::move(rows), 0);
  config_ = cfg;
  features_ = static_cast<int64_t>(dims);
  nodes_ = std::move(builder.nodes);
}

double DecisionTree::predict_proba(const std::vector<double>& row) const {
  if (!fitted()) throw UsageError("decision tree: predict before fit");
  if (static_cast<int64_t>(row.size()) != features_)
    throw UsageError("decision tree: a row of " + std::to_string(row.size()) + " features for a tree of " +
                     std::to_string(features_));
  for (size_t c = 0; c < row.size(); ++c)
    if (!std::isfinite(row[c]))
      throw InputError("decision tree: feature " + std::to_string(c) + " of the row is not finite");
  size_t at = 0;
  while (!nodes_[at].is_leaf()) {
    const TreeNode& n = nodes_[at];
    at = static_cast<size_t>(row[static_cast<size_t>(n.feature)] < n.threshold ? n.left : n.right);
  }
  return nodes_[at].probability;
}

int DecisionTree::depth() const {
  const std::vector<int> d = node_depths(nodes_);
  return d.empty() ? 0 : *std::max_element(d.begin(), d.end());
}

int64_t DecisionTree::leaves() const {
  return std::count_if(nodes_.begin(), nodes_.end(), [](const TreeNode& n) { return n.is_leaf(); });
}

nlohmann::json DecisionTree::to_json() const {
  if (!fitted()) throw UsageError("decision tree: to_json before fit");
  nlohmann::json nodes = nlohmann::json::array();
  for (const TreeNode& n : nodes_) {
    nlohmann::json node = {{"probability", n.probability},
                           {"weight", n.weight},
                           {"samples", n.samples},
                           {"impurity", n.impurity}};
    if (!n.is_leaf()) {
      node["feature"] = n.feature;
      node["threshold"] = n.threshold;
      node["left"] = n.left;
      node["right"] = n.right;
    }
    nodes.push_back(std::move(node));
  }
  return {{"format", kTreeFormat},
          {"version", kTreeVersion},
          {"features", features_},
          {"config",
           {{"max_depth", config_.max_depth},
            {"min_leaf", config_.min_leaf},
            {"balance_classes", config_.balance_classes}}},
          {"nodes", std::move(nodes)}};
}

DecisionTree DecisionTree::from_json(const nlohmann::json& j, const std::string& source) {
  const std::string where = "the decision tree";
  reject_unknown_keys(j, {"format", "version", "features", "config", "nodes"}, source, where);
  const nlohmann::json& format = require(j, "format", source, where);
  if (!format.is_string() || format.get<std::string>() != kTreeFormat)
    throw InputError(source + ": " + where + " has format " + format.dump() + ", expected \"" + kTreeFormat + "\"");
  read_integer(j, "version", source, where, kTreeVersion, kTreeVersion);
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  DecisionTree tree;
  tree.features_ = read_integer(j, "features", source, where, 1, kIntMax);

  const nlohmann::json& cfg = require(j, "config", source, where);
  const std::string cfg_where = where + "'s config";
  reject_unknown_keys(cfg, {"max_depth", "min_leaf", "balance_classes"}, source, cfg_where);
  tree.config_.max_depth = static_cast<int>(read_integer(cfg, "max_depth", source, cfg_where, 0, kIntMax));
  tree.config_.min_leaf = read_integer(cfg, "min_leaf", source, cfg_where, 1, std::numeric_limits<int64_t>::max());
  tree.config_.balance_classes = read_bool(cfg, "balance_classes", source, cfg_where);

  const nlohmann::json& nodes = require(j, "nodes", source, where);
  if (!nodes.is_array() || nodes.empty())
    throw InputError(source + ": " + where + "'s nodes must be a non-empty array");
  if (nodes.size() > static_cast<size_t>(kIntMax)) throw InputError(source + ": " + where + " has too many nodes");
  const int64_t count = static_cast<int64_t>(nodes.size());
  const double big = std::numeric_limits<double>::max();
  std::vector<int> parents(nodes.size(), 0);
  for (int64_t i = 0; i < count; ++i) {
    const nlohmann::json& nj = nodes[static_cast<size_t>(i)];
    const std::string nw = where + "'s node " + std::to_string(i);
    reject_unknown_keys(nj, {"probability", "weight", "samples", "impurity", "feature", "threshold", "left", "right"},
                        source, nw);
    TreeNode n;
    n.probability = read_number(nj, "probability", source, nw, 0, 1);
    n.weight = read_number(nj, "weight", source, nw, std::numeric_limits<double>::min(), big);
    n.samples = read_integer(nj, "samples", source, nw, 1, std::numeric_limits<int64_t>::max());
    n.impurity = read_number(nj, "impurity", source, nw, 0, 0.5);
    const int split_keys = static_cast<int>(nj.contains("feature")) + nj.contains("threshold") + nj.contains("left") +
                           nj.contains("right");
    if (split_keys != 0 && split_keys != 4)
      throw InputError(source + ": " + nw + " must have all of feature, threshold, left and right, or none");
    if (split_keys == 4) {
      n.feature = static_cast<int>(read_integer(nj, "feature", source, nw, 0, tree.features_ - 1));
      n.threshold = read_number(nj, "threshold", source, nw, -big, big);
      // Children after their parent rule out cycles; with one parent each (checked below) the nodes form a tree.
      n.left = static_cast<int>(read_integer(nj, "left", source, nw, i + 1, count - 1));
      n.right = static_cast<int>(read_integer(nj, "right", source, nw, i + 1, count - 1));
      if (n.left == n.right) throw InputError(source + ": " + nw + " has the same node as both children");
      ++parents[static_cast<size_t>(n.left)];
      ++parents[static_cast<size_t>(n.right)];
    }
    tree.nodes_.push_back(n);
  }
  for (int64_t i = 1; i < count; ++i)
    if (parents[static_cast<size_t>(i)] != 1)
      throw InputError(source + ": " + where + "'s node " + std::to_string(i) + " has " +
                       std::to_string(parents[static_cast<size_t>(i)]) + " parents, not 1");
  for (const TreeNode& n : tree.nodes_)
    if (!n.is_leaf()) {
      const TreeNode &l = tree.nodes_[static_cast<size_t>(n.left)], &r = tree.nodes_[static_cast<size_t>(n.right)];
      if (l.samples > n.samples || r.samples > n.samples - l.samples || l.samples + r.samples != n.samples)
        throw InputError(source + ": " + where + " has a split whose children's sample counts do not add up");
    } else if (n.samples < tree.config_.min_leaf) {
      throw InputError(source + ": " + where + " has a leaf with fewer samples than min_leaf");
    }
  if (tree.depth() > tree.config_.max_depth)
    throw InputError(source + ": " + where + " is deeper (" + std::to_string(tree.depth()) + ") than its max_depth");
  return tree;
}

}  // namespace lethe::attacks
