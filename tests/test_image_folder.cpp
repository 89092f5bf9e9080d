#include <doctest/doctest.h>
#include <omp.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/image_folder.h"
#include "engine/error.h"
#include "kernels/resize.h"
#include "tests/fixtures/write_images.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace lethe;
using test::TempDir;
using test::write_bytes;

namespace {

// Distinct interleaved u8 pixels [h][w][c]; `salt` makes images differ.
std::vector<uint8_t> pattern(int64_t h, int64_t w, int64_t c, int salt) {
  std::vector<uint8_t> v(static_cast<size_t>(h * w * c));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>((i * 37 + static_cast<size_t>(salt) * 53 + 7) % 256);
  return v;
}

// The value a loader must produce for channel `ch` of pixel (y, x) of an image stored with `file_channels`:
// gray (1, or 2 with alpha) is replicated, alpha dropped, u8 / 255.
float expected_pixel(const std::vector<uint8_t>& hwc, int64_t w, int64_t file_channels, int64_t y, int64_t x,
                     int64_t ch) {
  const int64_t src_ch = file_channels <= 2 ? 0 : ch;
  return static_cast<float>(hwc[static_cast<size_t>((y * w + x) * file_channels + src_ch)]) / 255.0f;
}

// Every pixel of image `index` of `images` ([N, C, H, W]) equals the file's pixels exactly.
void check_image(const Tensor& images, int64_t index, const std::vector<uint8_t>& hwc, int64_t file_channels) {
  const int64_t c = images.dim(1), h = images.dim(2), w = images.dim(3);
  const float* px = images.f32() + index * c * h * w;
  int64_t mismatches = 0;
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        if (px[(ch * h + y) * w + x] != expected_pixel(hwc, w, file_channels, y, x, ch)) ++mismatches;
      }
    }
  }
  CHECK_MESSAGE(mismatches == 0, "image " << index << ": " << mismatches << " pixels differ");
}

void check_labels(const Dataset& d, const std::vector<int64_t>& expected) {
  REQUIRE(d.labels.dtype() == DType::I64);
  REQUIRE(d.size() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) CHECK(d.labels.i64()[i] == expected[i]);
}

// The message of the InputError `fn` throws; fails the test if it throws anything else or nothing.
template <class Fn>
std::string input_error(Fn fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected an InputError, got: " << e.what());
  }
  FAIL("expected an InputError, nothing was thrown");
  return {};
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xFF), static_cast<char>((v >> 8) & 0xFF),
          static_cast<char>(v & 0xFF)};
}
std::string le32(uint32_t v) {
  return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF), static_cast<char>((v >> 16) & 0xFF),
          static_cast<char>(v >> 24)};
}
std::string le16(uint16_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }

std::string png_chunk(const std::string& type, const std::string& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const std::string body = type + data;
  crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(static_cast<uint32_t>(crc));
}

// A PNG whose header claims width x height RGB pixels but whose data holds a few bytes only.
std::string forged_png(uint32_t width, uint32_t height) {
  const std::string ihdr = be32(width) + be32(height) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string idat("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) +
         png_chunk("IEND", "");
}

// A 24-bit BMP whose header claims width x height but which holds no pixel data.
std::string forged_bmp(uint32_t width, uint32_t height) {
  std::string dib = le32(40) + le32(width) + le32(height) + le16(1) + le16(24) + le32(0) + le32(0) + le32(2835) +
                    le32(2835) + le32(0) + le32(0);
  return "BM" + le32(54) + le32(0) + le32(54) + dib;
}

void make_dir(const fs::path& p) { fs::create_directories(p); }

}  // namespace

TEST_CASE("image_folder: parse_image_size accepts HxW only") {
  const ImageSize a = parse_image_size("32x32");
  CHECK(a.height == 32);
  CHECK(a.width == 32);
  const ImageSize b = parse_image_size("28x14");
  CHECK(b.height == 28);
  CHECK(b.width == 14);
  const ImageSize c = parse_image_size("1x4096");
  CHECK(c.height == 1);
  CHECK(c.width == 4096);
  CHECK_FALSE(a.empty());
  CHECK(ImageSize{}.empty());
  for (const char* bad : {"32", "x32", "32x", "0x5", "5x0", "4097x2", "-1x3", "+3x3", " 32x32", "32x32 ", "32x32x3",
                          "abc", "", "32X32", "3.5x2", "99999999999999999999x2"}) {
    CAPTURE(bad);
    try {
      parse_image_size(bad);
      FAIL("accepted");
    } catch (const UsageError& e) {
      CHECK(std::string(e.what()).find("HEIGHTxWIDTH") != std::string::npos);
    }
  }
}

