// Analytic gradients of every layer, the loss and the model against central finite differences.
//
// The scalar checked is L = Σ r·y with a fixed random r, so every output element matters with its own weight and
// the backward's input is r itself. The forward runs in f32 and L is summed in double; for each coordinate v
//   g_fd = (L(v+h) - L(v-h)) / 2h,
// and per tensor the error is max|g_fd - g| / max(max|g_fd|, max|g|, 1e-3) (normalised by the tensor's largest
// gradient, so f32 noise on near-zero entries does not dominate), with tolerance 1e-2.
// Why that is enough: f32 noise in L is ~1e-6 for these sizes, i.e. ~5e-5 (h = 1e-2) or ~2e-4 (h = 3e-3) in g_fd,
// and truncation error is O(h²); gradients here are O(0.1-1). A real backward bug (wrong index, missing term,
// wrong scale) is an O(1) relative error.
//
// ReLU and max pooling have kinks. Standalone layers get inputs that keep every kink further than h away. Nets
// that contain them cannot be controlled that way, so there a mismatching coordinate is excused when L itself
// shows a kink inside [v-h, v+h] big enough to explain it (the forward and backward one-sided differences differ
// by at least the mismatch), and the share of excused coordinates is bounded. A wrong backward on a smooth
// stretch shows no such gap in L and is never excused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using test::Rng;

struct FdOptions {
  double h = 1e-2;
  double tol = 1e-2;
  double max_kink_share = 0.0;  // > 0 only for nets with ReLU / max pooling inside
};

// Checks `analytic` = dL/dvalues for the `n` floats at `values` (perturbed in place, then restored). Returns how
// many coordinates were excused as straddling a kink; the caller bounds that count.
size_t check_against_fd(const std::string& what, float* values, const std::vector<double>& analytic,
                        const std::function<double()>& loss, const FdOptions& opt) {
  INFO("gradient w.r.t. ", what);
  const size_t n = analytic.size();
  const double l0 = loss();
  std::vector<double> fd(n), kink_gap(n);
  for (size_t i = 0; i < n; ++i) {
    const float v = values[i];
    values[i] = static_cast<float>(v + opt.h);
    const double up = double(values[i]) - v;  // the step f32 actually took
    const double lp = loss();
    values[i] = static_cast<float>(v - opt.h);
    const double down = v - double(values[i]);
    const double lm = loss();
    values[i] = v;
    fd[i] = (lp - lm) / (up + down);
    kink_gap[i] = std::abs((lp - l0) / up - (l0 - lm) / down);
  }
  double scale = 1e-3;
  for (size_t i = 0; i < n; ++i) scale = std::max({scale, std::abs(fd[i]), std::abs(analytic[i])});

  size_t excused = 0, worst_i = 0;
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::abs(fd[i] - analytic[i]);
    // One kink at distance t < h with slope jump J puts J(h-t)/2h into the central difference and J(h-t)/h
    // between the one-sided ones, so a kink explains a mismatch up to half the gap; allow the whole gap.
    if (opt.max_kink_share > 0.0 && diff > opt.tol * scale && diff <= kink_gap[i]) {
      ++excused;
      continue;
    }
    if (diff / scale > worst) {
      worst = diff / scale;
      worst_i = i;
    }
  }
  INFO("worst element ", worst_i, " of ", n, ": finite difference ", fd[worst_i], ", analytic ", analytic[worst_i],
       ", scale ", scale, "; excused as kinks: ", excused);
  CHECK(worst <= opt.tol);
  return excused;
}

// Random parameters of a Kaiming-like size (so activations stay O(1) through a net), and valid running statistics.
void randomize_state(ParamArena& arena, Rng& rng) {
  for (const ParamEntry& e : arena.entries()) {
    Tensor p = arena.param(e.name);
    const bool matrix = e.shape.size() >= 2;
    const float bound = matrix ? 1.5f / std::sqrt(float(e.numel / e.shape[0])) : 0.5f;
    test::fill_random(p, rng, -bound, bound);
  }
  for (const BufferEntry& b : arena.buffers()) {
    if (b.dtype != DType::F32) continue;  // num_batches_tracked
    Tensor t = arena.buffer(b.name);
    const bool variance = b.name.size() >= 11 && b.name.compare(b.name.size() - 11, 11, "running_var") == 0;
    test::fill_random(t, rng, variance ? 0.5f : -0.5f, variance ? 1.5f : 0.5f);
  }
}

double dot_double(const Tensor& a, const Tensor& b) {
  const float* pa = a.f32();
  const float* pb = b.f32();
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(pa[i]) * pb[i];
  return s;
}

