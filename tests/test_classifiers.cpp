// The label-leakage attack's classifiers (attacks/classifiers.h): k-means, Youden's threshold and the CART tree on
// hand-worked cases whose answers are derived in the comments, their invariants on random data, their tie rules, and
// bad inputs and malformed JSON.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>

#include "attacks/classifiers.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

FeatureMatrix column(const std::vector<double>& values) {
  FeatureMatrix x;
  for (double v : values) x.push_back({v});
  return x;
}

FeatureMatrix random_points(int64_t n, int64_t dims, uint64_t seed) {
  test::Rng rng(seed);
  FeatureMatrix x(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(dims)));
  for (auto& row : x)
    for (double& v : row) v = rng.uniform01() * 4 - 2;
  return x;
}

double squared(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

// The tree of the hand-worked Gini example below.
//   row  x0 x1  y
//    0    1  5  0
//    1    2  1  0
//    2    3  4  1
//    3    4  2  1
//    4    5  6  1
//    5    6  3  0
const FeatureMatrix kGiniX = {{1, 5}, {2, 1}, {3, 4}, {4, 2}, {5, 6}, {6, 3}};
const std::vector<int> kGiniY = {0, 0, 1, 1, 1, 0};

TreeConfig unbalanced(int max_depth, int64_t min_leaf) {
  TreeConfig cfg;
  cfg.max_depth = max_depth;
  cfg.min_leaf = min_leaf;
  cfg.balance_classes = false;
  return cfg;
}

// The Gini decrease of split node `i`, recomputed from the stored node statistics.
double decrease_at(const DecisionTree& tree, int i) {
  const auto& n = tree.nodes()[static_cast<size_t>(i)];
  const auto& l = tree.nodes()[static_cast<size_t>(n.left)];
  const auto& r = tree.nodes()[static_cast<size_t>(n.right)];
  return n.impurity - l.weight / n.weight * l.impurity - r.weight / n.weight * r.impurity;
}

}  // namespace

// ---- k-means ----

TEST_CASE("classifiers: k-means finds the obvious two clusters in 1-D") {
  // {0, 1, 2} and {10, 11, 12}: means 1 and 11, inertia (1 + 0 + 1) * 2 = 4. The rows are interleaved so the
  // numbering rule shows: row 0 (value 10) is in cluster 0, so cluster 0 is the high one.
  const FeatureMatrix x = column({10, 0, 11, 1, 12, 2});
  const KMeansResult r = kmeans(x, 2, 7);
  CHECK(r.assignment == std::vector<int>{0, 1, 0, 1, 0, 1});
  REQUIRE(r.centroids.size() == 2);
  CHECK(r.centroids[0] == std::vector<double>{11});
  CHECK(r.centroids[1] == std::vector<double>{1});
  CHECK(r.inertia == 4.0);
  CHECK(r.iterations >= 1);
}

TEST_CASE("classifiers: k-means finds the obvious two clusters in 2-D") {
  // Two squares of side 2: corners of [0,2]^2 (mean (1,1)) and of [10,12]^2 (mean (11,11)). Every corner is at
  // squared distance 1 + 1 = 2 from its square's centre, so inertia = 8 * 2 = 16.
  const FeatureMatrix x = {{0, 0}, {10, 10}, {0, 2}, {12, 12}, {2, 0}, {10, 12}, {2, 2}, {12, 10}};
  for (uint64_t seed : {0u, 1u, 99u}) {
    const KMeansResult r = kmeans(x, 2, seed);
    CHECK(r.assignment == std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1});
    CHECK(r.centroids == FeatureMatrix{{1, 1}, {11, 11}});
    CHECK(r.inertia == 16.0);
  }
}

TEST_CASE("classifiers: k-means with k = 1 gives the mean") {
  // Mean of (1,2), (3,6), (5,1) = (3,3); inertia = (4+1) + (0+9) + (4+4) = 22. The first update already gives the
  // mean and the assignment cannot change, so one iteration.
  const KMeansResult r = kmeans({{1, 2}, {3, 6}, {5, 1}}, 1, 3);
  CHECK(r.assignment == std::vector<int>{0, 0, 0});
  CHECK(r.centroids == FeatureMatrix{{3, 3}});
  CHECK(r.inertia == 22.0);
  CHECK(r.iterations == 1);
}