TEST_CASE("image_folder: resize_bilinear 2x2 to 4x4 matches hand-computed values") {
  // Input [[0, 4], [8, 12]] / 16: along each axis the outputs read (x0), (3x0 + x1)/4, (x0 + 3x1)/4, (x1).
  const Tensor in = Tensor::from_vector({0, 4.0f / 16, 8.0f / 16, 12.0f / 16}, {1, 2, 2});
  const Tensor out = resize_bilinear(in, {4, 4});
  REQUIRE(out.shape() == Shape{1, 4, 4});
  const float expected[16] = {0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12};
  for (int i = 0; i < 16; ++i) CHECK(out.f32()[i] == doctest::Approx(expected[i] / 16.0f).epsilon(1e-6));
}

TEST_CASE("image_folder: resize_bilinear 4x4 to 2x2 averages 2x2 blocks") {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i) / 16.0f;
  const Tensor out = resize_bilinear(Tensor::from_vector(v, {1, 4, 4}), {2, 2});
  REQUIRE(out.shape() == Shape{1, 2, 2});
  // Sources at 0.5 and 2.5: the mean of each 2x2 block, e.g. (0 + 1 + 4 + 5) / 4 = 2.5.
  const float expected[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  for (int i = 0; i < 4; ++i) CHECK(out.f32()[i] == doctest::Approx(expected[i] / 16.0f).epsilon(1e-6));
}

TEST_CASE("image_folder: resize_bilinear 3x5 to 7x2, two channels, non-square both ways") {
  // f(y, x) = (5y + x) / 16 is linear, so bilinear interpolation returns f at the (clamped) source coordinates:
  // rows read 3/7 (d + 0.5) - 0.5 clamped to [0, 2]: 0, 1/7, 4/7, 1, 10/7, 13/7, 2 (the last clamps: 16/7 > 2);
  // columns read 2.5 (d + 0.5) - 0.5: 0.75 and 3.25. Channel 1 is 1 - f, checking the channels stay apart.
  std::vector<float> v(2 * 15);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 5; ++x) {
      v[y * 5 + x] = (5.0f * y + x) / 16.0f;
      v[15 + y * 5 + x] = 1.0f - (5.0f * y + x) / 16.0f;
    }
  }
  const Tensor out = resize_bilinear(Tensor::from_vector(v, {2, 3, 5}), {7, 2});
  REQUIRE(out.shape() == Shape{2, 7, 2});
  const double sy[7] = {0, 1.0 / 7, 4.0 / 7, 1, 10.0 / 7, 13.0 / 7, 2};
  const double sx[2] = {0.75, 3.25};
  for (int y = 0; y < 7; ++y) {
    for (int x = 0; x < 2; ++x) {
      CAPTURE(y);
      CAPTURE(x);
      const double f = (5.0 * sy[y] + sx[x]) / 16.0;
      CHECK(out.f32()[y * 2 + x] == doctest::Approx(f).epsilon(1e-5));
      CHECK(out.f32()[14 + y * 2 + x] == doctest::Approx(1.0 - f).epsilon(1e-5));
    }
  }
}

TEST_CASE("image_folder: bilinear taps follow PyTorch's clamping") {
  // Upsampling 2 -> 4: the first output clamps to source 0, the last reads index 1 twice.
  const kernels::BilinearTap first = kernels::bilinear_tap(0, 2, 4);
  CHECK(first.i0 == 0);
  CHECK(first.i1 == 1);
  CHECK(first.lambda == 0.0f);
  const kernels::BilinearTap last = kernels::bilinear_tap(3, 2, 4);
  CHECK(last.i0 == 1);
  CHECK(last.i1 == 1);
  CHECK(last.lambda == doctest::Approx(0.25f));
  // Same size: identity taps.
  for (int64_t d = 0; d < 5; ++d) {
    const kernels::BilinearTap t = kernels::bilinear_tap(d, 5, 5);
    CHECK(t.i0 == d);
    CHECK(t.lambda == 0.0f);
  }
  // Size 1 input: every output reads pixel 0.
  const kernels::BilinearTap one = kernels::bilinear_tap(2, 1, 3);
  CHECK(one.i0 == 0);
  CHECK(one.i1 == 0);
}

