// The white-box inversion's pixel-space primitives on the CPU backend: the image prior's gradient against central
// finite differences of its value (computed here in double), and the [0, 1] box projection. Parity with the CUDA
// kernels is in test_cuda_sim_ops.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "engine/backend.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;

// tv·Σ (a - b)² over horizontal and vertical neighbours within each plane + l2·Σ x².
double prior_value(const std::vector<double>& x, int64_t planes, int64_t h, int64_t w, double tv, double l2) {
  double value = 0;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) {
        const double v = x[size_t((p * h + r) * w + c)];
        if (c + 1 < w) value += tv * std::pow(v - x[size_t((p * h + r) * w + c + 1)], 2);
        if (r + 1 < h) value += tv * std::pow(v - x[size_t((p * h + r + 1) * w + c)], 2);
        value += l2 * v * v;
      }
  return value;
}

}  // namespace

TEST_CASE("image prior: the gradient matches finite differences of tv*TV + l2*L2, and adds to dx") {
  auto be = make_cpu_backend(2);
  test::Rng rng(8);
  const int64_t n = 2, ch = 3, h = 5, w = 7, planes = n * ch;
  const float tv = 0.3f, l2 = 0.05f;
  const Tensor x = test::random_tensor({n, ch, h, w}, rng, 0.0f, 1.0f);
  const Tensor base = test::random_tensor({n, ch, h, w}, rng);
  Tensor dx = base.clone();
  be->add_image_prior_grad(x, dx, tv, l2);
  const std::vector<double> xv = test::to_doubles(x), got = test::to_doubles(dx), before = test::to_doubles(base);
  const double eps = 1e-4;
  for (size_t i = 0; i < xv.size(); ++i) {
    std::vector<double> plus = xv, minus = xv;
    plus[i] += eps;
    minus[i] -= eps;
    const double fd = (prior_value(plus, planes, h, w, tv, l2) - prior_value(minus, planes, h, w, tv, l2)) / (2 * eps);
    CHECK(got[i] - before[i] == doctest::Approx(fd).epsilon(1e-4));
  }
  Tensor wrong = test::poisoned({n, ch, h, w + 1});
  CHECK_THROWS(be->add_image_prior_grad(x, wrong, tv, l2));
}

TEST_CASE("clamp projects onto the box and keeps NaN") {
  auto be = make_cpu_backend(1);
  Tensor y = Tensor::empty({5}, DType::F32, Device::CPU);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  test::set_values(y, {-0.5f, 0.0f, 0.25f, 1.0f, nan});
  be->clamp(y, 0.0f, 1.0f);
  CHECK(y.f32()[0] == 0.0f);
  CHECK(y.f32()[1] == 0.0f);
  CHECK(y.f32()[2] == 0.25f);
  CHECK(y.f32()[3] == 1.0f);
  CHECK(std::isnan(y.f32()[4]));
}
