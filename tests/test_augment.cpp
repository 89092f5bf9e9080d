#include <doctest/doctest.h>

#include <set>

#include "engine/augment.h"
#include "engine/error.h"
#include "kernels/augment.h"
#include "tests/test_util.h"

using namespace lethe;
using lethe::test::Rng;

namespace {

// The torchvision recipe spelled out: pad with zeros into a bigger image, cut the window at (dy, dx), mirror it.
std::vector<float> reference_augment(const float* img, int64_t c, int64_t h, int64_t w, kernels::AugmentDraw d,
                                     int32_t pad) {
  const int64_t ph = h + 2 * pad, pw = w + 2 * pad;
  std::vector<float> padded(static_cast<size_t>(c * ph * pw), 0.0f), out(static_cast<size_t>(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        padded[static_cast<size_t>((ch * ph + y + pad) * pw + x + pad)] = img[(ch * h + y) * w + x];
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const float v = padded[static_cast<size_t>((ch * ph + y + d.dy) * pw + x + d.dx)];
        const int64_t ox = d.flip ? w - 1 - x : x;
        out[static_cast<size_t>((ch * h + y) * w + ox)] = v;
      }
  return out;
}

}  // namespace

TEST_CASE("augment: crop and flip equal the pad-crop-mirror recipe, per sample") {
  Rng rng(1);
  const int64_t n = 16, c = 3, h = 7, w = 9;  // non-square, so a transposed index shows
  const Tensor src = lethe::test::random_tensor({n, c, h, w}, rng, 0.01f, 1.0f);
  Tensor dst = lethe::test::poisoned({n, c, h, w});
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = 1000 + 3 * i;
  AugmentConfig cfg = AugmentConfig::parse("crop+flip", 2);
  augment_images(src.f32(), dst.f32(), n, c, h, w, ids.data(), cfg, 42, 3);
  CHECK(lethe::test::all_finite(dst));
  for (int64_t i = 0; i < n; ++i) {
    const kernels::AugmentDraw d = kernels::augment_draw(42, 3, static_cast<uint64_t>(ids[i]), 2, true);
    const std::vector<float> want = reference_augment(src.f32() + i * c * h * w, c, h, w, d, 2);
    for (int64_t j = 0; j < c * h * w; ++j) REQUIRE(dst.f32()[i * c * h * w + j] == want[static_cast<size_t>(j)]);
  }
}

TEST_CASE("augment: draws cover every offset and both flips, and depend only on seed, epoch and sample") {
  std::set<int32_t> dys, dxs;
  int flips = 0;
  for (uint64_t s = 0; s < 2000; ++s) {
    const kernels::AugmentDraw d = kernels::augment_draw(5, 0, s, 4, true);
    CHECK(d.dy >= 0);
    CHECK(d.dy <= 8);
    CHECK(d.dx >= 0);
    CHECK(d.dx <= 8);
    dys.insert(d.dy);
    dxs.insert(d.dx);
    flips += d.flip;
  }
  CHECK(dys.size() == 9);
  CHECK(dxs.size() == 9);
  CHECK(flips > 900);
  CHECK(flips < 1100);
  const kernels::AugmentDraw a = kernels::augment_draw(5, 0, 17, 4, true);
  const kernels::AugmentDraw b = kernels::augment_draw(5, 0, 17, 4, true);
  CHECK((a.dy == b.dy && a.dx == b.dx && a.flip == b.flip));
  int differ_epoch = 0;
  for (uint64_t s = 0; s < 50; ++s) {
    const kernels::AugmentDraw e0 = kernels::augment_draw(5, 0, s, 4, true);
    const kernels::AugmentDraw e1 = kernels::augment_draw(5, 1, s, 4, true);
    differ_epoch += (e0.dy != e1.dy || e0.dx != e1.dx || e0.flip != e1.flip);
  }
  CHECK(differ_epoch > 40);
  // Flip off: never mirrored; pad 0: never shifted.
  for (uint64_t s = 0; s < 100; ++s) {
    CHECK_FALSE(kernels::augment_draw(5, 0, s, 4, false).flip);
    const kernels::AugmentDraw d = kernels::augment_draw(5, 0, s, 0, true);
    CHECK(d.dy == 0);
    CHECK(d.dx == 0);
  }
}

TEST_CASE("augment: an image gets the same crop whichever batch it is in") {
  Rng rng(2);
  const int64_t c = 1, h = 5, w = 5;
  const Tensor src = lethe::test::random_tensor({3, c, h, w}, rng, 0.1f, 1.0f);
  const AugmentConfig cfg = AugmentConfig::parse("crop+flip", 1);
  const std::vector<int64_t> ids = {7, 8, 9};
  Tensor batch = lethe::test::poisoned({3, c, h, w}), single = lethe::test::poisoned({1, c, h, w});
  augment_images(src.f32(), batch.f32(), 3, c, h, w, ids.data(), cfg, 1, 0);
  augment_images(src.f32() + 2 * h * w, single.f32(), 1, c, h, w, ids.data() + 2, cfg, 1, 0);
  for (int64_t j = 0; j < h * w; ++j) CHECK(single.f32()[j] == batch.f32()[2 * h * w + j]);
}

TEST_CASE("augment: settings parse, name and serialise - bad ones are usage errors") {
  CHECK_FALSE(AugmentConfig::parse("none", 4).enabled());
  const AugmentConfig crop = AugmentConfig::parse("crop", 4);
  CHECK(crop.pad == 4);
  CHECK_FALSE(crop.flip);
  CHECK(crop.name() == "crop");
  const AugmentConfig flip = AugmentConfig::parse("flip", 4);
  CHECK(flip.pad == 0);
  CHECK(flip.flip);
  CHECK(AugmentConfig::parse("crop+flip", 2).name() == "crop+flip");
  CHECK(AugmentConfig::parse("crop+flip", 2).to_json() == nlohmann::json{{"kind", "crop+flip"}, {"pad", 2}, {"flip", true}});
  CHECK_THROWS_AS(AugmentConfig::parse("rotate", 4), UsageError);
  CHECK_THROWS_AS(AugmentConfig::parse("crop", 0), UsageError);
  CHECK_THROWS_AS(AugmentConfig::parse("crop", -1), UsageError);
}