TEST_CASE("image_folder: resize_bilinear to the same size copies") {
  test::Rng rng(3);
  const Tensor in = test::random_tensor({3, 5, 7}, rng, 0.0f, 1.0f);
  const Tensor out = resize_bilinear(in, {5, 7});
  REQUIRE(out.shape() == in.shape());
  CHECK_FALSE(out.aliases(in));
  CHECK(std::memcmp(out.f32(), in.f32(), in.nbytes()) == 0);
}

TEST_CASE("image_folder: decode_image gray, gray+alpha, RGB, RGBA, BMP and JPEG") {
  const int64_t h = 5, w = 7;
  SUBCASE("gray PNG -> 1 channel") {
    const auto px = pattern(h, w, 1, 1);
    const Tensor t = decode_image("g.png", fixtures::png_bytes(px, h, w, 1));
    REQUIRE(t.shape() == Shape{1, h, w});
    check_image(t.reshape({1, 1, h, w}), 0, px, 1);
  }
  SUBCASE("gray+alpha PNG -> 1 channel, alpha dropped") {
    const auto px = pattern(h, w, 2, 2);
    const Tensor t = decode_image("ga.png", fixtures::png_bytes(px, h, w, 2));
    REQUIRE(t.shape() == Shape{1, h, w});
    check_image(t.reshape({1, 1, h, w}), 0, px, 2);
  }
  SUBCASE("RGB PNG -> 3 planar channels") {
    const auto px = pattern(h, w, 3, 3);
    const Tensor t = decode_image("rgb.png", fixtures::png_bytes(px, h, w, 3));
    REQUIRE(t.shape() == Shape{3, h, w});
    check_image(t.reshape({1, 3, h, w}), 0, px, 3);
    // Planar: channel 1 of pixel (0, 0) is the file's second byte.
    CHECK(t.f32()[h * w] == static_cast<float>(px[1]) / 255.0f);
  }
  SUBCASE("RGBA PNG -> 3 channels, alpha dropped") {
    const auto px = pattern(h, w, 4, 4);
    const Tensor t = decode_image("rgba.png", fixtures::png_bytes(px, h, w, 4));
    REQUIRE(t.shape() == Shape{3, h, w});
    std::vector<uint8_t> rgb;
    for (size_t i = 0; i < px.size(); i += 4) rgb.insert(rgb.end(), px.begin() + i, px.begin() + i + 3);
    check_image(t.reshape({1, 3, h, w}), 0, rgb, 3);
  }
  SUBCASE("24-bit BMP -> 3 channels") {
    const auto px = pattern(h, w, 3, 5);
    const Tensor t = decode_image("x.bmp", fixtures::bmp_bytes(px, h, w, 3));
    REQUIRE(t.shape() == Shape{3, h, w});
    check_image(t.reshape({1, 3, h, w}), 0, px, 3);
  }
  SUBCASE("JPEG -> close to the original (lossy)") {
    // Smooth content survives JPEG at high quality within a few levels.
    std::vector<uint8_t> px(static_cast<size_t>(16 * 16 * 3));
    for (int64_t y = 0; y < 16; ++y) {
      for (int64_t x = 0; x < 16; ++x) {
        px[(y * 16 + x) * 3 + 0] = 200;
        px[(y * 16 + x) * 3 + 1] = static_cast<uint8_t>(60 + 2 * x);
        px[(y * 16 + x) * 3 + 2] = static_cast<uint8_t>(100 + 2 * y);
      }
    }
    const Tensor t = decode_image("x.jpg", fixtures::jpeg_bytes(px, 16, 16, 3, 100));
    REQUIRE(t.shape() == Shape{3, 16, 16});
    double worst = 0.0;
    for (int64_t ch = 0; ch < 3; ++ch) {
      for (int64_t p = 0; p < 256; ++p) {
        worst = std::max(worst, std::fabs(t.f32()[ch * 256 + p] * 255.0 - px[p * 3 + ch]));
      }
    }
    CHECK(worst <= 6.0);
  }
  SUBCASE("JPEG of gray pixels (stb_image_write always writes YCbCr) -> 3 equal channels") {
    const std::vector<uint8_t> px(64, 77);
    const Tensor t = decode_image("g.jpg", fixtures::jpeg_bytes(px, 8, 8, 1, 100));
    REQUIRE(t.shape() == Shape{3, 8, 8});
    for (int64_t p = 0; p < 3 * 64; ++p) CHECK(std::fabs(t.f32()[p] * 255.0f - 77.0f) <= 2.0f);
  }
}