TEST_CASE("classifiers: k-means is deterministic in its seed") {
  const FeatureMatrix x = random_points(40, 3, 11);
  const KMeansResult a = kmeans(x, 4, 5), b = kmeans(x, 4, 5);
  CHECK(a.assignment == b.assignment);
  CHECK(a.centroids == b.centroids);
  CHECK(a.inertia == b.inertia);
  CHECK(a.iterations == b.iterations);
  CHECK(kmeans_plus_plus_seeds(x, 4, 5, 2) == kmeans_plus_plus_seeds(x, 4, 5, 2));
  // The seed is used: over 20 seeds the first pick is not always the same row.
  std::set<int64_t> first;
  for (uint64_t s = 0; s < 20; ++s) first.insert(kmeans_plus_plus_seeds(x, 4, s, 0)[0]);
  CHECK(first.size() > 1);
}

TEST_CASE("classifiers: k-means results are consistent on random data") {
  // Whatever the seed: every cluster used and numbered by first member, centroids the means of their members,
  // inertia the sum of squared distances, and (converged) every row at a nearest centroid. More restarts never
  // give a worse inertia, since restart r draws the same seeds whatever the count.
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const FeatureMatrix x = random_points(30, 2, 100 + seed);
    const int k = 4;
    const KMeansResult r = kmeans(x, k, seed, 4);
    REQUIRE(r.assignment.size() == x.size());
    REQUIRE(r.centroids.size() == static_cast<size_t>(k));
    int next_new = 0;
    for (int a : r.assignment) {
      REQUIRE((a >= 0 && a < k));
      CHECK(a <= next_new);
      if (a == next_new) ++next_new;
    }
    CHECK(next_new == k);
    double inertia = 0;
    for (int c = 0; c < k; ++c) {
      std::vector<double> mean(2, 0.0);
      int count = 0;
      for (size_t i = 0; i < x.size(); ++i)
        if (r.assignment[i] == c) ++count, mean[0] += x[i][0], mean[1] += x[i][1];
      CHECK(r.centroids[static_cast<size_t>(c)][0] == doctest::Approx(mean[0] / count).epsilon(1e-12));
      CHECK(r.centroids[static_cast<size_t>(c)][1] == doctest::Approx(mean[1] / count).epsilon(1e-12));
    }
    for (size_t i = 0; i < x.size(); ++i) {
      const double own = squared(x[i], r.centroids[static_cast<size_t>(r.assignment[i])]);
      inertia += own;
      if (r.iterations < 100)
        for (const auto& c : r.centroids) CHECK(own <= squared(x[i], c));
    }
    CHECK(r.inertia == doctest::Approx(inertia).epsilon(1e-12));
    CHECK(kmeans(x, k, seed, 8).inertia <= r.inertia);
    // Stopped after one update, unconverged: the centroids are still the means of the returned clusters.
    const KMeansResult once = kmeans(x, k, seed, 1, 1);
    CHECK(once.iterations == 1);
    for (int c = 0; c < k; ++c) {
      double sum = 0;
      int count = 0;
      for (size_t i = 0; i < x.size(); ++i)
        if (once.assignment[i] == c) ++count, sum += x[i][0];
      REQUIRE(count > 0);
      CHECK(once.centroids[static_cast<size_t>(c)][0] == doctest::Approx(sum / count).epsilon(1e-12));
    }
  }
}

TEST_CASE("classifiers: k-means++ seeds are distinct points") {
  // Five distinct points and k = 5: the seeds are a permutation of all rows, for any seed.
  const FeatureMatrix five = column({0, 1, 3, 7, 15});
  for (uint64_t s = 0; s < 30; ++s) {
    const std::vector<int64_t> seeds = kmeans_plus_plus_seeds(five, 5, s, static_cast<int>(s % 3));
    CHECK(std::set<int64_t>(seeds.begin(), seeds.end()) == std::set<int64_t>{0, 1, 2, 3, 4});
  }
  // With duplicates, rows equal to a chosen seed have weight 0, so the two seeds are one 0 and one 5.
  const FeatureMatrix dup = column({0, 0, 0, 5, 5});
  for (uint64_t s = 0; s < 30; ++s) {
    const std::vector<int64_t> seeds = kmeans_plus_plus_seeds(dup, 2, s, 0);
    REQUIRE(seeds.size() == 2);
    CHECK(dup[static_cast<size_t>(seeds[0])] != dup[static_cast<size_t>(seeds[1])]);
  }
}

