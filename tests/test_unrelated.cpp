#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "datasets/unrelated.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace lethe;

namespace {

const UnrelatedKind kAllKinds[] = {UnrelatedKind::UniformNoise, UnrelatedKind::GaussianNoise,
                                   UnrelatedKind::SmoothNoise, UnrelatedKind::Shapes, UnrelatedKind::Mixed};

// Bytes of image i of d.
std::string image_bytes(const Dataset& d, int64_t i) {
  const int64_t per = d.channels() * d.height() * d.width();
  return std::string(reinterpret_cast<const char*>(d.images.f32() + i * per), static_cast<size_t>(per) * 4);
}

double image_variance(const Dataset& d, int64_t i) {
  const int64_t per = d.channels() * d.height() * d.width();
  const float* p = d.images.f32() + i * per;
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t k = 0; k < per; ++k) {
    sum += p[k];
    sum_sq += static_cast<double>(p[k]) * p[k];
  }
  const double mean = sum / per;
  return sum_sq / per - mean * mean;
}

// Mean absolute difference between horizontally adjacent pixels: small for smooth images.
double mean_neighbour_step(const Dataset& d) {
  const int64_t rows = d.size() * d.channels() * d.height(), w = d.width();
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t x = 0; x + 1 < w; ++x) total += std::fabs(d.images.f32()[r * w + x + 1] - d.images.f32()[r * w + x]);
  }
  return total / static_cast<double>(rows * (w - 1));
}

double mean_value(const Dataset& d) {
  double sum = 0.0;
  for (int64_t k = 0; k < d.images.numel(); ++k) sum += d.images.f32()[k];
  return sum / static_cast<double>(d.images.numel());
}

}  // namespace

TEST_CASE("unrelated: kind names round trip and bad kinds are UsageErrors listing the valid ones") {
  for (UnrelatedKind k : kAllKinds) CHECK(parse_unrelated_kind(unrelated_kind_name(k)) == k);
  CHECK(unrelated_kind_name(UnrelatedKind::Shapes) == "shapes");
  CHECK(parse_unrelated_kind("gaussian") == UnrelatedKind::GaussianNoise);
  for (const char* bad : {"", "noise", "Uniform", "shapes ", "mixed2"}) {
    CAPTURE(bad);
    try {
      parse_unrelated_kind(bad);
      FAIL("accepted");
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      for (const char* valid : {"uniform", "gaussian", "smooth", "shapes", "mixed"}) {
        CHECK(msg.find(valid) != std::string::npos);
      }
    }
  }
}

TEST_CASE("unrelated: metadata, shapes and value range for every kind, 1 and 3 channels, non-square") {
  for (UnrelatedKind kind : kAllKinds) {
    for (int64_t channels : {1, 3}) {
      CAPTURE(unrelated_kind_name(kind));
      CAPTURE(channels);
      const Dataset d = make_unrelated(8, channels, 20, 13, kind, 7);
      CHECK(d.name == "unrelated-" + unrelated_kind_name(kind));
      CHECK(d.num_classes == 1);
      CHECK(d.class_names == std::vector<std::string>{"unrelated"});
      REQUIRE(d.images.shape() == Shape{8, channels, 20, 13});
      REQUIRE(d.labels.shape() == Shape{8});
      REQUIRE(d.labels.dtype() == DType::I64);
      for (int64_t i = 0; i < 8; ++i) CHECK(d.labels.i64()[i] == 0);
      CHECK(d.mean == std::vector<float>(static_cast<size_t>(channels), 0.5f));
      CHECK(d.std == std::vector<float>(static_cast<size_t>(channels), 0.25f));
      int64_t out_of_range = 0;
      for (int64_t k = 0; k < d.images.numel(); ++k) {
        const float v = d.images.f32()[k];
        if (!std::isfinite(v) || v < 0.0f || v > 1.0f) ++out_of_range;
      }
      CHECK(out_of_range == 0);
      // No image is flat.
      for (int64_t i = 0; i < 8; ++i) CHECK(image_variance(d, i) > 1e-4);
    }
  }
}

TEST_CASE("unrelated: deterministic in the seed - image i does not depend on n or the thread count") {
  for (UnrelatedKind kind : kAllKinds) {
    CAPTURE(unrelated_kind_name(kind));
    const Dataset a = make_unrelated(5, 3, 16, 16, kind, 123);
    const Dataset b = make_unrelated(5, 3, 16, 16, kind, 123);
    CHECK(std::memcmp(a.images.f32(), b.images.f32(), a.images.nbytes()) == 0);
    const Dataset longer = make_unrelated(9, 3, 16, 16, kind, 123);
    for (int64_t i = 0; i < 5; ++i) CHECK(image_bytes(a, i) == image_bytes(longer, i));
    const Dataset other = make_unrelated(5, 3, 16, 16, kind, 124);
    for (int64_t i = 0; i < 5; ++i) CHECK(image_bytes(a, i) != image_bytes(other, i));
    // Images within one set differ from each other.
    for (int64_t i = 1; i < 5; ++i) CHECK(image_bytes(a, i) != image_bytes(a, 0));

    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const Dataset serial = make_unrelated(9, 3, 16, 16, kind, 123);
    omp_set_num_threads(saved);
    CHECK(std::memcmp(serial.images.f32(), longer.images.f32(), longer.images.nbytes()) == 0);
  }
}

