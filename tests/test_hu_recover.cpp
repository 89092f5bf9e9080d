// Hu et al.'s feature recovery (attacks/hu_recover.h) and the image metrics it is judged by (attacks/image_metrics.h):
// the gradient estimate g* in both unlearning conventions (hand-made weights, and a real hu-approx step), the
// central-difference x-gradient against finite differences of the whole objective, TV and its subgradient, the
// batched J^T u1 pass against one image at a time, determinism, the model restored after the search, a search that
// lowers the cost and beats chance, and the metrics against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "attacks/hu_recover.h"
#include "attacks/image_metrics.h"
#include "engine/trainer.h"
#include "engine/unlearn/methods.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks;

namespace {

using test::cpu;

// A linear model 1x1x2 -> 2 classes (weights [2, 2], bias [2]: 6 parameters) holding `values`.
std::unique_ptr<Model> linear_model(const std::vector<float>& values) {
  ModelSpec spec;
  spec.arch = "mlp";
  spec.channels = 1;
  spec.height = 1;
  spec.width = 2;
  spec.num_classes = 2;
  auto m = make_model_uninitialised(spec, cpu());
  Tensor params = m->arena().params();
  test::set_values(params, values);
  return m;
}

std::unique_ptr<Model> copy_of(const Model& m) {
  auto c = make_model_uninitialised(m.spec(), m.backend());
  c->copy_state_from(m);
  return c;
}

// ∇_θ L(x, y) of one image in eval mode.
std::vector<double> parameter_gradient(Model& model, const Tensor& image, int64_t label) {
  BatchGradients(model).compute(image, Tensor::from_labels({label}), false, "test");
  return test::to_doubles(model.arena().grads());
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// A LeNet-5 on 1x12x12 synthetic images of 4 classes: random weights, or trained for two epochs.
std::unique_ptr<Model> lenet(bool trained) {
  const Dataset data = test::synthetic_dataset(200, 4, 31);
  auto m = make_model(spec_for_data("lenet5", data), cpu(), 7);
  if (trained) {
    TrainConfig recipe;
    recipe.epochs = 2;
    recipe.batch = 32;
    recipe.optim.lr = 0.05f;
    recipe.optim.momentum = 0.5f;
    train(*m, data, recipe);
  }
  return m;
}

// Images uniform in [0.2, 0.8]: inside the box, and no two neighbours equal (TV is differentiable there).
Tensor interior_images(int64_t n, uint64_t seed) {
  test::Rng rng(seed);
  return test::random_tensor({n, 1, 12, 12}, rng, 0.2f, 0.8f);
}

}  // namespace

TEST_CASE("hu recover: g* of approximate unlearning is θ_u - θ_o") {
  auto original = linear_model({1, 2, 3, 4, 0.5f, -0.5f});
  auto unlearned = linear_model({1.5f, 2, 2, 4.25f, 0.5f, 0});
  const Tensor g = gradient_estimate(*original, "o", *unlearned, "u");
  CHECK(test::to_doubles(g) == std::vector<double>{0.5, 0, -1, 0.25, 0, 0.5});
  // The models are left as they were.
  CHECK(test::to_doubles(original->arena().params()) == std::vector<double>{1, 2, 3, 4, 0.5, -0.5});
}

TEST_CASE("hu recover: g* of exact unlearning is -(N(θ_o - θ_0) - (N - k)(θ_u - θ_0))") {
  auto theta0 = linear_model({0, 0, 0, 0, 0, 0});
  auto original = linear_model({1, -1, 2, 0, 0.5f, 0});
  auto unlearned = linear_model({2, 0, 1, 1, 0.25f, 0});
  const int64_t n = 4, k = 1;
  const Tensor g = gradient_estimate(*original, "o", *unlearned, "u", theta0.get(), "p", n, k);
  // -(4·θ_o - 3·θ_u) with θ_0 = 0
  CHECK(test::to_doubles(g) == std::vector<double>{2, 4, -5, 3, -1.25, 0});
  // θ_0 shifts every difference by the same amount, so the estimate does not change.
  auto shifted0 = linear_model({1, 1, 1, 1, 1, 1});
  auto shifted_o = linear_model({2, 0, 3, 1, 1.5f, 1});
  auto shifted_u = linear_model({3, 1, 2, 2, 1.25f, 1});
  CHECK(test::to_doubles(gradient_estimate(*shifted_o, "o", *shifted_u, "u", shifted0.get(), "p", n, k)) ==
        test::to_doubles(g));
}

TEST_CASE("hu recover: g* after a real hu-approx step is the forgotten sample's gradient direction") {
  const Dataset data = test::synthetic_dataset(120, 4, 33);
  auto original = lenet(true);
  const Dataset forget = subset(data, {5});
  const Dataset retain = subset(data, {0, 1, 2, 3, 4, 6, 7});
  auto unlearned = copy_of(*original);
  unlearn::run_unlearning(*unlearned, unlearn::default_config("hu-approx", TrainConfig{}), {forget, retain, {}, {5}});
  const std::vector<double> g = test::to_doubles(gradient_estimate(*original, "o", *unlearned, "u"));
  const std::vector<double> want = parameter_gradient(*original, forget.images, forget.labels.i64()[0]);
  CHECK(cosine(g, want) > 0.99999);
  CHECK(test::nmse(g, want) < 1e-8);  // lr 1: the update is the gradient itself
}

TEST_CASE("hu recover: g* refuses other architectures, NaN, a zero update and k >= N") {
  auto a = linear_model({1, 2, 3, 4, 5, 6});
  auto same = linear_model({1, 2, 3, 4, 5, 6});
  auto other = lenet(false);
  CHECK(test::contains(test::input_error_of([&] { gradient_estimate(*a, "o.st", *other, "u.st"); }),
                       "u.st is a lenet5"));
  CHECK(test::contains(test::input_error_of([&] { gradient_estimate(*a, "o.st", *same, "u.st"); }), "is zero"));
  auto nan = linear_model({1, 2, std::numeric_limits<float>::quiet_NaN(), 4, 5, 6});
  CHECK(test::contains(test::input_error_of([&] { gradient_estimate(*a, "o.st", *nan, "u.st"); }), "not finite"));
  auto b = linear_model({1, 2, 3, 4, 5, 7});
  CHECK(test::contains(test::usage_error_of([&] { gradient_estimate(*a, "o", *b, "u", same.get(), "p", 3, 3); }),
                       "0 < k < N"));
  CHECK(test::contains(test::input_error_of([&] { gradient_estimate(*a, "o", *b, "u", other.get(), "p.st", 3, 1); }),
                       "p.st is a lenet5"));
}

TEST_CASE("hu recover: TV is the mean absolute difference across plus down, its subgradient sign(Δ)/count") {
  // One 2x3 image: across |1|, |2|, |0|, |-2| (mean 5/4); down |2|, |1|, |-3| (mean 2).
  const Tensor image = Tensor::from_vector({0, 1, 3, 2, 2, 0}, {1, 1, 2, 3});
  CHECK(total_variation(image) == std::vector<double>{3.25});
  Tensor grad = Tensor::zeros({1, 1, 2, 3});
  add_total_variation_subgradient(image, 2.0f, grad);
  // weight 2: each across pair moves its ends by ±2/4, each down pair by ±2/3; the pair (3, 4) has sign(0) = 0.
  const double a = 0.5, d = 2.0 / 3;
  const std::vector<double> want = {-a - d, a - a - d, a + d, d, a + d, -a - d};
  const std::vector<double> got = test::to_doubles(grad);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));

  // Where no two neighbours are equal the subgradient is the gradient: finite differences agree.
  test::Rng rng(3);
  Tensor x = test::random_tensor({2, 3, 5, 4}, rng, 0.0f, 1.0f);
  Tensor g = Tensor::zeros(x.shape());
  add_total_variation_subgradient(x, 1.0f, g);
  for (const int64_t i : {0, 7, 19, 42, 77, 119}) {
    Tensor up = x.to_cpu(), down = x.to_cpu();
    const float h = 1e-4f;
    up.f32()[i] += h;
    down.f32()[i] -= h;
    const std::vector<double> tu = total_variation(up), td = total_variation(down);
    const double fd = (tu[0] + tu[1] - td[0] - td[1]) / (static_cast<double>(up.f32()[i]) - down.f32()[i]);
    CHECK(fd == doctest::Approx(test::to_doubles(g)[i]).epsilon(1e-3));
  }
}