TEST_CASE("classifiers: k-means on duplicate points") {
  // {0, 0, 0} and {5, 5}: both clusters are exact, inertia 0.
  const KMeansResult r = kmeans(column({0, 0, 5, 0, 5}), 2, 1);
  CHECK(r.assignment == std::vector<int>{0, 0, 1, 0, 1});
  CHECK(r.centroids == FeatureMatrix{{0}, {5}});
  CHECK(r.inertia == 0.0);
  // k = rows with all rows distinct: every row its own cluster.
  const KMeansResult each = kmeans(column({4, 2, 9}), 3, 1);
  CHECK(each.assignment == std::vector<int>{0, 1, 2});
  CHECK(each.centroids == FeatureMatrix{{4}, {2}, {9}});
  CHECK(each.inertia == 0.0);
  // Only two distinct rows cannot make three clusters.
  CHECK_THROWS_AS(kmeans(column({0, 0, 5, 0, 5}), 3, 1), InputError);
}

TEST_CASE("classifiers: k-means rejects bad input") {
  const FeatureMatrix ok = column({1, 2, 3});
  CHECK_THROWS_AS(kmeans({}, 1, 0), InputError);
  CHECK_THROWS_AS(kmeans(FeatureMatrix(2), 1, 0), InputError);
  CHECK_THROWS_AS(kmeans({{1, 2}, {3}}, 1, 0), InputError);
  CHECK_THROWS_AS(kmeans({{1, 2}, {3, kNaN}}, 1, 0), InputError);
  CHECK_THROWS_AS(kmeans({{1, 2}, {kInf, 3}}, 1, 0), InputError);
  CHECK_THROWS_AS(kmeans(ok, 0, 0), UsageError);
  CHECK_THROWS_AS(kmeans(ok, -1, 0), UsageError);
  CHECK_THROWS_AS(kmeans(ok, 4, 0), UsageError);
  CHECK_THROWS_AS(kmeans(ok, 2, 0, 0), UsageError);
  CHECK_THROWS_AS(kmeans(ok, 2, 0, 1, 0), UsageError);
  CHECK_THROWS_AS(kmeans_plus_plus_seeds(ok, 2, 0, -1), UsageError);
  CHECK_THROWS_AS(kmeans_plus_plus_seeds({{kNaN}}, 1, 0, 0), InputError);
}

// ---- Youden's threshold ----

TEST_CASE("classifiers: Youden on a hand-worked ROC") {
  // Sorted: 0.25 n, 0.5 n, 1 p, 1.5 p, 2 n, 3 p (P = N = 3). Positive means score >= t.
  //   t = 0.25  (all positive)  TP 3 FP 3  J = 0
  //   t = 0.375                 TP 3 FP 2  J = 1/3
  //   t = 0.75                  TP 3 FP 1  J = 2/3   <- the unique maximum
  //   t = 1.25                  TP 2 FP 1  J = 1/3
  //   t = 1.75                  TP 1 FP 1  J = 0
  //   t = 2.5                   TP 1 FP 0  J = 1/3
  //   above 3 (all negative)    TP 0 FP 0  J = 0
  const YoudenThreshold t = fit_youden({2.0, 0.25, 3.0, 1.0, 0.5, 1.5}, {0, 0, 1, 1, 0, 1});
  CHECK(t.threshold == 0.75);
  CHECK(t.tpr == 1.0);
  CHECK(t.fpr == 1.0 / 3.0);
  CHECK(t.j == 1.0 - 1.0 / 3.0);
  CHECK(t.positives == 3);
  CHECK(t.negatives == 3);
  CHECK(t.predict(1.0));
  CHECK_FALSE(t.predict(0.5));
}