TEST_CASE("image_folder: gray folder loads exactly, classes sorted by name, other entries ignored") {
  TempDir dir("imgfolder");
  const fs::path root = dir.path() / "root";
  const int64_t h = 6, w = 4;
  // Created out of order; files within a class too.
  const std::vector<std::string> created = {"zebra", "apple", "mango"};
  std::vector<std::vector<uint8_t>> expected_pixels;
  int salt = 0;
  for (const std::string& cls : created) {
    make_dir(root / cls);
    for (const char* file : {"b.png", "a.PNG", "c.png"}) {
      write_bytes((root / cls / file).string(), fixtures::png_bytes(pattern(h, w, 1, salt++), h, w, 1));
    }
    write_bytes((root / cls / "notes.txt").string(), "not an image");
    write_bytes((root / cls / "thumb.gif").string(), "GIF89a garbage");
    write_bytes((root / cls / ".hidden.png").string(), "garbage");
    make_dir(root / cls / "nested");  // directories inside a class are not images
  }
  make_dir(root / ".cache");  // hidden: not a class (and it holds no images)
  write_bytes((root / "README.md").string(), "plain files in the root are ignored");

  const Dataset d = load_image_folder(root.string());
  CHECK(d.name == "folder");
  CHECK(d.source == root.string());
  CHECK(d.num_classes == 3);
  CHECK(d.class_names == std::vector<std::string>{"apple", "mango", "zebra"});
  REQUIRE(d.images.shape() == Shape{9, 1, h, w});
  check_labels(d, {0, 0, 0, 1, 1, 1, 2, 2, 2});
  // Salts: zebra got 0..2 for b, a, c; apple 3..5; mango 6..8. Files sort as "a.PNG" < "b.png" < "c.png".
  const int salts[9] = {4, 3, 5, 7, 6, 8, 1, 0, 2};
  for (int i = 0; i < 9; ++i) check_image(d.images, i, pattern(h, w, 1, salts[i]), 1);

  // mean/std: per-channel statistics of the loaded pixels.
  double sum = 0.0, sum_sq = 0.0;
  const int64_t total = d.images.numel();
  for (int64_t i = 0; i < total; ++i) {
    sum += d.images.f32()[i];
    sum_sq += static_cast<double>(d.images.f32()[i]) * d.images.f32()[i];
  }
  const double mean = sum / total;
  REQUIRE(d.mean.size() == 1);
  REQUIRE(d.std.size() == 1);
  CHECK(d.mean[0] == doctest::Approx(mean).epsilon(1e-5));
  CHECK(d.std[0] == doctest::Approx(std::sqrt(sum_sq / total - mean * mean)).epsilon(1e-5));
}

TEST_CASE("image_folder: RGB folder loads exactly") {
  TempDir dir("imgfolder");
  const int64_t h = 3, w = 5;
  make_dir(dir.path() / "cats");
  make_dir(dir.path() / "dogs");
  const auto c0 = pattern(h, w, 3, 10), c1 = pattern(h, w, 3, 11), d0 = pattern(h, w, 4, 12);
  write_bytes(dir.file("cats/1.png"), fixtures::png_bytes(c0, h, w, 3));
  write_bytes(dir.file("cats/2.png"), fixtures::png_bytes(c1, h, w, 3));
  write_bytes(dir.file("dogs/1.png"), fixtures::png_bytes(d0, h, w, 4));  // RGBA: alpha dropped
  const Dataset d = load_image_folder(dir.path().string());
  REQUIRE(d.images.shape() == Shape{3, 3, h, w});
  check_labels(d, {0, 0, 1});
  check_image(d.images, 0, c0, 3);
  check_image(d.images, 1, c1, 3);
  std::vector<uint8_t> d0_rgb;
  for (size_t i = 0; i < d0.size(); i += 4) d0_rgb.insert(d0_rgb.end(), d0.begin() + i, d0.begin() + i + 3);
  check_image(d.images, 2, d0_rgb, 3);
  CHECK(d.mean.size() == 3);
  CHECK(d.std.size() == 3);
}

