#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "datasets/cifar.h"
#include "tests/fixtures/write_formats.h"
#include "tests/format_checks.h"
#include "tests/test_util.h"

using namespace lethe;
namespace fx = lethe::fixtures;

using lethe::test::input_error_of;
using lethe::test::contains;
using lethe::test::check_rows;

namespace {


std::string cifar10_file_name(int batch) { return "data_batch_" + std::to_string(batch) + ".bin"; }

}  // namespace

TEST_CASE("cifar: CIFAR-10 train batches concatenate in order with exact pixels and labels") {
  test::TempDir tmp("cifar");
  const std::string dir = tmp.file("cifar10");
  fx::write_cifar10_dir(dir, 23, 7, 11);
  std::vector<std::string> files;
  for (int b = 1; b <= 5; ++b) files.push_back(dir + "/" + cifar10_file_name(b));
  // 23 records spread as 5, 5, 5, 4, 4.
  for (int b = 0; b < 5; ++b) CHECK(std::filesystem::file_size(files[static_cast<size_t>(b)]) == (b < 3 ? 5u : 4u) * 3073);

  const Dataset train = load_cifar(files, CifarVariant::Cifar10);
  CHECK(train.size() == 23);
  CHECK(train.num_classes == 10);
  CHECK(train.images.shape() == Shape{23, 3, 32, 32});
  check_rows(train, fx::make_u8_images(23, 3, 32, 32, 10, 11));

  const Dataset test = load_cifar({dir + "/test_batch.bin"}, CifarVariant::Cifar10);
  CHECK(test.size() == 7);
  check_rows(test, fx::make_u8_images(7, 3, 32, 32, 10, 12));

  // The order of the files given is the order of the records.
  const Dataset reversed = load_cifar({files[4], files[0]}, CifarVariant::Cifar10);
  const fx::U8Images all = fx::make_u8_images(23, 3, 32, 32, 10, 11);
  CHECK(reversed.size() == 9);
  const float* px = reversed.images.f32();
  CHECK(px[0] == static_cast<float>(all.at(19, 0, 0, 0)) / 255.0f);
  CHECK(px[4 * 3072] == static_cast<float>(all.at(0, 0, 0, 0)) / 255.0f);
  CHECK(reversed.labels.i64()[4] == all.labels[0]);
}

TEST_CASE("cifar: a hand-built record maps its red, green and blue planes row by row") {
  // Two records; pixel byte k of record r (k = c * 1024 + y * 32 + x) is (k * 7 + c * 13 + r * 101) % 256, which
  // differs between rows and columns, channels and records.
  std::string bytes;
  const int labels[2] = {7, 2};
  for (int r = 0; r < 2; ++r) {
    bytes += static_cast<char>(labels[r]);
    for (int k = 0; k < 3072; ++k) bytes += static_cast<char>((k * 7 + (k / 1024) * 13 + r * 101) % 256);
  }
  const Dataset d = parse_cifar("hand.bin", bytes, CifarVariant::Cifar10);
  REQUIRE(d.images.shape() == Shape{2, 3, 32, 32});
  CHECK(d.labels.i64()[0] == 7);
  CHECK(d.labels.i64()[1] == 2);
  int64_t mismatches = 0;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          const int k = c * 1024 + y * 32 + x;
          const float want = static_cast<float>((k * 7 + c * 13 + r * 101) % 256) / 255.0f;
          mismatches += d.images.f32()[((r * 3 + c) * 32 + y) * 32 + x] != want;
        }
  CHECK(mismatches == 0);
  // Spot checks: green (c = 1) row 2, column 5 is file byte 1 + 1024 + 69 of record 0.
  CHECK(d.images.f32()[(1 * 32 + 2) * 32 + 5] ==
        static_cast<float>(static_cast<unsigned char>(bytes[1 + 1024 + 69])) / 255.0f);
  CHECK(d.images.f32()[3072 + 5] == static_cast<float>(static_cast<unsigned char>(bytes[3073 + 1 + 5])) / 255.0f);
}