TEST_CASE("classifiers: Youden on separable scores") {
  // Negatives {1, 2, 3}, positives {5, 6}: the cut at 4 gives TPR 1, FPR 0, J = 1.
  const YoudenThreshold t = fit_youden({5, 1, 3, 6, 2}, {1, 0, 0, 1, 0});
  CHECK(t.threshold == 4.0);
  CHECK(t.tpr == 1.0);
  CHECK(t.fpr == 0.0);
  CHECK(t.j == 1.0);
  // Reversed (positives low): every split has J < 0 (1.5: 1/2 - 1, 3.5: 0 - 1, 5.5: 0 - 1/2), so the best is the
  // trivial cut at the smallest score, all positive, J = 0. The direction is never flipped.
  const YoudenThreshold r = fit_youden({1, 2, 5, 6}, {1, 1, 0, 0});
  CHECK(r.threshold == 1.0);
  CHECK(r.tpr == 1.0);
  CHECK(r.fpr == 1.0);
  CHECK(r.j == 0.0);
  // Adjacent doubles: their midpoint rounds to one of them; the cut must still separate them.
  const double a = 1.0, b = std::nextafter(1.0, 2.0);
  const YoudenThreshold adj = fit_youden({a, b}, {0, 1});
  CHECK(adj.j == 1.0);
  CHECK_FALSE(adj.predict(a));
  CHECK(adj.predict(b));
}

TEST_CASE("classifiers: Youden tie rules") {
  // Sorted 1 n, 2 p, 3 n, 5 p, 6 p, 8 n (P = N = 3): J = 1/3 at t = 1.5 (TP 3 FP 2, margin 1) and at t = 4
  // (TP 2 FP 1, margin 2); every other cut has J <= 0. The larger margin wins: t = 4.
  const YoudenThreshold m = fit_youden({1, 2, 3, 5, 6, 8}, {0, 1, 0, 1, 1, 0});
  CHECK(m.threshold == 4.0);
  CHECK(m.tpr == 2.0 / 3.0);
  CHECK(m.fpr == 1.0 / 3.0);
  // Sorted 1 n, 2 n, 3 p, 4 n, 5 p, 6 p: J = 2/3 at t = 2.5 (TP 3 FP 1) and t = 4.5 (TP 2 FP 0), both margin 1. The
  // lower threshold wins: t = 2.5.
  const YoudenThreshold low = fit_youden({1, 2, 3, 4, 5, 6}, {0, 0, 1, 0, 1, 1});
  CHECK(low.threshold == 2.5);
  CHECK(low.tpr == 1.0);
  CHECK(low.fpr == 1.0 / 3.0);
  // Tied scores are never split: 1 {n, p}, 2 {p, n}, 3 p (P = 3, N = 2). t = 1.5: TP 2 FP 1, J = 2/3 - 1/2 = 1/6;
  // t = 2.5: TP 1 FP 0, J = 1/3, the best.
  const YoudenThreshold tied = fit_youden({1, 1, 2, 2, 3}, {0, 1, 1, 0, 1});
  CHECK(tied.threshold == 2.5);
  CHECK(tied.tpr == 1.0 / 3.0);
  CHECK(tied.fpr == 0.0);
  CHECK(tied.j == 1.0 / 3.0);
  // One distinct score: only the trivial cuts, J = 0, and the all-positive one (the lower) wins.
  const YoudenThreshold flat = fit_youden({2, 2, 2}, {0, 1, 1});
  CHECK(flat.threshold == 2.0);
  CHECK(flat.tpr == 1.0);
  CHECK(flat.fpr == 1.0);
}

TEST_CASE("classifiers: Youden rejects bad input") {
  CHECK_THROWS_AS(fit_youden({1, 2}, {0}), UsageError);
  CHECK_THROWS_AS(fit_youden({}, {}), InputError);
  CHECK_THROWS_AS(fit_youden({1, kNaN}, {0, 1}), InputError);
  CHECK_THROWS_AS(fit_youden({-kInf, 1}, {0, 1}), InputError);
  CHECK_THROWS_AS(fit_youden({1, 2}, {0, 2}), InputError);
  CHECK_THROWS_AS(fit_youden({1, 2}, {-1, 1}), InputError);
  CHECK_THROWS_AS(fit_youden({1, 2}, {1, 1}), InputError);
  CHECK_THROWS_AS(fit_youden({1, 2}, {0, 0}), InputError);
}

