#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "datasets/stl10.h"
#include "tests/fixtures/write_formats.h"
#include "tests/format_checks.h"
#include "tests/test_util.h"

using namespace lethe;
namespace fx = lethe::fixtures;

using lethe::test::input_error_of;
using lethe::test::contains;
using lethe::test::check_same_images;

namespace {


constexpr size_t kImage = 3 * 96 * 96;

}  // namespace

TEST_CASE("stl10: both splits round-trip with exact pixels and labels 1..10 mapped to 0..9") {
  test::TempDir tmp("stl10");
  const std::string dir = tmp.file("stl10_binary");
  fx::write_stl10_dir(dir, 12, 3, 21);
  const Dataset train = load_stl10(dir + "/train_X.bin", dir + "/train_y.bin");
  CHECK(train.num_classes == 10);
  check_same_images(train, fx::make_u8_images(12, 3, 96, 96, 10, 21));
  const Dataset test = load_stl10(dir + "/test_X.bin", dir + "/test_y.bin");
  check_same_images(test, fx::make_u8_images(3, 3, 96, 96, 10, 22));
  // The y file holds 1..10; all ten classes appear in 12 cycling labels.
  const std::string y = test::read_bytes(dir + "/train_y.bin");
  for (size_t i = 0; i < y.size(); ++i) CHECK(train.labels.i64()[i] == static_cast<unsigned char>(y[i]) - 1);
}

TEST_CASE("stl10: each stored plane is column-major and comes out row-major") {
  // Byte (channel ch, column x, row y) at ch * 9216 + x * 96 + y holds (ch * 50 + x * 3 + y * 7) % 256: swapping
  // rows and columns changes the value.
  std::string x_bytes(2 * kImage, '\0');
  for (size_t i = 0; i < 2; ++i)
    for (int ch = 0; ch < 3; ++ch)
      for (int col = 0; col < 96; ++col)
        for (int row = 0; row < 96; ++row)
          x_bytes[i * kImage + static_cast<size_t>(ch * 9216 + col * 96 + row)] =
              static_cast<char>((ch * 50 + col * 3 + row * 7 + static_cast<int>(i) * 11) % 256);
  const std::string y_bytes = {10, 1};
  const Dataset d = parse_stl10("train_X.bin", x_bytes, "train_y.bin", y_bytes);
  REQUIRE(d.images.shape() == Shape{2, 3, 96, 96});
  CHECK(d.labels.i64()[0] == 9);
  CHECK(d.labels.i64()[1] == 0);
  const float* px = d.images.f32();
  int64_t mismatches = 0;
  for (int i = 0; i < 2; ++i)
    for (int ch = 0; ch < 3; ++ch)
      for (int row = 0; row < 96; ++row)
        for (int col = 0; col < 96; ++col)
          mismatches += px[((i * 3 + ch) * 96 + row) * 96 + col] !=
                        static_cast<float>((ch * 50 + col * 3 + row * 7 + i * 11) % 256) / 255.0f;
  CHECK(mismatches == 0);
  // Row 0, column 1 is file byte 96 (the second column's first row); row 1, column 0 is file byte 1.
  CHECK(px[1] == static_cast<float>(static_cast<unsigned char>(x_bytes[96])) / 255.0f);
  CHECK(px[96] == static_cast<float>(static_cast<unsigned char>(x_bytes[1])) / 255.0f);
  CHECK(px[1] != px[96]);
}