TEST_CASE("cifar: CIFAR-100 fine and coarse labels come from their own bytes") {
  const fx::U8Images im = fx::make_u8_images(9, 3, 32, 32, 100, 5);
  // Coarse labels unrelated to the fine ones, so reading the wrong byte shows.
  std::vector<int64_t> coarse;
  for (int64_t fine : im.labels) coarse.push_back((fine * 7 + 3) % 20);
  const std::string bytes = fx::cifar100_bytes(im, coarse);
  REQUIRE(bytes.size() == 9u * 3074);

  const Dataset fine = parse_cifar("train.bin", bytes, CifarVariant::Cifar100Fine);
  CHECK(fine.num_classes == 100);
  check_rows(fine, im);

  const Dataset coarse_set = parse_cifar("train.bin", bytes, CifarVariant::Cifar100Coarse);
  CHECK(coarse_set.num_classes == 20);
  fx::U8Images coarse_im = im;
  coarse_im.labels = coarse;
  check_rows(coarse_set, coarse_im);

  CHECK(cifar_num_classes(CifarVariant::Cifar10) == 10);
  CHECK(cifar_num_classes(CifarVariant::Cifar100Fine) == 100);
  CHECK(cifar_num_classes(CifarVariant::Cifar100Coarse) == 20);
  CHECK(cifar_record_bytes(CifarVariant::Cifar10) == 3073);
  CHECK(cifar_record_bytes(CifarVariant::Cifar100Fine) == 3074);
  CHECK(cifar_record_bytes(CifarVariant::Cifar100Coarse) == 3074);

  // The directory writer: coarse = fine / 5, both splits.
  test::TempDir tmp("cifar100");
  fx::write_cifar100_dir(tmp.file("c100"), 12, 4, 3);
  const fx::U8Images train_im = fx::make_u8_images(12, 3, 32, 32, 100, 3);
  check_rows(load_cifar({tmp.file("c100/train.bin")}, CifarVariant::Cifar100Fine), train_im);
  fx::U8Images train_coarse = train_im;
  for (int64_t& y : train_coarse.labels) y /= 5;
  check_rows(load_cifar({tmp.file("c100/train.bin")}, CifarVariant::Cifar100Coarse), train_coarse);
  check_rows(load_cifar({tmp.file("c100/test.bin")}, CifarVariant::Cifar100Fine),
             fx::make_u8_images(4, 3, 32, 32, 100, 4));
}

TEST_CASE("cifar: truncated and padded files are refused with the record arithmetic") {
  const std::string good = fx::cifar10_bytes(fx::make_u8_images(3, 3, 32, 32, 10, 1));
  test::TempDir tmp("cifar-trunc");
  const std::string path = tmp.file("data_batch_1.bin");
  struct Cut {
    size_t size;
    std::string expect;
  };
  const std::vector<Cut> cuts = {
      {0, "empty file"},
      {1, "0 whole records and a partial record of 1 bytes"},
      {3072, "a partial record of 3072 bytes"},
      {3073 + 100, "1 whole records and a partial record of 100 bytes"},
      {3 * 3073 - 1, "2 whole records and a partial record of 3072 bytes"},
  };
  for (const Cut& cut : cuts) {
    CAPTURE(cut.size);
    test::write_bytes(path, good.substr(0, cut.size));
    const std::string msg = input_error_of([&] { load_cifar({path}, CifarVariant::Cifar10); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, cut.expect), msg);
    if (cut.size > 0) {
      CHECK_MESSAGE(contains(msg, "length " + std::to_string(cut.size) + " bytes"), msg);
      CHECK_MESSAGE(contains(msg, "record size 3073"), msg);
    }
  }
  // Trailing bytes are as wrong as missing ones.
  const std::string padded = input_error_of([&] { parse_cifar("p.bin", good + "xy", CifarVariant::Cifar10); });
  CHECK_MESSAGE(contains(padded, "p.bin: length 9221 bytes"), padded);
  CHECK_MESSAGE(contains(padded, "partial record of 2 bytes"), padded);
}

TEST_CASE("cifar: a file of the other variant is recognised in the message") {
  const fx::U8Images im100 = fx::make_u8_images(3, 3, 32, 32, 100, 2);
  const std::string c100 = fx::cifar100_bytes(im100, std::vector<int64_t>(3, 4));
  const std::string as10 = input_error_of([&] { parse_cifar("train.bin", c100, CifarVariant::Cifar10); });
  CHECK_MESSAGE(contains(as10, "train.bin"), as10);
  CHECK_MESSAGE(contains(as10, "multiple of 3074"), as10);
  CHECK_MESSAGE(contains(as10, "looks like a CIFAR-100 file"), as10);

  const std::string c10 = fx::cifar10_bytes(fx::make_u8_images(2, 3, 32, 32, 10, 2));
  const std::string as100 = input_error_of([&] { parse_cifar("b.bin", c10, CifarVariant::Cifar100Fine); });
  CHECK_MESSAGE(contains(as100, "b.bin: length 6146 bytes is not a multiple of the CIFAR-100 record size 3074"),
                as100);
  CHECK_MESSAGE(contains(as100, "looks like a CIFAR-10 file"), as100);
}