TEST_CASE("classifiers: Youden JSON round-trips and rejects malformed documents") {
  const YoudenThreshold t = fit_youden({2.0, 0.25, 3.0, 1.0, 0.5, 1.5}, {0, 0, 1, 1, 0, 1});
  const nlohmann::json j = nlohmann::json::parse(t.to_json().dump());
  const YoudenThreshold back = YoudenThreshold::from_json(j, "t.json");
  CHECK(back.threshold == t.threshold);
  CHECK(back.tpr == t.tpr);
  CHECK(back.fpr == t.fpr);
  CHECK(back.j == t.j);
  CHECK(back.positives == t.positives);
  CHECK(back.negatives == t.negatives);

  const auto rejects = [&](const char* what, auto mutate) {
    nlohmann::json bad = j;
    mutate(bad);
    INFO(what);
    CHECK_THROWS_AS(YoudenThreshold::from_json(bad, "t.json"), InputError);
  };
  rejects("not an object", [](nlohmann::json& b) { b = nlohmann::json::array({1, 2}); });
  rejects("missing field", [](nlohmann::json& b) { b.erase("tpr"); });
  rejects("unknown field", [](nlohmann::json& b) { b["extra"] = 1; });
  rejects("string number", [](nlohmann::json& b) { b["threshold"] = "0.75"; });
  rejects("boolean number", [](nlohmann::json& b) { b["fpr"] = true; });
  rejects("null", [](nlohmann::json& b) { b["threshold"] = nullptr; });
  rejects("NaN", [](nlohmann::json& b) { b["threshold"] = kNaN; });
  rejects("tpr above 1", [](nlohmann::json& b) { b["tpr"] = 1.5; });
  rejects("j not tpr - fpr", [](nlohmann::json& b) { b["j"] = 0.5; });
  rejects("zero positives", [](nlohmann::json& b) { b["positives"] = 0; });
  rejects("fractional count", [](nlohmann::json& b) { b["negatives"] = 2.5; });
  rejects("huge count", [](nlohmann::json& b) { b["negatives"] = 18446744073709551615ull; });
}

// ---- CART tree ----

TEST_CASE("classifiers: tree picks the hand-worked best Gini split") {
  // Root: 3 positives of 6, G = 2 (1/2)(1/2) = 1/2. Decrease G - (nL/n) GL - (nR/n) GR of each cut:
  //   x0 (sorted labels n n p p p n):  1.5: 1/2 - 5/6 * 12/25 = 1/10   2.5: 1/2 - 4/6 * 3/8 = 1/4
  //                                    3.5: 1/2 - 4/9 = 1/18           4.5: 0      5.5: 1/10
  //   x1 (sorted labels n p n p n p):  1.5: 1/10   2.5: 0   3.5: 1/18   4.5: 0   5.5: 1/10
  // Best: x0 < 2.5, decrease 1/4. Left: rows 0, 1 (pure negative); right: rows 2..5, P(1) = 3/4, G = 3/8.
  DecisionTree tree;
  tree.fit(kGiniX, kGiniY, unbalanced(1, 1));
  REQUIRE(tree.nodes().size() == 3);
  const TreeNode& root = tree.nodes()[0];
  CHECK(root.feature == 0);
  CHECK(root.threshold == 2.5);
  CHECK(root.impurity == 0.5);
  CHECK(decrease_at(tree, 0) == doctest::Approx(0.25).epsilon(1e-14));
  const TreeNode& left = tree.nodes()[static_cast<size_t>(root.left)];
  const TreeNode& right = tree.nodes()[static_cast<size_t>(root.right)];
  CHECK(left.samples == 2);
  CHECK(left.probability == 0.0);
  CHECK(right.samples == 4);
  CHECK(right.probability == 0.75);
  CHECK(right.impurity == 0.375);
  CHECK(tree.depth() == 1);
  CHECK(tree.leaves() == 2);
  CHECK(tree.predict_proba({2, 9}) == 0.0);
  CHECK(tree.predict_proba({2.5, 0}) == 0.75);  // x0 >= threshold goes right
  CHECK(tree.predict({6, 3}) == 1);

  // One level deeper the right node {3 p, 4 p, 5 p, 6 n} splits at x0 < 5.5 (decrease 3/8, all pure; the best x1
  // cut, 3.5, gives only 3/8 - 1/2 * 1/2 = 1/8), so depth 2 fits the training set exactly.
  DecisionTree deeper;
  deeper.fit(kGiniX, kGiniY, unbalanced(2, 1));
  CHECK(deeper.depth() == 2);
  CHECK(deeper.leaves() == 3);
  CHECK(deeper.nodes()[static_cast<size_t>(deeper.nodes()[0].right)].threshold == 5.5);
  for (size_t i = 0; i < kGiniX.size(); ++i) CHECK(deeper.predict(kGiniX[i]) == kGiniY[i]);
}

