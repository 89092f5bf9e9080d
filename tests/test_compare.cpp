// Backend::compare_params on the CPU (kernels/cpu/compare_cpu.cpp) against a naive double reference, on fresh random
// inputs: many shapes (P not a multiple of 4, one-element segments, segments starting mid-vector and mid-tile,
// bounds.front() > 0, N = 1, 3, 16, 17, rows padded beyond compare_row_stride), NaN poison outside what may be read,
// NaN inside a segment, bit-identical results for any thread count, and the argument checks. The CUDA kernels are
// compared with this CPU op in tests/test_cuda_sim_ops.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/compare.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using kernels::SegmentStats;
using lethe::test::Rng;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Float sums of at most kCompareTile terms in 32 lanes, then double: the error relative to Σ|terms| stays near 1e-7;
// a dropped term or a wrong index moves it to >= 1e-3 on these inputs.
constexpr double kRelTol = 1e-5;

struct Reference {
  std::vector<SegmentStats> value, magnitude;  // the sums and the sums of |term|
};

Reference naive(const std::vector<float>& t, const std::vector<float>& aux, int64_t n, int64_t ld,
                const std::vector<int64_t>& bounds) {
  const int64_t segs = static_cast<int64_t>(bounds.size()) - 1;
  Reference r{std::vector<SegmentStats>(size_t(n * segs)), std::vector<SegmentStats>(size_t(n * segs))};
  for (int64_t j = 0; j < n; ++j)
    for (int64_t s = 0; s < segs; ++s) {
      SegmentStats& v = r.value[size_t(j * segs + s)];
      SegmentStats& m = r.magnitude[size_t(j * segs + s)];
      for (int64_t i = bounds[size_t(s)]; i < bounds[size_t(s) + 1]; ++i) {
        const double a = aux[size_t(j * ld + i)], x = t[size_t(i)], d = a - x;
        v.dot += a * x, m.dot += std::abs(a * x);
        v.aux_sq += a * a, m.aux_sq += a * a;
        v.target_sq += x * x, m.target_sq += x * x;
        v.diff_sq += d * d, m.diff_sq += d * d;
      }
    }
  return r;
}

std::vector<double> flat(const std::vector<SegmentStats>& v) {
  std::vector<double> out;
  for (const SegmentStats& s : v) out.insert(out.end(), {s.dot, s.aux_sq, s.target_sq, s.diff_sq});
  return out;
}

// The number of values outside the tolerance (NaN counts as outside).
int64_t mismatches(const std::vector<SegmentStats>& got, const Reference& ref) {
  const std::vector<double> g = flat(got), v = flat(ref.value), m = flat(ref.magnitude);
  if (g.size() != v.size()) return -1;
  int64_t bad = 0;
  for (size_t i = 0; i < g.size(); ++i) bad += std::abs(g[i] - v[i]) <= kRelTol * m[i] + 1e-30 ? 0 : 1;
  return bad;
}

struct Inputs {
  int64_t p, n, ld;
  std::vector<float> t, aux;
  Tensor target, bank;
};

// Random target and aux rows; aux row 0 is the target plus small noise (a small ‖a − t‖², summed directly).
// Padding and the values outside [bounds.front(), bounds.back()) are NaN when `poison` is set.
Inputs make_inputs(int64_t p, int64_t n, int64_t ld, const std::vector<int64_t>& bounds, Rng& rng, bool poison) {
  Inputs in{p, n, ld, std::vector<float>(size_t(p)), std::vector<float>(size_t(n * ld)), {}, {}};
  for (float& x : in.t) x = rng.uniform(-1.0f, 1.0f);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < ld; ++i) {
      float& a = in.aux[size_t(j * ld + i)];
      a = j == 0 && i < p ? in.t[size_t(i)] + rng.uniform(-1e-3f, 1e-3f) : rng.uniform(-2.0f, 2.0f);
      if (poison && (i >= p || i < bounds.front() || i >= bounds.back())) a = kNaN;
    }
  if (poison)
    for (int64_t i = 0; i < p; ++i)
      if (i < bounds.front() || i >= bounds.back()) in.t[size_t(i)] = kNaN;
  in.target = Tensor::from_vector(in.t, {p});
  in.bank = Tensor::from_vector(in.aux, {n, ld});
  return in;
}

std::string describe(int64_t p, int64_t n, int64_t ld, const std::vector<int64_t>& bounds) {
  std::string s = "P=" + std::to_string(p) + " N=" + std::to_string(n) + " ld=" + std::to_string(ld) + " bounds={";
  for (size_t i = 0; i < bounds.size() && i < 12; ++i) s += (i ? "," : "") + std::to_string(bounds[i]);
  return s + (bounds.size() > 12 ? ",...}" : "}");
}