TEST_CASE("image_folder: mixed gray and RGB (with a BMP) gives 3 channels, gray replicated") {
  TempDir dir("imgfolder");
  const int64_t h = 4, w = 4;
  make_dir(dir.path() / "a");
  make_dir(dir.path() / "b");
  const auto gray = pattern(h, w, 1, 20), gray_alpha = pattern(h, w, 2, 21), rgb = pattern(h, w, 3, 22),
             bmp = pattern(h, w, 3, 23);
  write_bytes(dir.file("a/0.png"), fixtures::png_bytes(gray, h, w, 1));
  write_bytes(dir.file("a/1.png"), fixtures::png_bytes(gray_alpha, h, w, 2));
  write_bytes(dir.file("b/0.png"), fixtures::png_bytes(rgb, h, w, 3));
  write_bytes(dir.file("b/1.BMP"), fixtures::bmp_bytes(bmp, h, w, 3));
  const Dataset d = load_image_folder(dir.path().string());
  REQUIRE(d.images.shape() == Shape{4, 3, h, w});
  check_labels(d, {0, 0, 1, 1});
  check_image(d.images, 0, gray, 1);
  check_image(d.images, 1, gray_alpha, 2);
  check_image(d.images, 2, rgb, 3);
  check_image(d.images, 3, bmp, 3);
}

TEST_CASE("image_folder: write_image_folder round trip") {
  TempDir dir("imgfolder");
  for (int64_t channels : {1, 3}) {
    CAPTURE(channels);
    const fs::path root = dir.path() / std::to_string(channels);
    const auto names = fixtures::write_image_folder(root.string(), 3, 4, 5, 6, channels, 42);
    CHECK(names == std::vector<std::string>{"class_a", "class_b", "class_c"});
    const Dataset d = load_image_folder(root.string());
    REQUIRE(d.images.shape() == Shape{12, channels, 5, 6});
    CHECK(d.class_names == names);
    check_labels(d, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2});
    for (int64_t i = 0; i < 12; ++i) {
      check_image(d.images, i, fixtures::image_folder_pixels(i / 4, 3, i % 4, 5, 6, channels, 42), channels);
    }
    // The classes differ in brightness, so a model has something to learn.
    CHECK(d.images.f32()[0] < d.images.f32()[d.images.numel() - 1]);
  }
}

TEST_CASE("image_folder: sizes must agree without --resize - with it every image is resized") {
  TempDir dir("imgfolder");
  make_dir(dir.path() / "a");
  make_dir(dir.path() / "b");
  const auto small = pattern(4, 6, 3, 30), big = pattern(9, 5, 3, 31);
  write_bytes(dir.file("a/first.png"), fixtures::png_bytes(small, 4, 6, 3));
  write_bytes(dir.file("b/odd.png"), fixtures::png_bytes(big, 9, 5, 3));
  const std::string msg = input_error([&] { load_image_folder(dir.path().string()); });
  CHECK(msg.find(dir.file("a/first.png")) != std::string::npos);
  CHECK(msg.find(dir.file("b/odd.png")) != std::string::npos);
  CHECK(msg.find("4x6") != std::string::npos);
  CHECK(msg.find("9x5") != std::string::npos);
  CHECK(msg.find("--resize") != std::string::npos);

  const Dataset d = load_image_folder(dir.path().string(), {8, 8});
  REQUIRE(d.images.shape() == Shape{2, 3, 8, 8});
  check_labels(d, {0, 1});
  const Tensor a = resize_bilinear(decode_image("first.png", fixtures::png_bytes(small, 4, 6, 3)), {8, 8});
  const Tensor b = resize_bilinear(decode_image("odd.png", fixtures::png_bytes(big, 9, 5, 3)), {8, 8});
  CHECK(std::memcmp(d.images.f32(), a.f32(), a.nbytes()) == 0);
  CHECK(std::memcmp(d.images.f32() + 3 * 64, b.f32(), b.nbytes()) == 0);
  // One pixel by hand: output (0, 0) of the 4x6 image reads rows 0..1 at lambda 0 (clamped) and columns at
  // 0.75 * 0.5 - 0.5 < 0, i.e. exactly pixel (0, 0).
  CHECK(d.images.f32()[0] == static_cast<float>(small[0]) / 255.0f);

  // An image already of the target size is copied unchanged.
  const Dataset same = load_image_folder(dir.path().string(), {4, 6});
  check_image(same.images, 0, small, 3);
}