TEST_CASE("classifiers: tree respects max_depth and min_leaf") {
  // max_depth 0: a single leaf with P(1) = 1/2.
  DecisionTree stump;
  stump.fit(kGiniX, kGiniY, unbalanced(0, 1));
  CHECK(stump.leaves() == 1);
  CHECK(stump.depth() == 0);
  CHECK(stump.predict_proba({0, 0}) == 0.5);
  // min_leaf 3 allows only the 3.5 cuts, decrease 1/18 on both features: the tie goes to feature 0.
  DecisionTree wide;
  wide.fit(kGiniX, kGiniY, unbalanced(4, 3));
  REQUIRE(wide.nodes().size() == 3);
  CHECK(wide.nodes()[0].feature == 0);
  CHECK(wide.nodes()[0].threshold == 3.5);
  CHECK(decrease_at(wide, 0) == doctest::Approx(1.0 / 18).epsilon(1e-12));
  // Random data: the limits hold for every setting.
  test::Rng rng(3);
  const FeatureMatrix x = random_points(60, 3, 21);
  std::vector<int> y;
  for (size_t i = 0; i < x.size(); ++i) y.push_back(rng.uniform01() < 0.3 ? 1 : 0);
  for (int depth = 0; depth <= 5; ++depth)
    for (int64_t min_leaf : {1, 2, 5, 13}) {
      DecisionTree t;
      t.fit(x, y, TreeConfig{depth, min_leaf, true});
      CHECK(t.depth() <= depth);
      for (const TreeNode& n : t.nodes())
        if (n.is_leaf()) CHECK(n.samples >= min_leaf);
    }
}

TEST_CASE("classifiers: tree ties go to the lower threshold") {
  // Sorted labels n p p n: the cuts 1.5 and 3.5 both decrease G by 1/2 - 3/4 * 4/9 = 1/6 (2.5 gives 0): 1.5 wins.
  DecisionTree tree;
  tree.fit(column({1, 2, 3, 4}), {0, 1, 1, 0}, unbalanced(1, 1));
  CHECK(tree.nodes()[0].threshold == 1.5);
  CHECK(decrease_at(tree, 0) == doctest::Approx(1.0 / 6).epsilon(1e-12));
}

TEST_CASE("classifiers: XOR-like data needs depth 2") {
  // Each corner of the unit square twice; label = x0 xor x1. Either single cut leaves half of each class on each
  // side (decrease 0), so depth 1 predicts 1/2 everywhere; the root still splits (feature 0 on the tie) so depth 2
  // separates the classes.
  const FeatureMatrix x = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 0}, {0, 1}, {1, 0}, {1, 1}};
  const std::vector<int> y = {0, 1, 1, 0, 0, 1, 1, 0};
  DecisionTree one, two;
  one.fit(x, y, TreeConfig{1, 2, true});
  two.fit(x, y, TreeConfig{2, 2, true});
  CHECK(one.nodes()[0].feature == 0);
  CHECK(one.nodes()[0].threshold == 0.5);
  for (const auto& row : x) CHECK(one.predict_proba(row) == 0.5);
  CHECK(two.depth() == 2);
  CHECK(two.leaves() == 4);
  for (size_t i = 0; i < x.size(); ++i) CHECK(two.predict_proba(x[i]) == static_cast<double>(y[i]));
}

