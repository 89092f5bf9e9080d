#pragma once
// The three small classifiers of the parameter-based label-leakage attack: k-means (grouping classes by their
// parameter features), Youden's threshold (one score, one cut) and a CART tree (several features, learned cuts).
// Each is a pure function of its inputs (and seed), single-threaded, in double, so an audit can be reproduced exactly;
// a fitted threshold or tree round-trips through JSON so it can be cached and reloaded.
//
// Errors: a bad argument (k out of range, a size mismatch between rows and labels, a bad configuration) is a
// UsageError; bad data (no rows, ragged rows, a NaN or infinite value, a label other than 0/1, a single class, fewer
// distinct points than clusters) is an InputError; a malformed JSON document is an InputError naming `source`.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::attacks {

using FeatureMatrix = std::vector<std::vector<double>>;  // rows = samples (classes), columns = features

// ---- k-means ----

// k-means (Lloyd) with k-means++ seeding. Seed i of restart r is drawn from the Philox block at key `seed`, counter
// (lo i, hi r), so the result is a pure function of (points, k, seed, restarts, max_iterations). Of the `restarts`
// runs the one with the lowest inertia is kept (the earliest on equal inertia). Ties in assignment go to the lower
// cluster index. Clusters are numbered in the order of their first member, so row 0 is always in cluster 0 and the
// numbering does not depend on which restart won. A run stops when the assignment no longer changes or after
// max_iterations update steps; a cluster left empty by an update takes the row farthest from its own centroid among
// clusters of two or more rows (the lowest row index on ties).
// Throws InputError when the points have fewer than k distinct rows (some cluster would have to be empty).
struct KMeansResult {
  std::vector<int> assignment;                 // per row, in [0, k)
  std::vector<std::vector<double>> centroids;  // k rows: the means of their clusters' members
  double inertia = 0;                          // sum over rows of the squared distance to the row's centroid
  int iterations = 0;                          // update steps of the kept run
};
KMeansResult kmeans(const FeatureMatrix& points, int k, uint64_t seed, int restarts = 8, int max_iterations = 100);

// The k-means++ seeds of one restart, as row indices in the order drawn: the first uniformly, each next one with
// probability proportional to its squared distance to the nearest seed so far. Rows equal to a seed have weight 0,
// so the seeds are always k distinct points. Exposed for tests; kmeans() uses it.
std::vector<int64_t> kmeans_plus_plus_seeds(const FeatureMatrix& points, int k, uint64_t seed, int restart);

// ---- Youden's threshold ----

// The threshold on a score maximising J = TPR - FPR, where a sample is predicted positive when score >= threshold.
// Candidates: the midpoint between each pair of consecutive distinct scores (rounded up to the upper score when the
// two are adjacent doubles, so the cut always separates them), plus the two trivial cuts: the smallest score (all
// positive) and just above the largest (all negative), both J = 0.
// Tie rule, exact because J is compared as the integer TP * N - FP * P: among equal J prefer the larger margin (the
// gap between the two scores the cut separates; the trivial cuts count as margin 0), then the lower threshold. So a
// trivial cut wins only when no split beats J = 0 with a positive margin, and then it is "all positive".
struct YoudenThreshold {
  double threshold = 0, tpr = 0, fpr = 0, j = 0;
  int64_t positives = 0, negatives = 0;  // P and N of the fitting set

  bool predict(double score) const { return score >= threshold; }
  nlohmann::json to_json() const;
  static YoudenThreshold from_json(const nlohmann::json& j, const std::string& source);
};
// labels: 0 or 1 per score; both must occur.
YoudenThreshold fit_youden(const std::vector<double>& scores, const std::vector<int>& labels);

// ---- CART decision tree ----

struct TreeConfig {
  int max_depth = 4;            // the root is depth 0; 0 gives a single leaf
  int64_t min_leaf = 2;         // fewest training rows in any leaf
  bool balance_classes = true;  // reweight so each class carries half the total weight (1 positive vs 9 negatives
                                // per shadow run would otherwise make "always negative" look good)
};

// One node of a fitted tree, stored flat in pre-order: children always have larger indices than their parent.
struct TreeNode {
  int feature = -1;            // split feature; -1 marks a leaf
  double threshold = 0;        // rows with x[feature] < threshold go left, the rest right
  int left = -1, right = -1;   // child indices (splits only)
  double probability = 0;      // weighted fraction of label 1 among the training rows reaching the node
  double weight = 0;           // their total weight
  int64_t samples = 0;         // their count
  double impurity = 0;         // weighted Gini impurity 2 p (1 - p), p = probability

  bool is_leaf() const { return feature < 0; }
};

// A CART classification tree for binary labels. A node is split when it is impure, shallower than max_depth, and some
// split leaves at least min_leaf rows on each side; the split chosen maximises the weighted Gini decrease
//   G(node) - (W_left / W) G(left) - (W_right / W) G(right),
// even when the best decrease is 0 (XOR-like data has no single useful cut, yet two levels separate it). Thresholds
// are midpoints between consecutive distinct values (as in fit_youden). Ties go to the lower feature index, then the
// lower threshold; decreases within 1e-12 of each other count as tied, so rounding in the sums cannot break a tie.
class DecisionTree {
 public:
  // sample_weights: empty (all 1) or one positive finite weight per row. With balance_classes the weights of each
  // class are scaled so each class's total is half the overall total.
  void fit(const FeatureMatrix& x, const std::vector<int>& y, const TreeConfig& cfg,
           const std::vector<double>& sample_weights = {});
  double predict_proba(const std::vector<double>& row) const;  // P(label 1) at the leaf (weighted fraction)
  int predict(const std::vector<double>& row) const { return predict_proba(row) >= 0.5; }

  bool fitted() const { return !nodes_.empty(); }
  int depth() const;        // of the deepest leaf; 0 for a single leaf
  int64_t leaves() const;
  int64_t features() const { return features_; }
  const TreeConfig& config() const { return config_; }
  const std::vector<TreeNode>& nodes() const { return nodes_; }  // nodes()[0] is the root

  // The whole tree; from_json checks it is a tree (every non-root node has exactly one parent, with a smaller index),
  // with finite thresholds, probabilities in [0, 1] and features in range.
  nlohmann::json to_json() const;
  static DecisionTree from_json(const nlohmann::json& j, const std::string& source);

 private:
  TreeConfig config_;
  int64_t features_ = 0;
  std::vector<TreeNode> nodes_;
};

}  // namespace lethe::attacks