TEST_CASE("unrelated: mixed cycles through the four kinds") {
  const Dataset mixed = make_unrelated(10, 3, 12, 12, UnrelatedKind::Mixed, 5);
  const UnrelatedKind cycle[4] = {UnrelatedKind::UniformNoise, UnrelatedKind::GaussianNoise,
                                  UnrelatedKind::SmoothNoise, UnrelatedKind::Shapes};
  for (int k = 0; k < 4; ++k) {
    const Dataset pure = make_unrelated(10, 3, 12, 12, cycle[k], 5);
    for (int64_t i = 0; i < 10; ++i) {
      CAPTURE(k);
      CAPTURE(i);
      CHECK((image_bytes(mixed, i) == image_bytes(pure, i)) == (i % 4 == k));
    }
  }
}

TEST_CASE("unrelated: each kind has its character") {
  const Dataset uniform = make_unrelated(16, 3, 32, 32, UnrelatedKind::UniformNoise, 1);
  const Dataset gaussian = make_unrelated(16, 3, 32, 32, UnrelatedKind::GaussianNoise, 1);
  const Dataset smooth = make_unrelated(16, 3, 32, 32, UnrelatedKind::SmoothNoise, 1);
  const Dataset shapes = make_unrelated(16, 1, 32, 32, UnrelatedKind::Shapes, 1);
  // Uniform: mean 1/2, adjacent pixels independent (E|U - V| = 1/3).
  CHECK(mean_value(uniform) == doctest::Approx(0.5).epsilon(0.02));
  CHECK(mean_neighbour_step(uniform) == doctest::Approx(1.0 / 3.0).epsilon(0.03));
  // Gaussian: mean 1/2, fewer extreme values than uniform: the standard deviation is about 0.25.
  CHECK(mean_value(gaussian) == doctest::Approx(0.5).epsilon(0.02));
  double var = 0.0;
  for (int64_t i = 0; i < 16; ++i) var += image_variance(gaussian, i) / 16;
  CHECK(std::sqrt(var) == doctest::Approx(0.24).epsilon(0.08));  // slightly under 0.25: clamping at 0 and 1
  // Smooth: neighbours are close, but images still vary.
  CHECK(mean_neighbour_step(smooth) < 0.15);
  for (int64_t i = 0; i < 16; ++i) CHECK(image_variance(smooth, i) > 1e-3);
  // Shapes: flat regions, so a handful of distinct values per image (background + at most 4 shapes).
  for (int64_t i = 0; i < 16; ++i) {
    const float* p = shapes.images.f32() + i * 32 * 32;
    const std::set<float> values(p, p + 32 * 32);
    CHECK(values.size() >= 2);
    CHECK(values.size() <= 5);
  }
}

TEST_CASE("unrelated: bad sizes are UsageErrors, refused before allocating") {
  CHECK_THROWS_AS(make_unrelated(0, 3, 32, 32, UnrelatedKind::Shapes, 0), UsageError);
  CHECK_THROWS_AS(make_unrelated(4, 0, 32, 32, UnrelatedKind::Shapes, 0), UsageError);
  CHECK_THROWS_AS(make_unrelated(4, 3, -1, 32, UnrelatedKind::Shapes, 0), UsageError);
  CHECK_THROWS_AS(make_unrelated(4, 3, 32, 0, UnrelatedKind::Shapes, 0), UsageError);
  // 2^20 * 3 * 1024 * 1024 pixels; also products that would overflow 64 bits.
  CHECK_THROWS_AS(make_unrelated(int64_t(1) << 20, 3, 1024, 1024, UnrelatedKind::UniformNoise, 0), UsageError);
  CHECK_THROWS_AS(make_unrelated(int64_t(1) << 40, int64_t(1) << 40, 2, 2, UnrelatedKind::UniformNoise, 0),
                  UsageError);
  CHECK_THROWS_AS(make_unrelated(INT64_MAX, 1, 1, 1, UnrelatedKind::UniformNoise, 0), UsageError);
  // Tiny images work.
  const Dataset tiny = make_unrelated(3, 1, 1, 1, UnrelatedKind::Shapes, 0);
  CHECK(tiny.images.shape() == Shape{3, 1, 1, 1});
}