void check_against_reference(Backend& be, int64_t p, int64_t n, int64_t ld, const std::vector<int64_t>& bounds,
                             Rng& rng, bool poison) {
  INFO(describe(p, n, ld, bounds), poison ? " (poisoned)" : "");
  const Inputs in = make_inputs(p, n, ld, bounds, rng, poison);
  const std::vector<SegmentStats> got = be.compare_params(in.target, in.bank, bounds);
  REQUIRE(got.size() == size_t(n) * (bounds.size() - 1));
  CHECK(mismatches(got, naive(in.t, in.aux, n, ld, bounds)) == 0);
}

// ResNet-18's parameter tensors (CIFAR stem, 10 classes) in order: 11,173,962 floats, conv weights, BatchNorm
// pairs and the classifier.
std::vector<int64_t> resnet18_bounds() {
  std::vector<int64_t> sizes = {1728, 64, 64};
  int64_t in = 64;
  for (int64_t width : {64, 128, 256, 512})
    for (int block = 0; block < 2; ++block) {
      const bool down = block == 0 && width != 64;
      sizes.insert(sizes.end(), {in * width * 9, width, width, width * width * 9, width, width});
      if (down) sizes.insert(sizes.end(), {in * width, width, width});
      in = width;
    }
  sizes.insert(sizes.end(), {5120, 10});
  std::vector<int64_t> bounds = {0};
  for (int64_t s : sizes) bounds.push_back(bounds.back() + s);
  return bounds;
}

}  // namespace

TEST_CASE("compare_params matches a naive double reference on many shapes") {
  auto be = make_cpu_backend(2);
  Rng rng(101);
  struct Shape_ {
    int64_t p;
    std::vector<int64_t> bounds;
  };
  const std::vector<Shape_> shapes = {
      {1, {0, 1}},
      {7, {0, 7}},
      {1001, {0, 1001}},
      {1001, {3, 4, 5, 90, 91, 1000}},                  // one-element segments, front > 0, back < P
      {850, {0, 84, 168, 252, 336, 420, 504, 588, 672, 756, 840, 841, 842, 843, 844, 845, 846, 847, 848, 849, 850}},
      {9001, {1, 4095, 4096, 4097, 8193, 9001}},        // segments around the tile boundaries
      {20001, {7, 20000}},                              // several tiles in one segment, starting unaligned
      {12345, {4093, 4100, 12340}},                     // a segment straddling a tile boundary
  };
  for (const Shape_& sh : shapes)
    for (int64_t n : {int64_t(1), int64_t(3), int64_t(16), int64_t(17)}) {
      const int64_t ld = kernels::compare_row_stride(sh.p);
      check_against_reference(*be, sh.p, n, ld, sh.bounds, rng, false);
      check_against_reference(*be, sh.p, n, ld, sh.bounds, rng, true);
      check_against_reference(*be, sh.p, n, ld + 9, sh.bounds, rng, true);  // rows padded beyond the stride
    }
  // Random shapes: random P, segment count, front and back.
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t p = rng.integer(1, 10000), n = rng.integer(1, 18);
    std::vector<int64_t> bounds = {rng.integer(0, p - 1)};
    const int64_t segs = rng.integer(1, 12);
    for (int64_t s = 0; s < segs && bounds.back() < p; ++s)
      bounds.push_back(rng.integer(bounds.back() + 1, std::min(p, bounds.back() + 1 + rng.integer(0, 6000))));
    if (bounds.size() < 2) bounds.push_back(p);
    check_against_reference(*be, p, n, kernels::compare_row_stride(p) + rng.integer(0, 2) * 4, bounds, rng,
                            trial % 2 == 0);
  }
}

TEST_CASE("compare_params on ResNet-18 sized layer segments matches the reference") {
  auto be = make_cpu_backend(2);
  Rng rng(102);
  const std::vector<int64_t> bounds = resnet18_bounds();
  CHECK(bounds.back() == 11173962);
  // The first four layers' worth (~150k floats), to keep the reference quick.
  const std::vector<int64_t> head(bounds.begin(), bounds.begin() + 8);
  check_against_reference(*be, head.back() + 5, 3, kernels::compare_row_stride(head.back() + 5), head, rng, true);
}