TEST_CASE("classifiers: class balancing changes the leaf probabilities") {
  // x = 1..6, the only positive at x = 5 (1 positive vs 5 negatives), min_leaf 2, depth 1.
  // Unbalanced: root G = 2 (1/6)(5/6) = 5/18; cuts 2.5: 5/18 - 4/6 * 3/8 = 1/36, 3.5: 5/18 - 1/2 * 4/9 = 1/18,
  //   4.5: 5/18 - 1/3 * 1/2 = 1/9 (best). Right leaf {5 p, 6 n}: P(1) = 1/2.
  // Balanced: the positive weighs 6 / (2 * 1) = 3, each negative 6 / (2 * 5) = 3/5 (total still 6). Root G = 1/2;
  //   4.5: right weight 3 + 3/5 = 18/5, P(1) = 5/6, G = 5/18, decrease 1/2 - 3/5 * 5/18 = 1/3 (3.5 gives 3/14,
  //   2.5 gives 1/8), so the same cut, but the right leaf's P(1) = 3 / (18/5) = 5/6.
  const FeatureMatrix x = column({1, 2, 3, 4, 5, 6});
  const std::vector<int> y = {0, 0, 0, 0, 1, 0};
  DecisionTree plain, balanced;
  plain.fit(x, y, unbalanced(1, 2));
  balanced.fit(x, y, TreeConfig{1, 2, true});
  CHECK(plain.nodes()[0].threshold == 4.5);
  CHECK(balanced.nodes()[0].threshold == 4.5);
  CHECK(plain.predict_proba({5}) == 0.5);
  CHECK(balanced.predict_proba({5}) == doctest::Approx(5.0 / 6).epsilon(1e-14));
  CHECK(plain.predict_proba({1}) == 0.0);
  CHECK(balanced.predict_proba({1}) == 0.0);
  CHECK(balanced.nodes()[0].probability == doctest::Approx(0.5).epsilon(1e-14));
  CHECK(balanced.nodes()[0].weight == doctest::Approx(6.0).epsilon(1e-14));
  CHECK(decrease_at(balanced, 0) == doctest::Approx(1.0 / 3).epsilon(1e-12));
  // The same weights given by hand, without balancing, give the same tree.
  DecisionTree manual;
  manual.fit(x, y, unbalanced(1, 2), {0.6, 0.6, 0.6, 0.6, 3.0, 0.6});
  CHECK(manual.predict_proba({5}) == doctest::Approx(5.0 / 6).epsilon(1e-14));
}

TEST_CASE("classifiers: tree rejects bad input") {
  DecisionTree t;
  CHECK_THROWS_AS(t.predict_proba({1}), UsageError);  // not fitted
  CHECK_THROWS_AS(t.to_json(), UsageError);
  CHECK_THROWS_AS(t.fit({}, {}, TreeConfig{}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {2, 3}}, {0, 1}, TreeConfig{}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {kNaN}}, {0, 1}, TreeConfig{}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0}, TreeConfig{}), UsageError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 2}, TreeConfig{}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {1, 1}, TreeConfig{}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 1}, TreeConfig{-1, 1, true}), UsageError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 1}, TreeConfig{2, 0, true}), UsageError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 1}, TreeConfig{}, {1.0}), UsageError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 1}, TreeConfig{}, {1.0, 0.0}), InputError);
  CHECK_THROWS_AS(t.fit({{1}, {2}}, {0, 1}, TreeConfig{}, {1.0, kNaN}), InputError);
  CHECK_FALSE(t.fitted());
  t.fit(kGiniX, kGiniY, TreeConfig{});
  CHECK_THROWS_AS(t.predict_proba({1}), UsageError);
  CHECK_THROWS_AS(t.predict_proba({1, kNaN}), InputError);
}

TEST_CASE("classifiers: tree JSON round-trip gives identical predictions") {
  test::Rng rng(8);
  const FeatureMatrix x = random_points(80, 3, 31);
  std::vector<int> y;
  for (const auto& row : x) y.push_back(row[0] + row[1] * row[2] + 0.5 * (rng.uniform01() - 0.5) > 0 ? 1 : 0);
  DecisionTree tree;
  tree.fit(x, y, TreeConfig{4, 2, true});
  REQUIRE(tree.leaves() > 2);
  const nlohmann::json j = tree.to_json();
  const DecisionTree back = DecisionTree::from_json(nlohmann::json::parse(j.dump()), "tree.json");
  CHECK(back.to_json() == j);
  CHECK(back.depth() == tree.depth());
  CHECK(back.leaves() == tree.leaves());
  CHECK(back.config().max_depth == 4);
  for (const auto& row : random_points(500, 3, 32)) CHECK(back.predict_proba(row) == tree.predict_proba(row));
}