TEST_CASE("image_folder: bad roots are InputErrors") {
  TempDir dir("imgfolder");
  const std::string missing = dir.file("nope");
  std::string msg = input_error([&] { load_image_folder(missing); });
  CHECK(msg.find(missing) != std::string::npos);
  CHECK(msg.find("no such directory") != std::string::npos);

  write_bytes(dir.file("file.png"), "x");
  msg = input_error([&] { load_image_folder(dir.file("file.png")); });
  CHECK(msg.find("not a directory") != std::string::npos);

  const fs::path empty_root = dir.path() / "empty";
  make_dir(empty_root / ".hidden");
  write_bytes((empty_root / "loose.png").string(), fixtures::png_bytes(pattern(2, 2, 1, 0), 2, 2, 1));
  msg = input_error([&] { load_image_folder(empty_root.string()); });
  CHECK(msg.find(empty_root.string()) != std::string::npos);
  CHECK(msg.find("ROOT/CLASS_NAME/*.png") != std::string::npos);

  const fs::path no_images = dir.path() / "noimg";
  make_dir(no_images / "good");
  make_dir(no_images / "lonely");
  write_bytes((no_images / "good" / "x.png").string(), fixtures::png_bytes(pattern(2, 2, 1, 0), 2, 2, 1));
  write_bytes((no_images / "lonely" / "readme.txt").string(), "no images here");
  msg = input_error([&] { load_image_folder(no_images.string()); });
  CHECK(msg.find((no_images / "lonely").string()) != std::string::npos);
}

TEST_CASE("image_folder: corrupt files are InputErrors naming the file") {
  TempDir dir("imgfolder");
  const std::string good = fixtures::png_bytes(pattern(8, 8, 3, 40), 8, 8, 3);
  const auto folder_error = [&](const std::string& tag, const std::string& bytes) {
    const fs::path root = dir.path() / tag;
    make_dir(root / "cls");
    write_bytes((root / "cls" / "a_good.png").string(), good);
    const std::string bad = (root / "cls" / "b_bad.png").string();
    write_bytes(bad, bytes);
    const std::string msg = input_error([&] { load_image_folder(root.string()); });
    CHECK_MESSAGE(msg.find(bad) != std::string::npos, msg);
    // decode_image refuses the same bytes.
    const std::string direct = input_error([&] { decode_image("bytes.png", bytes); });
    CHECK(direct.find("bytes.png") != std::string::npos);
    return msg;
  };
  SUBCASE("truncated PNG") { folder_error("trunc", good.substr(0, good.size() / 2)); }
  SUBCASE("header only") { folder_error("header", good.substr(0, 40)); }
  SUBCASE("random bytes named .png") {
    test::Rng rng(9);
    std::string junk(300, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng.integer(0, 255));
    folder_error("junk", junk);
  }
  SUBCASE("empty file") {
    const std::string msg = folder_error("empty", "");
    CHECK(msg.find("empty") != std::string::npos);
  }
  SUBCASE("bad PNG signature") {
    std::string bytes = good;
    bytes[1] = 'Q';
    folder_error("magic", bytes);
  }
  SUBCASE("unsupported format under an image extension (GIF)") { folder_error("gif", "GIF89a\x01\x00\x01\x00"); }
}

TEST_CASE("image_folder: absurd dimensions are refused before decoding") {
  // stb_image's own limits refuse 100000 x 100000 PNGs; Lethe's 2^26-pixel limit refuses 10000 x 10000 that stb
  // would try to allocate (300 MB) before noticing the data is missing.
  for (const std::string& bytes : {forged_png(100000, 100000), forged_png(10000, 10000), forged_bmp(10000, 10000),
                                   forged_bmp(100000, 100000)}) {
    const std::string msg = input_error([&] { decode_image("forged.img", bytes); });
    CHECK(msg.find("forged.img") != std::string::npos);
  }
  const std::string msg = input_error([&] { decode_image("big.png", forged_png(10000, 10000)); });
  CHECK(msg.find("10000x10000") != std::string::npos);
  CHECK(msg.find("2^26") != std::string::npos);
  const std::string bmp_msg = input_error([&] { decode_image("big.bmp", forged_bmp(10000, 9000)); });
  CHECK(bmp_msg.find("9000x10000") != std::string::npos);

  TempDir dir("imgfolder");
  make_dir(dir.path() / "c");
  write_bytes(dir.file("c/big.png"), forged_png(10000, 10000));
  const std::string folder_msg = input_error([&] { load_image_folder(dir.path().string()); });
  CHECK(folder_msg.find(dir.file("c/big.png")) != std::string::npos);
  // Under the pixel limit, but far more pixels than a tiny file can hold: stb would pad with zeros for seconds.
  const std::string tiny = input_error([&] { decode_image("tiny.bmp", forged_bmp(6291459, 10)); });
  CHECK(tiny.find("more than its") != std::string::npos);
  input_error([&] { decode_image("tiny.png", forged_png(8000, 8000)); });
  // A PNG chunk whose declared length runs past the end of the file (stb would first grow a buffer to it).
  std::string long_chunk = fixtures::png_bytes(pattern(3, 4, 3, 9), 3, 4, 3);
  const size_t idat = long_chunk.find("IDAT");
  REQUIRE(idat != std::string::npos);
  long_chunk.replace(idat - 4, 4, std::string("\x05\x00\x14\x49", 4));
  const std::string chunk_msg = input_error([&] { decode_image("chunk.png", long_chunk); });
  CHECK(chunk_msg.find("PNG chunk at byte offset") != std::string::npos);
  // Zero dimensions.
  input_error([&] { decode_image("zero.png", forged_png(0, 5)); });
  input_error([&] { decode_image("zero.bmp", forged_bmp(5, 0)); });
}