TEST_CASE("hu recover: the central-difference x-gradient matches finite differences of the whole objective") {
  auto model = lenet(true);
  const int64_t label = 2;
  // g*: another image's gradient, so the cosine is far from 0 and 1 and the search has somewhere to go.
  const std::vector<double> g_true = parameter_gradient(*model, interior_images(1, 5), label);
  Tensor target = Tensor::empty({model->arena().size()});
  test::set_values(target, std::vector<float>(g_true.begin(), g_true.end()));
  const RecoveryConfig defaults;
  RecoveryObjective f(*model, target, label, defaults.tv, defaults.epsilon);
  const Tensor x = interior_images(1, 6);
  Tensor dx;
  const double f0 = f.gradient(x, dx)[0];
  CHECK(f0 > 0.05);
  CHECK(f0 < 1.5);
  const std::vector<double> grad = test::to_doubles(dx);

  // ∂f/∂x_i by central differences of f itself, at every pixel whose ±h window holds no ReLU or max-pool switch (f
  // has no derivative across one): where steps h and h/2 agree. h = 1e-3 keeps float32 noise in f ~1e-4 of the slope.
  const auto f_at = [&](int64_t pixel, float step) {
    Tensor moved = x.to_cpu();
    moved.f32()[pixel] += step;
    return f.costs(moved)[0];
  };
  Tensor tv_grad = Tensor::zeros(x.shape());
  add_total_variation_subgradient(x.to_cpu(), defaults.tv, tv_grad);
  Tensor ju1;
  f.cross_gradient_target(x, ju1);
  const std::vector<double> g_x = parameter_gradient(*model, x, label);
  const double norm = std::sqrt(dot(g_x, g_x));
  double err = 0, slip_err = 0, scale = 0;
  int64_t smooth = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double fd = (f_at(i, 1e-3f) - f_at(i, -1e-3f)) / 2e-3;
    const double half = (f_at(i, 5e-4f) - f_at(i, -5e-4f)) / 1e-3;
    if (std::fabs(fd - half) > 0.02 * std::max(std::fabs(fd), 1e-3)) continue;
    ++smooth;
    // Dropping the norm term c·J^T u2 (a plausible slip) leaves -J^T u1/‖g‖ + α∇TV.
    const double slip = -test::to_doubles(ju1)[i] / norm + test::to_doubles(tv_grad)[i];
    err += (grad[i] - fd) * (grad[i] - fd);
    slip_err += (slip - fd) * (slip - fd);
    scale += fd * fd;
  }
  CAPTURE(smooth);
  CHECK(smooth > 100);
  const double relative = std::sqrt(err / scale), slip_relative = std::sqrt(slip_err / scale);
  CAPTURE(relative);
  CAPTURE(slip_relative);
  CHECK(relative < 0.02);
  // The tolerance is meaningful: the slip misses by far more than it allows.
  CHECK(slip_relative > 0.2);
}