TEST_CASE("classifiers: tree JSON rejects malformed documents") {
  DecisionTree tree;
  tree.fit(kGiniX, kGiniY, unbalanced(2, 1));  // nodes: 0 split (1, 2); 1 leaf; 2 split (3, 4); 3, 4 leaves
  const nlohmann::json j = tree.to_json();
  REQUIRE(j["nodes"].size() == 5);
  REQUIRE(j["nodes"][0]["left"] == 1);
  REQUIRE(j["nodes"][2]["left"] == 3);
  CHECK_NOTHROW(DecisionTree::from_json(j, "tree.json"));

  const auto rejects = [&](const char* what, auto mutate) {
    nlohmann::json bad = j;
    mutate(bad);
    INFO(what);
    CHECK_THROWS_AS(DecisionTree::from_json(bad, "tree.json"), InputError);
  };
  rejects("not an object", [](nlohmann::json& b) { b = "tree"; });
  rejects("unknown field", [](nlohmann::json& b) { b["depth"] = 2; });
  rejects("wrong format", [](nlohmann::json& b) { b["format"] = "sklearn"; });
  rejects("format not a string", [](nlohmann::json& b) { b["format"] = 1; });
  rejects("future version", [](nlohmann::json& b) { b["version"] = 2; });
  rejects("features a string", [](nlohmann::json& b) { b["features"] = "2"; });
  rejects("no features", [](nlohmann::json& b) { b["features"] = 0; });
  rejects("config missing", [](nlohmann::json& b) { b.erase("config"); });
  rejects("config boolean as int", [](nlohmann::json& b) { b["config"]["balance_classes"] = 1; });
  rejects("negative max_depth", [](nlohmann::json& b) { b["config"]["max_depth"] = -1; });
  rejects("tree deeper than max_depth", [](nlohmann::json& b) { b["config"]["max_depth"] = 1; });
  rejects("leaf below min_leaf", [](nlohmann::json& b) { b["config"]["min_leaf"] = 3; });
  rejects("nodes not an array", [](nlohmann::json& b) { b["nodes"] = nlohmann::json::object(); });
  rejects("no nodes", [](nlohmann::json& b) { b["nodes"] = nlohmann::json::array(); });
  rejects("node not an object", [](nlohmann::json& b) { b["nodes"][1] = 3; });
  rejects("child out of range", [](nlohmann::json& b) { b["nodes"][0]["left"] = 99; });
  rejects("negative child", [](nlohmann::json& b) { b["nodes"][0]["right"] = -1; });
  rejects("cycle to the root", [](nlohmann::json& b) { b["nodes"][2]["left"] = 0; });
  rejects("self loop", [](nlohmann::json& b) { b["nodes"][2]["right"] = 2; });
  rejects("both children the same", [](nlohmann::json& b) { b["nodes"][0]["right"] = 1; });
  rejects("shared child", [](nlohmann::json& b) {
    b["nodes"][2]["left"] = 4;
    b["nodes"][2]["right"] = 3;
    b["nodes"][0]["left"] = 3;
  });
  rejects("child index fractional", [](nlohmann::json& b) { b["nodes"][0]["left"] = 1.0; });
  rejects("feature out of range", [](nlohmann::json& b) { b["nodes"][0]["feature"] = 2; });
  rejects("partial split", [](nlohmann::json& b) { b["nodes"][1]["feature"] = 0; });
  rejects("split keys missing", [](nlohmann::json& b) { b["nodes"][0].erase("threshold"); });
  rejects("threshold null", [](nlohmann::json& b) { b["nodes"][0]["threshold"] = nullptr; });
  rejects("threshold NaN", [](nlohmann::json& b) { b["nodes"][0]["threshold"] = kNaN; });
  rejects("probability above 1", [](nlohmann::json& b) { b["nodes"][1]["probability"] = 1.5; });
  rejects("probability missing", [](nlohmann::json& b) { b["nodes"][3].erase("probability"); });
  rejects("weight zero", [](nlohmann::json& b) { b["nodes"][1]["weight"] = 0; });
  rejects("samples not adding up", [](nlohmann::json& b) { b["nodes"][1]["samples"] = 1; });
  rejects("impurity above 1/2", [](nlohmann::json& b) { b["nodes"][1]["impurity"] = 0.7; });
}