// Gradcheck of one layer standing alone: w.r.t. the input x and every registered parameter.
void gradcheck_layer(Layer& layer, Tensor x, bool train, uint64_t seed, const FdOptions& opt = {}) {
  const std::string mode = train ? "train" : "eval";
  INFO("layer ", layer.kind(), " on input ", shape_str(x.shape()), " in ", mode, " mode");
  auto be = make_cpu_backend(1);
  ParamArena arena;
  layer.register_params(arena, "");
  arena.finalize(Device::CPU);
  Rng rng(seed);
  randomize_state(arena, rng);

  const Pass pass{be.get(), train, true, true};
  const Shape out_shape = layer.output_shape(x.shape());
  const Tensor r = test::random_tensor(out_shape, rng);
  auto loss = [&] {
    const Tensor& y = layer.forward(x, pass);
    REQUIRE(y.shape() == out_shape);
    return dot_double(y, r);
  };

  loss();
  arena.zero_grad(*be);
  const std::vector<double> dx = test::to_doubles(layer.backward(r, pass, true));
  REQUIRE(static_cast<int64_t>(dx.size()) == x.numel());
  CHECK(test::count_nonfinite(dx) == 0);
  std::vector<std::vector<double>> grads;
  for (const ParamEntry& e : arena.entries()) grads.push_back(test::to_doubles(arena.grad(e.name)));

  size_t excused = check_against_fd("input", x.f32(), dx, loss, opt);
  size_t coordinates = dx.size();
  for (size_t k = 0; k < grads.size(); ++k) {
    const ParamEntry& e = arena.entries()[k];
    excused += check_against_fd("parameter " + e.name, arena.param(e.name).f32(), grads[k], loss, opt);
    coordinates += grads[k].size();
  }
  INFO(excused, " of ", coordinates, " coordinates excused as straddling a kink");
  CHECK(double(excused) <= opt.max_kink_share * double(coordinates));
}

// Values at least `gap` apart in random order: max pooling's choice survives any ±h perturbation with 2h < gap.
Tensor distinct_tensor(const Shape& shape, Rng& rng, float gap) {
  Tensor t = Tensor::empty(shape);
  std::vector<int64_t> order(static_cast<size_t>(t.numel()));
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.integer(0, int64_t(i) - 1))]);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = (float(order[size_t(i)]) - 0.5f * float(t.numel())) * gap;
  return t;
}

// Values with |x| in [margin, 1]: ReLU's kink at 0 is never within h.
Tensor away_from_zero(const Shape& shape, Rng& rng, float margin) {
  Tensor t = test::random_tensor(shape, rng, margin, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (rng.uniform01() < 0.5) t.f32()[i] = -t.f32()[i];
  return t;
}

template <class L, class... Args>
LayerPtr make(Args&&... args) {
  return std::make_unique<L>(std::forward<Args>(args)...);
}

// The kink-tolerant settings for nets: a smaller step crosses fewer kinks.
const FdOptions kNetOptions{3e-3, 1e-2, 0.1};

}  // namespace

TEST_CASE("gradcheck: Conv2d") {
  Rng rng(1);
  SUBCASE("3x3, stride 1, padding 1, bias") {
    Conv2d conv(3, 4, 3, 1, 1, true);
    gradcheck_layer(conv, test::random_tensor({2, 3, 5, 5}, rng), true, 11);
  }
  SUBCASE("3x3, stride 2, padding 1, no bias, non-square input") {
    Conv2d conv(3, 4, 3, 2, 1, false);
    gradcheck_layer(conv, test::random_tensor({2, 3, 7, 6}, rng), true, 12);
  }
  SUBCASE("1x1, stride 2 (downsample shortcut)") {
    Conv2d conv(4, 3, 1, 2, 0, false);
    gradcheck_layer(conv, test::random_tensor({2, 4, 5, 5}, rng), true, 13);
  }
  SUBCASE("5x5, one input channel") {
    Conv2d conv(1, 2, 5, 1, 0, true);
    gradcheck_layer(conv, test::random_tensor({1, 1, 8, 8}, rng), true, 14);
  }
}

TEST_CASE("gradcheck: Linear") {
  Rng rng(2);
  SUBCASE("bias") {
    Linear fc(7, 5, true);
    gradcheck_layer(fc, test::random_tensor({3, 7}, rng), true, 21);
  }
  SUBCASE("no bias") {
    Linear fc(6, 4, false);
    gradcheck_layer(fc, test::random_tensor({2, 6}, rng), true, 22);
  }
}

