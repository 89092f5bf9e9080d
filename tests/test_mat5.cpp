#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "datasets/mat5.h"
#include "tests/fixtures/write_formats.h"
#include "tests/format_checks.h"
#include "tests/test_util.h"

using namespace lethe;
namespace fx = lethe::fixtures;

using lethe::test::input_error_of;
using lethe::test::contains;
using lethe::test::check_same_images;

namespace {

// MAT-file codes, written out from the format reference so the tests do not borrow the reader's constants.
constexpr uint32_t miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7,
                   miDOUBLE = 9, miMATRIX = 14, miCOMPRESSED = 15;
constexpr uint32_t mxCELL = 1, mxCHAR = 4, mxDOUBLE = 6, mxSINGLE = 7, mxINT16 = 10, mxUINT8 = 9;


const MatArray* find(const std::vector<MatArray>& arrays, const std::string& name) {
  for (const MatArray& a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

// SVHN's X for `im`, column-major 32x32x3xN, built here independently of the fixture writer.
std::string svhn_x(const fx::U8Images& im) {
  std::string x(static_cast<size_t>(im.n) * 3072, '\0');
  for (int64_t i = 0; i < im.n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t r = 0; r < 32; ++r)
        for (int64_t col = 0; col < 32; ++col)
          x[static_cast<size_t>(i * 3072 + c * 1024 + col * 32 + r)] = static_cast<char>(im.at(i, c, r, col));
  return x;
}

std::vector<double> svhn_y(const fx::U8Images& im) {
  std::vector<double> y;
  for (int64_t label : im.labels) y.push_back(label == 0 ? 10.0 : static_cast<double>(label));
  return y;
}

std::string x_matrix(const fx::U8Images& im, bool big = false) {
  return fx::mat5_matrix("X", mxUINT8, {32, 32, 3, static_cast<int32_t>(im.n)}, miUINT8, svhn_x(im), big);
}

std::string y_matrix(const fx::U8Images& im, bool big = false) {
  return fx::mat5_matrix("y", mxDOUBLE, {static_cast<int32_t>(im.n), 1}, miDOUBLE,
                         fx::mat5_encode(svhn_y(im), miDOUBLE, big), big);
}

// Parses `bytes` as a file named `path` and reads SVHN from it.
Dataset svhn_of(const std::string& path, const std::string& bytes, size_t cap = size_t(1) << 32) {
  return svhn_from_mat(path, parse_mat5(path, bytes, cap));
}

std::string le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
}

}  // namespace

TEST_CASE("svhn: compressed and uncompressed files round-trip, with label 10 read as digit 0") {
  const fx::U8Images im = fx::make_u8_images(12, 3, 32, 32, 10, 31);
  int zeros = 0;
  for (int64_t y : im.labels) zeros += y == 0;
  REQUIRE(zeros > 0);
  for (bool compressed : {true, false}) {
    CAPTURE(compressed);
    test::TempDir tmp("svhn");
    const std::string path = tmp.file("train_32x32.mat");
    fx::write_file(path, fx::svhn_mat_bytes(im, compressed));
    const Dataset d = load_svhn(path);
    CHECK(d.num_classes == 10);
    CHECK(d.source == path);
    check_same_images(d, im);

    // The file itself holds 10 where the digit is 0.
    const std::vector<MatArray> arrays = read_mat5(path);
    const MatArray* y = find(arrays, "y");
    REQUIRE(y != nullptr);
    CHECK(y->cls == MatClass::Double);
    CHECK(y->dims == std::vector<uint64_t>{12, 1});
    for (size_t i = 0; i < im.labels.size(); ++i) {
      if (im.labels[i] == 0) {
        CHECK(y->values[i] == 10.0);
        CHECK(d.labels.i64()[i] == 0);
      }
    }
    const MatArray* x = find(arrays, "X");
    REQUIRE(x != nullptr);
    CHECK(x->cls == MatClass::UInt8);
    CHECK(x->dims == std::vector<uint64_t>{32, 32, 3, 12});
    CHECK(x->values.empty());
    CHECK(x->u8 == svhn_x(im));
    CHECK(x->numel() == 12 * 3072);
  }

  test::TempDir tmp("svhn-dir");
  for (bool compressed : {true, false}) {
    const std::string dir = tmp.file(compressed ? "svhn" : "svhn-raw");
    fx::write_svhn_dir(dir, 11, 4, 8, compressed);
    check_same_images(load_svhn(dir + "/train_32x32.mat"), fx::make_u8_images(11, 3, 32, 32, 10, 8));
    check_same_images(load_svhn(dir + "/test_32x32.mat"), fx::make_u8_images(4, 3, 32, 32, 10, 9));
  }
}

TEST_CASE("svhn: X and y in one compressed stream in either order, y stored as miUINT8 or as a row") {
  const fx::U8Images im = fx::make_u8_images(5, 3, 32, 32, 10, 40);
  const std::string header = fx::mat5_header();
  check_same_images(svhn_of("xy.mat", header + fx::mat5_compressed(x_matrix(im) + y_matrix(im))), im);
  check_same_images(svhn_of("yx.mat", header + fx::mat5_compressed(y_matrix(im) + x_matrix(im))), im);
  // MATLAB saves a double array of small integers as miUINT8 data.
  const std::string y_u8 =
      fx::mat5_matrix("y", mxDOUBLE, {5, 1}, miUINT8, fx::mat5_encode(svhn_y(im), miUINT8));
  check_same_images(svhn_of("u8.mat", header + x_matrix(im) + y_u8), im);
  const std::string y_row = fx::mat5_matrix("y", mxDOUBLE, {1, 5}, miINT16, fx::mat5_encode(svhn_y(im), miINT16));
  check_same_images(svhn_of("row.mat", header + fx::mat5_compressed(y_row) + fx::mat5_compressed(x_matrix(im))), im);
  // A single image: MATLAB drops the trailing singleton dimension.
  const fx::U8Images one = fx::make_u8_images(1, 3, 32, 32, 10, 41);
  const std::string x1 = fx::mat5_matrix("X", mxUINT8, {32, 32, 3}, miUINT8, svhn_x(one));
  check_same_images(svhn_of("one.mat", header + x1 + y_matrix(one)), one);
}

TEST_CASE("mat5: arrays keep their names, classes, column-major dimensions and stored types") {
  std::string file = fx::mat5_header();
  file += fx::mat5_matrix("A", mxDOUBLE, {2, 3}, miDOUBLE, fx::mat5_encode({1, 2, 3, 4, 5, 6.5}, miDOUBLE));
  file += fx::mat5_matrix("B", mxDOUBLE, {1, 4}, miUINT8, fx::mat5_encode({1, 2, 3, 250}, miUINT8));
  file += fx::mat5_matrix("C", mxINT16, {3, 1}, miINT16, fx::mat5_encode({-7, 0, 32000}, miINT16));
  file += fx::mat5_matrix("longer_name", mxSINGLE, {1, 2}, miSINGLE, fx::mat5_encode({0.25, -3}, miSINGLE));
  file += fx::mat5_matrix("U", mxUINT8, {2, 2}, miUINT8, std::string("\x01\xff\x00\x7f", 4));
  file += fx::mat5_matrix("E", mxDOUBLE, {0, 0}, miDOUBLE, "");
  // A 1x1 double stored in the small-element form (data inside the tag).
  {
    std::string body = fx::mat5_element(miUINT32, le32(mxDOUBLE) + le32(0));
    body += fx::mat5_element(miINT32, le32(1) + le32(1));
    body += fx::mat5_element(miINT8, "s", false, true);
    body += fx::mat5_element(miINT32, le32(static_cast<uint32_t>(-42)), false, true);
    file += fx::mat5_element(miMATRIX, body);
  }
  // Not read: a char array, a cell array and a complex double.
  file += fx::mat5_matrix("name", mxCHAR, {1, 3}, miUINT16, fx::mat5_encode({'a', 'b', 'c'}, miUINT16));
  {
    std::string body = fx::mat5_element(miUINT32, le32(mxCELL) + le32(0));
    body += fx::mat5_element(miINT32, le32(1) + le32(1));
    body += fx::mat5_element(miINT8, "cel", false, true);
    body += fx::mat5_matrix("", mxDOUBLE, {1, 1}, miDOUBLE, fx::mat5_encode({9}, miDOUBLE));
    file += fx::mat5_element(miMATRIX, body);
  }
  file += fx::mat5_matrix("Z", mxDOUBLE, {1, 1}, miDOUBLE, fx::mat5_encode({1}, miDOUBLE), false,
                          fx::mat5_encode({2}, miDOUBLE));

  for (bool compressed : {false, true}) {
    CAPTURE(compressed);
    const std::string bytes =
        compressed ? fx::mat5_header() + fx::mat5_compressed(file.substr(128)) : file;
    const std::vector<MatArray> arrays = parse_mat5("many.mat", bytes);
    std::vector<std::string> names;
    for (const MatArray& a : arrays) names.push_back(a.name);
    CHECK(names == std::vector<std::string>{"A", "B", "C", "longer_name", "U", "E", "s"});
    if (arrays.size() != 7) continue;
    CHECK(arrays[0].cls == MatClass::Double);
    CHECK(arrays[0].dims == std::vector<uint64_t>{2, 3});
    CHECK(arrays[0].values == std::vector<double>{1, 2, 3, 4, 5, 6.5});
    CHECK(arrays[1].values == std::vector<double>{1, 2, 3, 250});
    CHECK(arrays[2].cls == MatClass::Int16);
    CHECK(arrays[2].values == std::vector<double>{-7, 0, 32000});
    CHECK(arrays[3].cls == MatClass::Single);
    CHECK(arrays[3].values == std::vector<double>{0.25, -3});
    CHECK(arrays[4].cls == MatClass::UInt8);
    CHECK(arrays[4].u8 == std::string("\x01\xff\x00\x7f", 4));
    CHECK(arrays[4].values.empty());
    CHECK(arrays[5].dims == std::vector<uint64_t>{0, 0});
    CHECK(arrays[5].numel() == 0);
    CHECK(arrays[5].values.empty());
    CHECK(arrays[6].values == std::vector<double>{-42});
  }
}

TEST_CASE("mat5: big-endian (MI) files decode to the same arrays and images") {
  const fx::U8Images im = fx::make_u8_images(3, 3, 32, 32, 10, 50);
  const std::string big = fx::mat5_header(true) + x_matrix(im, true) + y_matrix(im, true);
  REQUIRE(big.substr(126, 2) == "MI");
  check_same_images(svhn_of("big.mat", big), im);
  const std::string big_packed =
      fx::mat5_header(true) + fx::mat5_compressed(x_matrix(im, true), true) + fx::mat5_compressed(y_matrix(im, true), true);
  check_same_images(svhn_of("bigz.mat", big_packed), im);

  const std::string mixed = fx::mat5_header(true) +
                            fx::mat5_matrix("v", mxDOUBLE, {1, 3}, miINT16, fx::mat5_encode({-2, 300, 7}, miINT16, true), true) +
                            fx::mat5_matrix("w", mxDOUBLE, {1, 2}, miDOUBLE, fx::mat5_encode({1.5, -1e300}, miDOUBLE, true), true);
  const std::vector<MatArray> arrays = parse_mat5("mixed.mat", mixed);
  REQUIRE(arrays.size() == 2);
  CHECK(arrays[0].values == std::vector<double>{-2, 300, 7});
  CHECK(arrays[1].values == std::vector<double>{1.5, -1e300});
}

TEST_CASE("mat5: v7.3 (HDF5), v4 and non-MAT headers are refused saying what the file is") {
  test::TempDir tmp("mat5-headers");
  // v7.3: a 512-byte user block with MATLAB's text, then the HDF5 superblock.
  std::string v73 = "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .";
  v73.resize(512, ' ');
  v73 += std::string("\x89HDF\r\n\x1a\n", 8) + std::string(200, '\0');
  const std::string v73_path = tmp.file("train_32x32.mat");
  test::write_bytes(v73_path, v73);
  const std::string v73_msg = input_error_of([&] { load_svhn(v73_path); });
  CHECK_MESSAGE(contains(v73_msg, v73_path + ": is a MATLAB v7.3 (HDF5) file"), v73_msg);
  CHECK_MESSAGE(contains(v73_msg, "save with -v7"), v73_msg);
  // The HDF5 signature alone (whatever the text says) is enough.
  std::string hdf5_only = fx::mat5_header();
  hdf5_only.resize(512, '\0');
  hdf5_only += std::string("\x89HDF\r\n\x1a\n", 8) + std::string(64, '\0');
  CHECK(contains(input_error_of([&] { parse_mat5("h.mat", hdf5_only); }), "v7.3 (HDF5)"));

  // v4: a 20-byte numeric header (type, rows, cols, imaginary flag, name length), the name, the data.
  std::string v4 = le32(0) + le32(2) + le32(1) + le32(0) + le32(2) + std::string("x\0", 2) +
                   fx::mat5_encode({1, 2}, miDOUBLE);
  v4.resize(200, '\0');
  const std::string v4_msg = input_error_of([&] { parse_mat5("old.mat", v4); });
  CHECK_MESSAGE(contains(v4_msg, "old.mat: not a MATLAB level-5 MAT file"), v4_msg);
  CHECK_MESSAGE(contains(v4_msg, "v4"), v4_msg);

  const std::string text(300, 'g');
  const std::string text_msg = input_error_of([&] { parse_mat5("notes.mat", text); });
  CHECK_MESSAGE(contains(text_msg, "notes.mat: not a MATLAB level-5 MAT file: no 'IM' or 'MI' endian indicator"),
                text_msg);
  CHECK(contains(input_error_of([&] { parse_mat5("tiny.mat", "hello"); }), "tiny.mat: not a MATLAB level-5"));

  std::string bad_version = fx::mat5_header();
  bad_version[124] = 0x00;
  bad_version[125] = 0x02;
  const std::string version_msg = input_error_of([&] { parse_mat5("v.mat", bad_version); });
  CHECK_MESSAGE(contains(version_msg, "v.mat: unsupported MAT-file version 0x0200"), version_msg);

  const std::string missing = input_error_of([&] { load_svhn(tmp.file("absent.mat")); });
  CHECK_MESSAGE(contains(missing, tmp.file("absent.mat") + ": cannot open"), missing);
}

TEST_CASE("mat5: a file cut anywhere is an InputError naming the file") {
  const fx::U8Images im = fx::make_u8_images(2, 3, 32, 32, 10, 60);
  for (bool compressed : {false, true}) {
    CAPTURE(compressed);
    const std::string good = fx::svhn_mat_bytes(im, compressed);
    std::vector<size_t> cuts = {0, 10, 60, 127, 128, 132, 136, 140, 150, 200, good.size() / 2, good.size() - 1};
    for (size_t at = 129; at < good.size(); at += 97) cuts.push_back(at);
    test::TempDir tmp("mat5-cut");
    const std::string path = tmp.file("cut.mat");
    for (size_t cut : cuts) {
      CAPTURE(cut);
      test::write_bytes(path, good.substr(0, cut));
      const std::string msg = input_error_of([&] { load_svhn(path); });
      CHECK_MESSAGE(contains(msg, path), msg);
      CHECK_MESSAGE(!contains(msg, "wrong exception"), msg);
    }
    // The message says what was cut.
    const std::string mid_header = input_error_of([&] { parse_mat5("h.mat", good.substr(0, 60)); });
    CHECK_MESSAGE(contains(mid_header, "h.mat: truncated: a level-5 MAT file starts with a 128-byte header"),
                  mid_header);
    const std::string mid_tag = input_error_of([&] { parse_mat5("t.mat", good.substr(0, 132)); });
    CHECK_MESSAGE(contains(mid_tag, "t.mat: truncated: a data element tag needs 4 bytes but only 0 remain"), mid_tag);
    const std::string mid_data = input_error_of([&] { parse_mat5("d.mat", good.substr(0, 1000)); });
    CHECK_MESSAGE(contains(mid_data, "d.mat: truncated: a data element of type " +
                                         std::string(compressed ? "miCOMPRESSED" : "miMATRIX") + " declares"),
                  mid_data);
  }
  // A zlib stream cut short inside a correctly sized element.
  const std::string elements = x_matrix(im) + y_matrix(im);
  std::string packed = fx::mat5_compressed(elements);
  const std::string stream = packed.substr(8);
  const std::string short_stream = stream.substr(0, stream.size() / 2);
  const std::string cut_zlib = fx::mat5_header() + le32(miCOMPRESSED) + le32(static_cast<uint32_t>(short_stream.size())) +
                               short_stream;
  const std::string msg = input_error_of([&] { parse_mat5("z.mat", cut_zlib); });
  CHECK_MESSAGE(contains(msg, "z.mat: truncated zlib data in the miCOMPRESSED element at byte 128"), msg);
}

TEST_CASE("mat5: corrupt zlib data, trailing bytes and the decompression cap") {
  const fx::U8Images im = fx::make_u8_images(2, 3, 32, 32, 10, 61);
  const std::string good = fx::svhn_mat_bytes(im, true);
  std::string flipped = good;
  flipped[128 + 8 + 2] = static_cast<char>(flipped[128 + 8 + 2] ^ 0x55);
  flipped[128 + 8 + 3] = static_cast<char>(flipped[128 + 8 + 3] ^ 0xAA);
  const std::string corrupt = input_error_of([&] { svhn_of("c.mat", flipped); });
  CHECK_MESSAGE(contains(corrupt, "c.mat"), corrupt);
  // A wrong checksum at the end of the stream.
  const std::string packed = fx::mat5_compressed(x_matrix(im));
  std::string bad_sum = fx::mat5_header() + packed;
  bad_sum.back() = static_cast<char>(bad_sum.back() ^ 1);
  const std::string sum_msg = input_error_of([&] { parse_mat5("s.mat", bad_sum); });
  CHECK_MESSAGE(contains(sum_msg, "s.mat: corrupt zlib data in the miCOMPRESSED element at byte 128"), sum_msg);

  const std::string stream = packed.substr(8) + "xyz";
  const std::string trailing =
      fx::mat5_header() + le32(miCOMPRESSED) + le32(static_cast<uint32_t>(stream.size())) + stream;
  const std::string trailing_msg = input_error_of([&] { parse_mat5("t.mat", trailing); });
  CHECK_MESSAGE(contains(trailing_msg, "t.mat: 3 bytes follow the end of the zlib stream"), trailing_msg);

  // 6 KB of X is over a 4000-byte cap; the cap covers all compressed elements together.
  const std::string cap_msg = input_error_of([&] { parse_mat5("cap.mat", good, 4000); });
  CHECK_MESSAGE(contains(cap_msg, "cap.mat: decompressing the miCOMPRESSED element at byte 128 exceeds the limit"),
                cap_msg);
  // X decompresses to 6208 bytes (tag 8, flags 16, dims 24, name 8, data tag 8 + 6144) and y to 72 (tag 8, flags
  // 16, dims 16, name 8, data tag 8 + 16): a cap of exactly their sum passes, one byte less does not.
  CHECK(parse_mat5("cap.mat", good, 6208 + 72).size() == 2);
  const std::string y_over = input_error_of([&] { parse_mat5("cap.mat", good, 6208 + 71); });
  const size_t y_at = 128 + fx::mat5_compressed(x_matrix(im)).size();
  CHECK_MESSAGE(contains(y_over, "cap.mat: decompressing the miCOMPRESSED element at byte " + std::to_string(y_at) +
                                     " exceeds the limit"),
                y_over);

  // A zip bomb: 16 MiB of zeros declared as one uint8 array, against a 1 MiB cap.
  const std::string bomb_matrix = fx::mat5_matrix("X", mxUINT8, {4096, 4096}, miUINT8, std::string(size_t(16) << 20, '\0'));
  const std::string bomb = fx::mat5_header() + fx::mat5_compressed(bomb_matrix);
  REQUIRE(bomb.size() < 100000);
  const std::string bomb_msg = input_error_of([&] { parse_mat5("bomb.mat", bomb, size_t(1) << 20); });
  CHECK_MESSAGE(contains(bomb_msg, "bomb.mat: decompressing"), bomb_msg);
  CHECK_MESSAGE(contains(bomb_msg, "limit"), bomb_msg);
}

TEST_CASE("mat5: dimensions that overflow or exceed the data are refused before allocating") {
  const std::string header = fx::mat5_header();
  struct Case {
    const char* label;
    std::string element;
    const char* expect;
  };
  const std::vector<Case> cases = {
      // 2^64 elements: the product overflows 64 bits.
      {"overflow", fx::mat5_matrix("X", mxUINT8, {65536, 65536, 65536, 65536}, miUINT8, "abcd"),
       "needs more elements than the"},
      // Fits in 64 bits, but would need exabytes.
      {"huge", fx::mat5_matrix("X", mxDOUBLE, {2147483647, 2147483647, 3}, miDOUBLE, fx::mat5_encode({1}, miDOUBLE)),
       "needs more elements than the"},
      {"negative", fx::mat5_matrix("X", mxUINT8, {32, -1}, miUINT8, "abcd"), "array dimension -1 is negative"},
      {"one dim", fx::mat5_matrix("X", mxUINT8, {4}, miUINT8, "abcd"), "at least 2 values"},
      {"count mismatch", fx::mat5_matrix("X", mxUINT8, {32, 32, 3, 1}, miUINT8, std::string(6144, 'a')),
       "array 'X' (uint8 32x32x3x1) has 3072 elements but its real part holds 6144 bytes of miUINT8"},
      // Fewer bytes than elements is caught before the real part is even read.
      {"short data", fx::mat5_matrix("X", mxUINT8, {32, 32, 3, 2}, miUINT8, std::string(3072, 'a')),
       "array 'X' (uint8 32x32x3x2) needs more elements than the"},
      {"odd bytes", fx::mat5_matrix("y", mxDOUBLE, {1, 1}, miDOUBLE, "abcdefg"), "has 1 elements but its real part"},
      {"flags", fx::mat5_element(miMATRIX, fx::mat5_element(miDOUBLE, "12345678")), "array flags"},
      {"class", fx::mat5_element(miMATRIX, fx::mat5_element(miUINT32, le32(99) + le32(0))), "unknown array class 99"},
      {"real type", fx::mat5_matrix("X", mxUINT8, {1, 1}, miMATRIX, "abcdefgh"), "not a numeric type"},
      {"not uint8", fx::mat5_matrix("X", mxUINT8, {1, 2}, miDOUBLE, fx::mat5_encode({3, 300}, miDOUBLE)),
       "element 1 of uint8 array 'X' (uint8 1x2) is 300, not a uint8 value"},
      {"tag size", le32(miMATRIX) + le32(0x7FFFFFF0) + std::string(64, '\0'), "declares 2147483632 bytes"},
      {"small size", le32((6u << 16) | miINT8) + "abcd", "claims 6 bytes; at most 4 fit"},
      {"top-level type", fx::mat5_element(99, "abcdefgh"), "unexpected data element of unknown type 99"},
  };
  test::TempDir tmp("mat5-dims");
  for (const Case& c : cases) {
    CAPTURE(c.label);
    const std::string path = tmp.file(std::string(c.label) + ".mat");
    test::write_bytes(path, header + c.element);
    const std::string msg = input_error_of([&] { read_mat5(path); });
    CHECK_MESSAGE(contains(msg, path + ": "), msg);
    CHECK_MESSAGE(contains(msg, c.expect), msg);
    // The same inside a compressed element.
    const std::string packed_msg = input_error_of([&] { parse_mat5("p.mat", header + fx::mat5_compressed(c.element)); });
    CHECK_MESSAGE(contains(packed_msg, "p.mat (in the data decompressed from the miCOMPRESSED element at byte 128)"),
                  packed_msg);
    CHECK_MESSAGE(contains(packed_msg, c.expect), packed_msg);
  }
}

// Found by fuzz_mat5: a zero dimension after dimensions whose product overflows is an empty array, not an internal
// error when its element count is asked for.
TEST_CASE("mat5: a zero dimension after huge ones is an empty array") {
  const std::string header = fx::mat5_header();
  const std::vector<MatArray> arrays =
      parse_mat5("z.mat", header + fx::mat5_matrix("y", mxDOUBLE, {2147483647, 2147483647, 2147483647, 0}, miDOUBLE, ""));
  REQUIRE(arrays.size() == 1);
  CHECK(arrays[0].numel() == 0);
  // As SVHN's labels it is the wrong shape, which is an InputError, not a crash.
  const std::string msg = input_error_of([&] {
    svhn_from_mat("z.mat",
                  parse_mat5("z.mat", header +
                                          fx::mat5_matrix("X", mxUINT8, {32, 32, 3, 1}, miUINT8, std::string(3072, 'a')) +
                                          fx::mat5_matrix("y", mxDOUBLE, {2147483647, 2147483647, 2147483647, 0},
                                                          miDOUBLE, "")));
  });
  CHECK_MESSAGE(contains(msg, "array 'y'"), msg);
}

TEST_CASE("svhn: wrong classes, shapes, missing arrays and bad labels are refused naming the array") {
  const fx::U8Images im = fx::make_u8_images(3, 3, 32, 32, 10, 70);
  const std::string header = fx::mat5_header();
  const std::string x = x_matrix(im), y = y_matrix(im);
  auto svhn_error = [&](const std::string& body) { return input_error_of([&] { svhn_of("s.mat", header + body); }); };

  const std::string x_double = fx::mat5_matrix("X", mxDOUBLE, {32, 32, 3, 3}, miUINT8, svhn_x(im));
  CHECK(contains(svhn_error(x_double + y), "s.mat: array 'X' is of class double; SVHN's X is uint8 32x32x3xN"));

  const fx::U8Images gray = fx::make_u8_images(3, 1, 28, 28, 10, 71);
  const std::string x_gray = fx::mat5_matrix("X", mxUINT8, {28, 28, 1, 3}, miUINT8, std::string(gray.pixels.begin(), gray.pixels.end()));
  CHECK(contains(svhn_error(x_gray + y), "s.mat: array 'X' has dimensions 28x28x1x3; SVHN's X is 32x32x3xN"));

  const std::string y_char = fx::mat5_matrix("y", mxCHAR, {3, 1}, miUINT16, fx::mat5_encode({49, 50, 51}, miUINT16));
  const std::string no_y = svhn_error(x + y_char);
  CHECK_MESSAGE(contains(no_y, "s.mat: no array named 'y'"), no_y);
  CHECK_MESSAGE(contains(no_y, "numeric arrays found: X (uint8 32x32x3x3)"), no_y);
  const std::string no_x = svhn_error(y);
  CHECK_MESSAGE(contains(no_x, "s.mat: no array named 'X'"), no_x);
  CHECK_MESSAGE(contains(no_x, "found: y (double 3x1)"), no_x);
  const std::string complex_x = fx::mat5_matrix("X", mxUINT8, {32, 32, 3, 3}, miUINT8, svhn_x(im), false, svhn_x(im));
  CHECK(contains(svhn_error(complex_x + y), "no array named 'X'"));
  CHECK(contains(svhn_error(""), "numeric arrays found: none"));

  const std::string y_long = fx::mat5_matrix("y", mxDOUBLE, {4, 1}, miDOUBLE, fx::mat5_encode({1, 2, 3, 4}, miDOUBLE));
  CHECK(contains(svhn_error(x + y_long), "s.mat: array 'y' has dimensions 4x1; expected 3x1"));
  const fx::U8Images four = fx::make_u8_images(4, 3, 32, 32, 10, 72);
  const std::string y_square = fx::mat5_matrix("y", mxDOUBLE, {2, 2}, miDOUBLE, fx::mat5_encode({1, 2, 3, 4}, miDOUBLE));
  CHECK(contains(svhn_error(x_matrix(four) + y_square), "array 'y' has dimensions 2x2"));

  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double bad : {0.0, 11.0, 2.5, -1.0, nan}) {
    CAPTURE(bad);
    std::vector<double> labels = svhn_y(im);
    labels[1] = bad;
    const std::string y_bad = fx::mat5_matrix("y", mxDOUBLE, {3, 1}, miDOUBLE, fx::mat5_encode(labels, miDOUBLE));
    const std::string msg = svhn_error(x + y_bad);
    CHECK_MESSAGE(contains(msg, "s.mat: y(2) (label index 1) is "), msg);
    CHECK_MESSAGE(contains(msg, "SVHN labels are integers 1..10"), msg);
  }
  std::vector<double> labels = svhn_y(im);
  labels[2] = 2.5;
  const std::string y_half = fx::mat5_matrix("y", mxDOUBLE, {3, 1}, miDOUBLE, fx::mat5_encode(labels, miDOUBLE));
  CHECK(contains(svhn_error(x + y_half), "y(3) (label index 2) is 2.5"));
  // A uint8 y is read too, and range-checked the same way.
  const std::string y_u8 = fx::mat5_matrix("y", mxUINT8, {3, 1}, miUINT8, std::string("\x01\x0b\x02", 3));
  CHECK(contains(svhn_error(x + y_u8), "y(2) (label index 1) is 11"));