TEST_CASE("hu recover: the batched J^T u1 pass gives each image what it gets alone") {
  auto model = lenet(true);
  Tensor target = Tensor::empty({model->arena().size()});
  test::Rng rng(9);
  test::fill_random(target, rng);
  RecoveryObjective f(*model, target, 1, 1e-2f, 1e-3f);
  const Tensor x = interior_images(3, 10);
  Tensor batched;
  f.cross_gradient_target(x, batched);
  for (int64_t r = 0; r < 3; ++r) {
    Tensor alone;
    f.cross_gradient_target(x.rows(r, 1), alone);
    CAPTURE(r);
    CHECK(test::nmse(batched.rows(r, 1), alone) < 1e-6);
  }
  CHECK(f.passes() == 8);
}

TEST_CASE("hu recover: the search lowers the cost, beats chance, is deterministic and restores the model") {
  auto model = lenet(true);
  const Dataset data = test::synthetic_dataset(40, 4, 34);
  const Tensor truth = data.images.rows(6, 1).to_cpu();
  const int64_t label = data.labels.i64()[6];
  const std::vector<double> g_true = parameter_gradient(*model, truth, label);
  Tensor target = Tensor::empty({model->arena().size()});
  test::set_values(target, std::vector<float>(g_true.begin(), g_true.end()));
  const std::vector<double> before = test::to_doubles(model->arena().params());

  RecoveryConfig cfg;
  cfg.restarts = 3;
  cfg.iterations = 150;
  cfg.seed = 4;
  double first_cost = -1, last_cost = -1;
  int64_t calls = 0;
  const RecoveryResult r = run_recovery(*model, target, label, cfg, [&](int64_t it, int64_t total, double best) {
    CHECK(total == 150);
    if (it == 1) first_cost = best;
    last_cost = best;
    ++calls;
  });
  CHECK(calls == 150);
  CHECK(test::to_doubles(model->arena().params()) == before);
  REQUIRE(r.costs.size() == 3);
  CHECK(r.cost == r.costs[static_cast<size_t>(r.best_restart)]);
  for (const double c : r.costs) CHECK(r.cost <= c);
  CHECK(r.queries == 150 * (3 + 2 + 2 * 3) + 3);
  CAPTURE(first_cost);
  CAPTURE(r.cost);
  CHECK(r.cost < 0.5 * first_cost);
  CHECK(last_cost < first_cost);
  const ImageQuality q = image_quality(r.image, truth, 0.25);
  const ImageQuality chance = random_baseline(truth, 0.25, cpu());
  CAPTURE(q.psnr);
  CAPTURE(chance.psnr);
  CHECK(q.psnr > chance.psnr + 3.0);

  const RecoveryResult again = run_recovery(*model, target, label, cfg);
  CHECK(test::bit_identical(test::to_doubles(again.restarts), test::to_doubles(r.restarts)));
  CHECK(again.costs == r.costs);
  cfg.seed = 5;
  CHECK(!test::bit_identical(test::to_doubles(run_recovery(*model, target, label, cfg).restarts),
                             test::to_doubles(r.restarts)));
}