TEST_CASE("image_folder: JPEG Huffman tables with more than 256 codes are refused before stb reads them") {
  const auto px = pattern(16, 16, 3, 60);
  const std::string good = fixtures::jpeg_bytes(px, 16, 16, 3, 90);
  REQUIRE(good.size() > 4);
  REQUIRE(static_cast<unsigned char>(good[good.size() - 2]) == 0xFF);
  REQUIRE(static_cast<unsigned char>(good[good.size() - 1]) == 0xD9);
  // A DHT segment for AC table 1 whose 16 code-length counts are 255 each (4080 codes; a table holds 256).
  std::string table = std::string(1, '\x11') + std::string(16, '\xFF');
  table += std::string(255 * 16, '\x01');
  const uint32_t length = static_cast<uint32_t>(table.size() + 2);
  const std::string dht = std::string("\xFF\xC4", 2) + static_cast<char>(length >> 8) +
                          static_cast<char>(length & 0xFF) + table;
  SUBCASE("in the header, before the frame") {
    const std::string bytes = good.substr(0, 2) + dht + good.substr(2);
    const std::string msg = input_error([&] { decode_image("evil.jpg", bytes); });
    CHECK(msg.find("evil.jpg") != std::string::npos);
    CHECK(msg.find("Huffman") != std::string::npos);
    CHECK(msg.find("byte offset 2") != std::string::npos);
  }
  SUBCASE("after the entropy-coded data of the first scan") {
    const std::string bytes = good.substr(0, good.size() - 2) + dht + good.substr(good.size() - 2);
    const std::string msg = input_error([&] { decode_image("late.jpg", bytes); });
    CHECK(msg.find("Huffman") != std::string::npos);
    CHECK(msg.find("byte offset " + std::to_string(good.size() - 2)) != std::string::npos);
  }
  SUBCASE("exactly 256 codes is allowed by the check") {
    // 16 counts summing to 256 pass the check (stb itself may still reject the table as malformed).
    std::string ok_table = std::string(1, '\x11') + std::string(15, '\x10') + std::string(1, '\x10');
    ok_table += std::string(256, '\x01');
    const uint32_t ok_length = static_cast<uint32_t>(ok_table.size() + 2);
    const std::string ok_dht = std::string("\xFF\xC4", 2) + static_cast<char>(ok_length >> 8) +
                               static_cast<char>(ok_length & 0xFF) + ok_table;
    const std::string bytes = good.substr(0, 2) + ok_dht + good.substr(2);
    try {
      decode_image("fine.jpg", bytes);
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find("Huffman table (DHT") == std::string::npos);
    }
  }
  // The unmodified file still decodes.
  CHECK(decode_image("good.jpg", good).shape() == Shape{3, 16, 16});
}

TEST_CASE("image_folder: a JPEG scan that decodes with an undefined Huffman table is refused before stb reads it") {
  const std::string good = fixtures::jpeg_bytes(pattern(16, 16, 3, 61), 16, 16, 3, 90);
  const size_t sos = good.find("\xFF\xDA");
  REQUIRE(sos != std::string::npos);
  REQUIRE(static_cast<unsigned char>(good[sos + 4]) == 3);  // three components, selectors at sos + 6, 8, 10
  const auto with_selector = [&](size_t component, char tables) {
    std::string bytes = good;
    bytes[sos + 6 + 2 * component] = tables;
    return bytes;
  };
  const std::string dc = input_error([&] { decode_image("dc.jpg", with_selector(1, '\x31')); });
  CHECK(dc.find("dc.jpg") != std::string::npos);
  CHECK(dc.find("DC Huffman table 3") != std::string::npos);
  CHECK(dc.find("byte offset " + std::to_string(sos)) != std::string::npos);
  const std::string ac = input_error([&] { decode_image("ac.jpg", with_selector(2, '\x12')); });
  CHECK(ac.find("AC Huffman table 2") != std::string::npos);
  // The tables the encoder did define may be used by any component.
  CHECK(decode_image("swapped.jpg", with_selector(0, '\x11')).shape() == Shape{3, 16, 16});
  CHECK(decode_image("good.jpg", good).shape() == Shape{3, 16, 16});
}