TEST_CASE("cifar: out-of-range labels name the file, the record and its byte offset") {
  const fx::U8Images im10 = fx::make_u8_images(4, 3, 32, 32, 10, 3);
  for (int bad : {10, 255}) {
    std::string bytes = fx::cifar10_bytes(im10);
    bytes[2 * 3073] = static_cast<char>(bad);
    const std::string msg = input_error_of([&] { parse_cifar("data_batch_3.bin", bytes, CifarVariant::Cifar10); });
    CHECK_MESSAGE(contains(msg, "data_batch_3.bin: record 2 (byte offset 6146): label " + std::to_string(bad) +
                                    " is out of range 0..9"),
                  msg);
  }
  const fx::U8Images im100 = fx::make_u8_images(3, 3, 32, 32, 100, 3);
  const std::string c100 = fx::cifar100_bytes(im100, {1, 2, 3});
  // A bad coarse byte is refused even when the fine labels are used, and vice versa.
  std::string bad_coarse = c100;
  bad_coarse[3074] = 20;
  const std::string coarse_msg =
      input_error_of([&] { parse_cifar("train.bin", bad_coarse, CifarVariant::Cifar100Fine); });
  CHECK_MESSAGE(contains(coarse_msg, "train.bin: record 1 (byte offset 3074): coarse label 20 is out of range 0..19"),
                coarse_msg);
  std::string bad_fine = c100;
  bad_fine[1] = 100;
  const std::string fine_msg =
      input_error_of([&] { parse_cifar("test.bin", bad_fine, CifarVariant::Cifar100Coarse); });
  CHECK_MESSAGE(contains(fine_msg, "test.bin: record 0 (byte offset 1): fine label 100 is out of range 0..99"),
                fine_msg);
}

TEST_CASE("cifar: load_cifar names the bad or missing file among several") {
  test::TempDir tmp("cifar-files");
  const std::string good = tmp.file("data_batch_1.bin"), bad = tmp.file("data_batch_2.bin");
  test::write_bytes(good, fx::cifar10_bytes(fx::make_u8_images(2, 3, 32, 32, 10, 4)));
  std::string corrupt = fx::cifar10_bytes(fx::make_u8_images(2, 3, 32, 32, 10, 5));
  corrupt[3073] = 42;
  test::write_bytes(bad, corrupt);
  const std::string msg = input_error_of([&] { load_cifar({good, bad}, CifarVariant::Cifar10); });
  CHECK_MESSAGE(contains(msg, bad + ": record 1"), msg);
  CHECK_MESSAGE(!contains(msg, good), msg);
  const std::string missing = tmp.file("data_batch_9.bin");
  const std::string missing_msg = input_error_of([&] { load_cifar({good, missing}, CifarVariant::Cifar10); });
  CHECK_MESSAGE(contains(missing_msg, missing + ": cannot open (no such file)"), missing_msg);
}

TEST_CASE("cifar: random byte flips and truncations either parse or raise InputError") {
  test::Rng rng(20240611);
  const std::string c10 = fx::cifar10_bytes(fx::make_u8_images(3, 3, 32, 32, 10, 6));
  const fx::U8Images im100 = fx::make_u8_images(3, 3, 32, 32, 100, 6);
  const std::string c100 = fx::cifar100_bytes(im100, {0, 9, 19});
  int parsed = 0, refused = 0;
  std::string other_failure;
  for (int iter = 0; iter < 400; ++iter) {
    const CifarVariant v = iter % 3 == 0 ? CifarVariant::Cifar10
                                         : (iter % 3 == 1 ? CifarVariant::Cifar100Fine : CifarVariant::Cifar100Coarse);
    std::string bytes = iter % 2 == 0 ? c10 : c100;
    const int64_t record = iter % 2 == 0 ? 3073 : 3074;
    const int64_t op = rng.integer(0, 2);
    if (op == 0) {
      for (int64_t k = rng.integer(1, 8); k > 0; --k) {
        // Label bytes are where the interesting decisions are: hit them half the time.
        const auto at = static_cast<size_t>(rng.integer(0, 1) ? rng.integer(0, 2) * record + rng.integer(0, 1)
                                                              : rng.integer(0, int64_t(bytes.size()) - 1));
        bytes[std::min(at, bytes.size() - 1)] = static_cast<char>(rng.integer(0, 255));
      }
    } else if (op == 1) {
      bytes.resize(static_cast<size_t>(rng.integer(0, int64_t(bytes.size()))));
    } else {
      bytes += std::string(static_cast<size_t>(rng.integer(1, 4000)), static_cast<char>(rng.integer(0, 255)));
    }
    try {
      const Dataset d = parse_cifar("mutant.bin", bytes, v);
      ++parsed;
      for (int64_t i = 0; i < d.size(); ++i)
        if (d.labels.i64()[i] < 0 || d.labels.i64()[i] >= d.num_classes) other_failure = "label out of range";
    } catch (const InputError& e) {
      ++refused;
      if (!contains(e.what(), "mutant.bin")) other_failure = std::string("message lacks the file: ") + e.what();
    } catch (const std::exception& e) {
      other_failure = std::string("wrong exception: ") + e.what();
    }
  }
  CHECK_MESSAGE(other_failure.empty(), other_failure);
  CHECK(parsed > 0);
  CHECK(refused > 0);
}
