#pragma once
// Comparing a loaded dataset with the fixture it was written from, pixel for pixel and label for label.
#include <doctest/doctest.h>

#include "engine/data.h"
#include "tests/fixtures/write_formats.h"

namespace lethe::test {

// Rows [first, first + im.n) of `d` hold exactly the fixture's pixels (u8 / 255) and labels.
inline void check_rows(const Dataset& d, const fixtures::U8Images& im, int64_t first = 0) {
  REQUIRE(d.images.shape().size() == 4);
  REQUIRE(d.images.dim(1) == im.c);
  REQUIRE(d.images.dim(2) == im.h);
  REQUIRE(d.images.dim(3) == im.w);
  REQUIRE(d.size() >= first + im.n);
  const float* px = d.images.f32();
  const int64_t* labels = d.labels.i64();
  int64_t pixel_mismatches = 0, label_mismatches = 0;
  for (int64_t i = 0; i < im.n; ++i) {
    label_mismatches += labels[first + i] != im.labels[static_cast<size_t>(i)];
    for (int64_t c = 0; c < im.c; ++c)
      for (int64_t y = 0; y < im.h; ++y)
        for (int64_t x = 0; x < im.w; ++x) {
          const float want = static_cast<float>(im.at(i, c, y, x)) / 255.0f;
          pixel_mismatches += px[(((first + i) * im.c + c) * im.h + y) * im.w + x] != want;
        }
  }
  CHECK(pixel_mismatches == 0);
  CHECK(label_mismatches == 0);
}

// The whole dataset is exactly the fixture.
inline void check_same_images(const Dataset& d, const fixtures::U8Images& im) {
  REQUIRE(d.size() == im.n);
  check_rows(d, im);
}

}  // namespace lethe::test