TEST_CASE("stl10: lengths that disagree or do not fit whole images are refused naming the files") {
  const fx::U8Images im = fx::make_u8_images(2, 3, 96, 96, 10, 7);
  const std::string x = fx::stl10_x_bytes(im), y = fx::stl10_y_bytes(im);
  REQUIRE(x.size() == 2 * kImage);
  REQUIRE(y.size() == 2);

  const std::string more_labels = input_error_of([&] { parse_stl10("tX.bin", x, "ty.bin", y + "\x03"); });
  CHECK_MESSAGE(contains(more_labels, "tX.bin holds 2 images but ty.bin holds 3 labels"), more_labels);
  const std::string fewer_labels = input_error_of([&] { parse_stl10("tX.bin", x, "ty.bin", y.substr(0, 1)); });
  CHECK_MESSAGE(contains(fewer_labels, "tX.bin holds 2 images but ty.bin holds 1 labels"), fewer_labels);

  for (size_t cut : {size_t(0), size_t(1), kImage - 1, kImage + 5000, 2 * kImage - 1}) {
    CAPTURE(cut);
    const std::string msg = input_error_of([&] { parse_stl10("tX.bin", x.substr(0, cut), "ty.bin", y); });
    CHECK_MESSAGE(contains(msg, "tX.bin: length " + std::to_string(cut) + " bytes"), msg);
    CHECK_MESSAGE(contains(msg, "27648"), msg);
  }
  const std::string partial = input_error_of([&] { parse_stl10("tX.bin", x.substr(0, kImage + 5000), "ty.bin", y); });
  CHECK_MESSAGE(contains(partial, "1 whole images and a partial image of 5000 bytes"), partial);

  // X and y given the wrong way round.
  const std::string swapped = input_error_of([&] { parse_stl10("ty.bin", y, "tX.bin", x); });
  CHECK_MESSAGE(contains(swapped, "are the X and y files swapped?"), swapped);

  test::TempDir tmp("stl10-missing");
  test::write_bytes(tmp.file("train_X.bin"), x);
  const std::string missing =
      input_error_of([&] { load_stl10(tmp.file("train_X.bin"), tmp.file("train_y.bin")); });
  CHECK_MESSAGE(contains(missing, tmp.file("train_y.bin") + ": cannot open (no such file)"), missing);
}

TEST_CASE("stl10: labels outside 1..10 are refused with their offset") {
  const fx::U8Images im = fx::make_u8_images(3, 3, 96, 96, 10, 8);
  const std::string x = fx::stl10_x_bytes(im);
  for (int bad : {0, 11, 255}) {
    std::string y = fx::stl10_y_bytes(im);
    y[1] = static_cast<char>(bad);
    test::TempDir tmp("stl10-labels");
    test::write_bytes(tmp.file("test_X.bin"), x);
    test::write_bytes(tmp.file("test_y.bin"), y);
    const std::string msg = input_error_of([&] { load_stl10(tmp.file("test_X.bin"), tmp.file("test_y.bin")); });
    CHECK_MESSAGE(contains(msg, tmp.file("test_y.bin") + ": label " + std::to_string(bad) +
                                    " at byte offset 1 is out of range 1..10"),
                  msg);
  }
}

TEST_CASE("stl10: random byte flips and truncations either parse or raise InputError") {
  test::Rng rng(777);
  const fx::U8Images im = fx::make_u8_images(2, 3, 96, 96, 10, 9);
  const std::string x0 = fx::stl10_x_bytes(im), y0 = fx::stl10_y_bytes(im);
  int parsed = 0, refused = 0;
  std::string failure;
  for (int iter = 0; iter < 300; ++iter) {
    std::string x = x0, y = y0;
    std::string& target = rng.integer(0, 1) ? x : y;
    const int64_t op = rng.integer(0, 2);
    if (op == 0) {
      for (int64_t k = rng.integer(1, 4); k > 0; --k)
        target[static_cast<size_t>(rng.integer(0, int64_t(target.size()) - 1))] =
            static_cast<char>(rng.integer(0, 255));
    } else if (op == 1) {
      target.resize(static_cast<size_t>(rng.integer(0, int64_t(target.size()))));
    } else {
      target += std::string(static_cast<size_t>(rng.integer(1, 30000)), static_cast<char>(rng.integer(0, 255)));
    }
    try {
      const Dataset d = parse_stl10("mX.bin", x, "my.bin", y);
      ++parsed;
      for (int64_t i = 0; i < d.size(); ++i)
        if (d.labels.i64()[i] < 0 || d.labels.i64()[i] > 9) failure = "label out of range";
    } catch (const InputError& e) {
      ++refused;
      if (!contains(e.what(), "mX.bin") && !contains(e.what(), "my.bin")) failure = e.what();
    } catch (const std::exception& e) {
      failure = std::string("wrong exception: ") + e.what();
    }
  }
  CHECK_MESSAGE(failure.empty(), failure);
  CHECK(parsed > 0);
  CHECK(refused > 0);
}