TEST_CASE("gradcheck: BatchNorm2d") {
  Rng rng(3);
  SUBCASE("train mode: gradient through the batch statistics") {
    BatchNorm2d bn(3);
    gradcheck_layer(bn, test::random_tensor({4, 3, 3, 3}, rng, -1.0f, 2.0f), true, 31);
  }
  SUBCASE("eval mode: running statistics are constants") {
    BatchNorm2d bn(3);
    gradcheck_layer(bn, test::random_tensor({4, 3, 3, 3}, rng, -1.0f, 2.0f), false, 32);
  }
}

TEST_CASE("gradcheck: ReLU") {
  Rng rng(4);
  ReLU relu;
  gradcheck_layer(relu, away_from_zero({2, 3, 4, 5}, rng, 0.1f), true, 41);
}

TEST_CASE("gradcheck: MaxPool2d") {
  Rng rng(5);
  SUBCASE("2x2, stride 2") {
    MaxPool2d pool(2);
    gradcheck_layer(pool, distinct_tensor({2, 2, 6, 6}, rng, 0.05f), true, 51);
  }
  SUBCASE("3x3, stride 2, padding 1 (overlapping windows)") {
    MaxPool2d pool(3, 2, 1);
    gradcheck_layer(pool, distinct_tensor({1, 2, 7, 7}, rng, 0.05f), true, 52);
  }
}

TEST_CASE("gradcheck: AvgPool2d and AdaptiveAvgPool2d") {
  Rng rng(6);
  SUBCASE("2x2, stride 2") {
    AvgPool2d pool(2);
    gradcheck_layer(pool, test::random_tensor({2, 2, 4, 6}, rng), true, 61);
  }
  SUBCASE("3x3, stride 2, padding 1") {
    AvgPool2d pool(3, 2, 1);
    gradcheck_layer(pool, test::random_tensor({1, 2, 7, 7}, rng), true, 62);
  }
  SUBCASE("global") {
    LayerPtr pool = AvgPool2d::global();
    CHECK(pool->kind() == "AdaptiveAvgPool2d");
    gradcheck_layer(*pool, test::random_tensor({2, 3, 3, 5}, rng), true, 63);
  }
}

TEST_CASE("gradcheck: Flatten") {
  Rng rng(7);
  Flatten flatten;
  CHECK(flatten.output_shape({2, 3, 2, 2}) == Shape{2, 12});
  gradcheck_layer(flatten, test::random_tensor({2, 3, 2, 2}, rng), true, 71);
}

TEST_CASE("gradcheck: Sequential conv-bn-relu-maxpool-flatten-linear") {
  Rng rng(8);
  Sequential net;
  // No conv bias: train-mode BatchNorm removes it, so its true gradient is 0 and only f32 noise would be checked.
  net.add("conv", make<Conv2d>(3, 4, 3, 1, 1, false))
      .add("bn", make<BatchNorm2d>(4))
      .add("", make<ReLU>())
      .add("", make<MaxPool2d>(2))
      .add("", make<Flatten>())
      .add("fc", make<Linear>(16, 5));
  gradcheck_layer(net, test::random_tensor({2, 3, 4, 4}, rng), true, 81, kNetOptions);
}

TEST_CASE("gradcheck: Residual block with a downsample shortcut") {
  // torchvision's BasicBlock with stride 2: relu(bn2(conv2(relu(bn1(conv1(x))))) + bn(conv1x1(x))).
  Rng rng(9);
  auto main = std::make_unique<Sequential>();
  main->add("conv1", make<Conv2d>(3, 4, 3, 2, 1, false))
      .add("bn1", make<BatchNorm2d>(4))
      .add("", make<ReLU>())
      .add("conv2", make<Conv2d>(4, 4, 3, 1, 1, false))
      .add("bn2", make<BatchNorm2d>(4));
  auto shortcut = std::make_unique<Sequential>();
  shortcut->add("0", make<Conv2d>(3, 4, 1, 2, 0, false)).add("1", make<BatchNorm2d>(4));
  Residual block(std::move(main), std::move(shortcut));
  CHECK(block.output_shape({2, 3, 6, 6}) == Shape{2, 4, 3, 3});
  SUBCASE("train mode") { gradcheck_layer(block, test::random_tensor({2, 3, 6, 6}, rng), true, 91, kNetOptions); }
  SUBCASE("eval mode") { gradcheck_layer(block, test::random_tensor({2, 3, 6, 6}, rng), false, 92, kNetOptions); }
}

TEST_CASE("gradcheck: softmax cross-entropy w.r.t. the logits") {
  Rng rng(10);
  auto be = make_cpu_backend(1);
  Tensor logits = test::random_tensor({3, 5}, rng, -2.0f, 2.0f);
  const Tensor labels = test::random_labels(3, 5, rng);
  SoftmaxCrossEntropy ce;
  auto loss = [&] { return ce.forward(*be, logits, labels); };
  loss();
  const std::vector<double> analytic = test::to_doubles(ce.backward(*be, labels));
  CHECK(check_against_fd("logits", logits.f32(), analytic, loss, FdOptions{}) == 0);
}