TEST_CASE("compare_params: a NaN inside a segment poisons that segment only") {
  auto be = make_cpu_backend(2);
  Rng rng(103);
  const int64_t p = 10007, n = 5, ld = kernels::compare_row_stride(p);
  const std::vector<int64_t> bounds = {2, 100, 101, 5000, 9000, 10007};
  Inputs in = make_inputs(p, n, ld, bounds, rng, true);
  in.aux[size_t(3 * ld + 4500)] = kNaN;  // aux 3 in segment 2 ([101, 5000))
  in.t[100] = kNaN;                      // the target in segment 1 ([100, 101))
  in.target = Tensor::from_vector(in.t, {p});
  in.bank = Tensor::from_vector(in.aux, {n, ld});
  const std::vector<SegmentStats> got = be->compare_params(in.target, in.bank, bounds);
  const int64_t segs = int64_t(bounds.size()) - 1;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t s = 0; s < segs; ++s) {
      INFO("aux ", j, " segment ", s);
      const SegmentStats& r = got[size_t(j * segs + s)];
      const bool aux_nan = j == 3 && s == 2, target_nan = s == 1;
      CHECK(std::isnan(r.dot) == (aux_nan || target_nan));
      CHECK(std::isnan(r.aux_sq) == aux_nan);
      CHECK(std::isnan(r.target_sq) == target_nan);
      CHECK(std::isnan(r.diff_sq) == (aux_nan || target_nan));
    }
}

TEST_CASE("compare_params gives the same bits for any thread count") {
  Rng rng(104);
  const int64_t p = 70001, n = 17, ld = kernels::compare_row_stride(p);
  const Inputs in = make_inputs(p, n, ld, {0, p}, rng, false);
  for (const std::vector<int64_t>& bounds :
       {std::vector<int64_t>{0, p}, std::vector<int64_t>{3, 84, 85, 4096, 4099, 40000, 70001}}) {
    std::vector<std::vector<double>> results;
    for (int threads : {1, 2, 3}) {
      auto be = make_cpu_backend(threads);
      results.push_back(flat(be->compare_params(in.target, in.bank, bounds)));
      results.push_back(flat(be->compare_params(in.target, in.bank, bounds)));  // and on a second run
    }
    for (size_t i = 1; i < results.size(); ++i) CHECK(test::bit_identical(results[i], results[0]));
    CHECK(mismatches(make_cpu_backend(1)->compare_params(in.target, in.bank, bounds),
                     naive(in.t, in.aux, n, ld, bounds)) == 0);
  }
}

TEST_CASE("compare_params rejects bad bounds and shapes with clear errors") {
  auto be = make_cpu_backend(1);
  Rng rng(105);
  const int64_t p = 10;
  const Tensor t = test::random_tensor({p}, rng), bank = test::random_tensor({2, 12}, rng);
  auto error = [&](const Tensor& target, const Tensor& aux, const std::vector<int64_t>& bounds) {
    return test::error_of<Error>([&] { be->compare_params(target, aux, bounds); });
  };
  CHECK(test::contains(error(t, bank, {}), "at least 2 values"));
  CHECK(test::contains(error(t, bank, {0}), "at least 2 values"));
  CHECK(test::contains(error(t, bank, {0, 5, 5, 10}), "increase strictly"));
  CHECK(test::contains(error(t, bank, {0, 6, 5}), "increase strictly"));
  CHECK(test::contains(error(t, bank, {-1, 5}), "below 0"));
  CHECK(test::contains(error(t, bank, {0, 11}), "past the target's 10 parameters"));
  CHECK(test::contains(error(t, test::random_tensor({2, 9}, rng), {0, 5}), "fewer than the 10 parameters"));
  CHECK(test::contains(error(t, test::random_tensor({24}, rng), {0, 5}), "must be [N, ld]"));
  CHECK(test::contains(error(Tensor::from_labels({1, 2}), bank, {0, 1}), "not F32"));
  CHECK(test::contains(error(t, Tensor(), {0, 1}), "undefined"));
  // No aux vectors: nothing to compare, an empty result.
  CHECK(be->compare_params(t, Tensor::empty({0, 12}), {0, 10}).empty());
}

TEST_CASE("compare_params plan cuts items at tile multiples and never across segments") {
  const kernels::ComparePlan plan = kernels::make_compare_plan({3, 5, 4096 + 7, 3 * 4096, 3 * 4096 + 1}, 4096);
  CHECK(plan.cuts == std::vector<int64_t>{3, 5, 4096, 4096 + 7, 2 * 4096, 3 * 4096, 3 * 4096 + 1});
  CHECK(plan.seg_items == std::vector<int64_t>{0, 1, 3, 5, 6});
  CHECK(plan.items() == 6);
  CHECK(plan.segments() == 4);
}