TEST_CASE("hu recover: bad settings and labels are usage errors") {
  auto model = lenet(false);
  Tensor target = Tensor::full({model->arena().size()}, 1.0f);
  RecoveryConfig cfg;
  cfg.iterations = 1;
  CHECK(test::contains(test::usage_error_of([&] { run_recovery(*model, target, 4, cfg); }), "label 4"));
  cfg.restarts = 0;
  CHECK(test::contains(test::usage_error_of([&] { run_recovery(*model, target, 0, cfg); }), "--restarts"));
  cfg.restarts = 1;
  cfg.epsilon = 0;
  CHECK(test::contains(test::usage_error_of([&] { run_recovery(*model, target, 0, cfg); }), "--epsilon"));
}

TEST_CASE("hu recover: image metrics against hand-computed values") {
  const Tensor half = Tensor::full({1, 12, 12}, 0.5f), quarter = Tensor::full({1, 12, 12}, 0.25f);
  CHECK(mean_squared_error(half, quarter) == doctest::Approx(0.0625));
  CHECK(psnr(0.0625) == doctest::Approx(10 * std::log10(16.0)));
  CHECK(std::isinf(psnr(0.0)));
  CHECK(mean_std({0.2f, 0.4f}) == doctest::Approx(0.3));
  CHECK(mean_std({}) == 1.0);
  const ImageQuality q = image_quality(half, quarter, 0.25);
  CHECK(q.psnr == doctest::Approx(12.0412).epsilon(1e-4));
  CHECK(q.psnr_hu == doctest::Approx(12.0412 + 12.0412).epsilon(1e-4));  // 20·log10(4) = 12.04 dB more
  // Constant images: no variance, so SSIM is the luminance term (2ab + C1) / (a² + b² + C1).
  const double c1 = 1e-4;
  CHECK(q.ssim == doctest::Approx((2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)));
  CHECK(ssim(quarter, quarter) == doctest::Approx(1.0));
  // Two channels: the mean of each channel's SSIM.
  Tensor two = Tensor::empty({1, 2, 12, 12}), two_ref = Tensor::full({1, 2, 12, 12}, 0.5f);
  for (int64_t i = 0; i < 288; ++i) two.f32()[i] = i < 144 ? 0.5f : 0.25f;
  CHECK(ssim(two, two_ref) == doctest::Approx((1.0 + q.ssim) / 2));
  // A structure the reference lacks costs SSIM; its inverse costs more (negative correlation).
  test::Rng rng(2);
  const Tensor noise = test::random_tensor({1, 12, 12}, rng, 0.0f, 1.0f);
  Tensor inverse = noise.to_cpu();
  for (int64_t i = 0; i < 144; ++i) inverse.f32()[i] = 1.0f - noise.f32()[i];
  CHECK(ssim(noise, noise) == doctest::Approx(1.0));
  CHECK(ssim(inverse, noise) < 0.0);
  // Uniform noise against mid-grey: E[(u - 1/2)²] = 1/12.
  const ImageQuality chance = random_baseline(half, 0.25, cpu(), 16, 1);
  CHECK(chance.mse == doctest::Approx(1.0 / 12).epsilon(0.05));
  CHECK(chance.psnr_hu - chance.psnr == doctest::Approx(20 * std::log10(4.0)));
}