TEST_CASE("gradcheck: Model::input_gradient of a small LeNet-like model, with input normalisation") {
  Rng rng(11);
  auto be = make_cpu_backend(1);
  ModelSpec spec;
  spec.arch = "lenet5";
  spec.channels = 3;
  spec.height = spec.width = 12;
  spec.num_classes = 5;
  spec.mean = {0.4f, 0.5f, 0.6f};
  spec.std = {0.2f, 0.3f, 0.25f};
  auto net = std::make_unique<Sequential>();
  net->add("conv1", make<Conv2d>(3, 4, 5))  // 12 -> 8
      .add("", make<ReLU>())
      .add("", make<MaxPool2d>(2))              // -> 4
      .add("conv2", make<Conv2d>(4, 6, 3))      // -> 2
      .add("", make<ReLU>())
      .add("", make<MaxPool2d>(2))              // -> 1
      .add("", make<Flatten>())
      .add("fc1", make<Linear>(6, 10))
      .add("", make<ReLU>())
      .add("fc2", make<Linear>(10, 8))
      .add("", make<ReLU>())
      .add("fc3", make<Linear>(8, 5));
  Model model(spec, std::move(net), *be);
  randomize_state(model.arena(), rng);

  Tensor x = test::random_tensor(spec.input_shape(2), rng, 0.0f, 1.0f);
  const Tensor labels = test::random_labels(2, spec.num_classes, rng);
  // The loss recomputed independently: eval-mode logits, then mean cross-entropy in double.
  Tensor logits;
  auto loss = [&] {
    model.infer_logits(x, logits);
    const int64_t n = logits.dim(0), k = logits.dim(1);
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.f32() + i * k;
      const double mx = *std::max_element(row, row + k);
      double sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(double(row[j]) - mx);
      total += mx + std::log(sum) - row[labels.i64()[i]];
    }
    return total / double(n);
  };

  // input_gradient must leave parameter gradients alone: give them recognisable values first.
  Tensor grads = model.arena().grads();
  test::fill_random(grads, rng);
  const std::vector<double> grads_before = test::to_doubles(grads);

  Tensor dx;
  const double reported = model.input_gradient(x, labels, dx);
  CHECK(reported == doctest::Approx(loss()).epsilon(1e-5));
  CHECK(test::bit_identical(test::to_doubles(model.arena().grads()), grads_before));
  REQUIRE(dx.shape() == x.shape());
  const size_t excused = check_against_fd("model input pixels", x.f32(), test::to_doubles(dx), loss, kNetOptions);
  CHECK(double(excused) <= kNetOptions.max_kink_share * double(x.numel()));
}

TEST_CASE("gradcheck: parameter gradients accumulate across backward calls, input gradients do not") {
  Rng rng(12);
  auto be = make_cpu_backend(2);
  Sequential net;
  net.add("conv", make<Conv2d>(2, 3, 3, 1, 1, true))
      .add("bn", make<BatchNorm2d>(3))
      .add("", make<ReLU>())
      .add("", make<Flatten>())
      .add("fc", make<Linear>(27, 4, true));
  ParamArena arena;
  net.register_params(arena, "");
  arena.finalize(Device::CPU);
  randomize_state(arena, rng);
  const Tensor x = test::random_tensor({3, 2, 3, 3}, rng);
  const Tensor dy = test::random_tensor({3, 4}, rng);
  const Pass pass{be.get(), true, true, true};

  net.forward(x, pass);
  arena.zero_grad(*be);
  const std::vector<double> dx1 = test::to_doubles(net.backward(dy, pass, true));
  const std::vector<double> g1 = test::to_doubles(arena.grads());
  const std::vector<double> dx2 = test::to_doubles(net.backward(dy, pass, true));
  const std::vector<double> g2 = test::to_doubles(arena.grads());

  std::vector<double> twice(g1);
  for (double& v : twice) v *= 2.0;
  CHECK(test::count_nonfinite(g1) == 0);
  CHECK(std::any_of(g1.begin(), g1.end(), [](double v) { return v != 0.0; }));  // not trivially zero
  CHECK(test::nmse(g2, twice) <= 1e-12);  // the second pass adds the same values: rounding of one addition only
  CHECK(test::bit_identical(dx1, dx2));

  // zero_grad really resets them.
  arena.zero_grad(*be);
  for (double v : test::to_doubles(arena.grads())) REQUIRE(v == 0.0);
}