TEST_CASE("image_folder: random mutations of PNG, BMP and JPEG either decode or throw InputError") {
  const auto px = pattern(8, 8, 3, 50);
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"png", fixtures::png_bytes(px, 8, 8, 3)},
      {"gray png", fixtures::png_bytes(pattern(8, 8, 1, 51), 8, 8, 1)},
      {"bmp", fixtures::bmp_bytes(px, 8, 8, 3)},
      {"jpeg", fixtures::jpeg_bytes(px, 8, 8, 3, 90)},
  };
  test::Rng rng(2024);
  for (const auto& seed : seeds) {
    const std::string& kind = seed.first;
    const std::string& original = seed.second;
    int decoded = 0, refused = 0;
    for (int m = 0; m < 300; ++m) {
      std::string bytes = original;
      const int64_t edits = rng.integer(1, 4);
      for (int64_t e = 0; e < edits; ++e) {
        const int64_t op = rng.integer(0, 3);
        const auto at = static_cast<size_t>(rng.integer(0, static_cast<int64_t>(bytes.size()) - 1));
        if (op == 0) bytes[at] = static_cast<char>(rng.integer(0, 255));           // overwrite a byte
        else if (op == 1) bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.integer(0, 7)));  // flip a bit
        else if (op == 2) bytes.resize(std::max<size_t>(at, 1));                 // truncate
        else bytes.insert(at, 1, static_cast<char>(rng.integer(0, 255)));         // insert a byte
        if (bytes.empty()) break;
      }
      try {
        const Tensor t = decode_image("mutant", bytes);
        ++decoded;
        REQUIRE((t.dim(0) == 1 || t.dim(0) == 3));
        REQUIRE(static_cast<uint64_t>(t.dim(1) * t.dim(2)) <= (uint64_t(1) << 26));
        const float* p = t.f32();
        int64_t out_of_range = 0;
        for (int64_t i = 0; i < t.numel(); ++i) out_of_range += (p[i] >= 0.0f && p[i] <= 1.0f) ? 0 : 1;
        REQUIRE(out_of_range == 0);
      } catch (const InputError& e) {
        ++refused;
        REQUIRE(std::string(e.what()).find("mutant") != std::string::npos);
      } catch (const std::exception& e) {
        FAIL(kind << " mutation " << m << ": expected an InputError, got: " << e.what());
      }
    }
    CAPTURE(kind);
    CHECK(decoded + refused == 300);
    CHECK(refused > 0);
  }
}

TEST_CASE("image_folder: results and errors do not depend on the thread count") {
  TempDir dir("imgfolder");
  const fs::path root = dir.path() / "ok";
  fixtures::write_image_folder(root.string(), 3, 10, 7, 5, 3, 1);
  const fs::path bad_root = dir.path() / "bad";
  fixtures::write_image_folder(bad_root.string(), 2, 12, 4, 4, 1, 2);
  // Two corrupt files: the error must always name the first in loading order.
  write_bytes((bad_root / "class_a" / "img_005.png").string(), "broken");
  write_bytes((bad_root / "class_b" / "img_001.png").string(), "broken");

  const int saved = omp_get_max_threads();
  std::vector<std::vector<double>> images;
  std::vector<std::string> errors;
  for (int threads : {1, 2, 4}) {
    omp_set_num_threads(threads);
    const Dataset d = load_image_folder(root.string(), {6, 6});
    images.push_back(test::to_doubles(d.images));
    errors.push_back(input_error([&] { load_image_folder(bad_root.string()); }));
  }
  omp_set_num_threads(saved);
  CHECK(test::bit_identical(images[0], images[1]));
  CHECK(test::bit_identical(images[0], images[2]));
  for (const std::string& e : errors) {
    CHECK(e.find((bad_root / "class_a" / "img_005.png").string()) != std::string::npos);
  }
}