  // svhn_from_mat on arrays built by hand: X whose bytes disagree with its dimensions.
  MatArray bad_x;
  bad_x.name = "X";
  bad_x.cls = MatClass::UInt8;
  bad_x.dims = {32, 32, 3, 2};
  bad_x.u8 = std::string(100, '\0');
  MatArray good_y;
  good_y.name = "y";
  good_y.dims = {2, 1};
  good_y.values = {1, 2};
  CHECK_THROWS_AS(svhn_from_mat("hand.mat", {bad_x, good_y}), InputError);
}

TEST_CASE("mat5: random mutations of SVHN files either parse or raise InputError") {
  const fx::U8Images im = fx::make_u8_images(2, 3, 32, 32, 10, 80);
  const std::string plain = fx::svhn_mat_bytes(im, false);
  const std::string packed = fx::svhn_mat_bytes(im, true);
  test::Rng rng(4242);
  int parsed = 0, refused = 0;
  std::string failure;
  for (int iter = 0; iter < 900 && failure.empty(); ++iter) {
    // Three kinds of file: a plain one, a compressed one mutated after compression, and one whose elements are
    // mutated and then compressed (so the mutations reach the parser through zlib).
    const int kind = iter % 3;
    std::string bytes = kind == 1 ? packed : plain;
    const size_t lo = kind == 2 ? 128 : 0;
    const int64_t op = rng.integer(0, 3);
    if (op <= 1) {
      for (int64_t k = rng.integer(1, 6); k > 0; --k) {
        // Most of the structure (tags, flags, dims, names) sits in the first bytes of each element.
        const bool near_structure = rng.integer(0, 1) == 1;
        const int64_t hi = near_structure ? std::min<int64_t>(int64_t(bytes.size()) - 1, 260)
                                          : int64_t(bytes.size()) - 1;
        const auto at = static_cast<size_t>(rng.integer(static_cast<int64_t>(lo), hi));
        if (op == 0) bytes[at] = static_cast<char>(rng.integer(0, 255));
        else bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.integer(0, 7)));
      }
    } else if (op == 2) {
      bytes.resize(static_cast<size_t>(rng.integer(static_cast<int64_t>(lo), int64_t(bytes.size()))));
    } else {
      const auto at = static_cast<size_t>(rng.integer(static_cast<int64_t>(lo), int64_t(bytes.size())));
      bytes.insert(at, std::string(static_cast<size_t>(rng.integer(1, 16)), static_cast<char>(rng.integer(0, 255))));
    }
    if (kind == 2) bytes = bytes.substr(0, 128) + fx::mat5_compressed(bytes.substr(128));
    try {
      const Dataset d = svhn_of("mutant.mat", bytes, size_t(1) << 24);
      ++parsed;
      for (int64_t i = 0; i < d.size(); ++i)
        if (d.labels.i64()[i] < 0 || d.labels.i64()[i] > 9) failure = "label out of range";
    } catch (const InputError& e) {
      ++refused;
      if (!contains(e.what(), "mutant.mat")) failure = std::string("message lacks the file: ") + e.what();
    } catch (const std::exception& e) {
      failure = std::string("wrong exception: ") + e.what();
    }
    // parse_mat5 alone must behave the same way.
    try {
      parse_mat5("mutant.mat", bytes, size_t(1) << 24);
    } catch (const InputError&) {
    } catch (const std::exception& e) {
      failure = std::string("parse_mat5: wrong exception: ") + e.what();
    }
  }
  CHECK_MESSAGE(failure.empty(), failure);
  CHECK(parsed > 0);
  CHECK(refused > 0);
}

TEST_CASE("svhn: concat joins files in order, as train + extra are read") {
  const fx::U8Images a = fx::make_u8_images(3, 3, 32, 32, 10, 90), b = fx::make_u8_images(2, 3, 32, 32, 10, 91);
  Dataset first = svhn_of("train_32x32.mat", fx::svhn_mat_bytes(a, true));
  first.name = "svhn";
  first.mean = {0.5f, 0.5f, 0.5f};
  const Dataset both = concat({first, svhn_of("extra_32x32.mat", fx::svhn_mat_bytes(b, false))});
  CHECK(both.name == "svhn");
  CHECK(both.mean == first.mean);
  CHECK(both.source == "train_32x32.mat, extra_32x32.mat");
  fx::U8Images joined = a;
  joined.n = 5;
  joined.pixels.insert(joined.pixels.end(), b.pixels.begin(), b.pixels.end());
  joined.labels.insert(joined.labels.end(), b.labels.begin(), b.labels.end());
  check_same_images(both, joined);
  // Parts that disagree are a caller's bug.
  Dataset other_classes = first;
  other_classes.num_classes = 11;
  CHECK_THROWS_AS(concat({first, other_classes}), Error);
  CHECK_THROWS_AS(concat({}), Error);
}
