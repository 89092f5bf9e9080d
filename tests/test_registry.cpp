// The dataset registry over every official format: finding files (including the directory an archive unpacks to),
// load options (CIFAR-100 coarse labels, resize, SVHN extra), image folders with and without train/test, and
// default augmentation. The formats themselves are tested in test_cifar, test_mat5, test_stl10, test_image_folder.
#include <doctest/doctest.h>

#include <filesystem>

#include "datasets/image_folder.h"
#include "datasets/registry.h"
#include "engine/error.h"
#include "tests/fixtures/write_formats.h"
#include "tests/fixtures/write_images.h"
#include "tests/test_util.h"

using namespace lethe;
namespace fs = std::filesystem;
using lethe::test::TempDir;

using lethe::test::input_error_of;
using lethe::test::contains;

namespace {

// Pixel (i, c, y, x) of the fixture as the loader should return it.
float fixture_pixel(const fixtures::U8Images& im, int64_t i, int64_t c, int64_t y, int64_t x) {
  return static_cast<float>(im.at(i, c, y, x)) / 255.0f;
}

}  // namespace

TEST_CASE("registry: cifar10 loads all five batches in order, also from the archive's own directory") {
  TempDir tmp("registry");
  const fs::path root = tmp.path() / "cifar10" / "cifar-10-batches-bin";
  fixtures::write_cifar10_dir(root.string(), 23, 7, 5);
  const Dataset train = load_dataset(parse_data_ref("cifar10:" + (tmp.path() / "cifar10").string()), Split::Train);
  const Dataset test = load_dataset(parse_data_ref("cifar10:" + (tmp.path() / "cifar10").string()), Split::Test);
  CHECK(train.size() == 23);
  CHECK(test.size() == 7);
  CHECK(train.source == root.string());
  CHECK(train.images.shape() == Shape{23, 3, 32, 32});
  CHECK(train.num_classes == 10);
  CHECK(train.class_names[0] == "airplane");
  CHECK(train.class_names[9] == "truck");
  CHECK(train.mean.size() == 3);
  // The batches concatenate to the fixture's images in order.
  const fixtures::U8Images want = fixtures::make_u8_images(23, 3, 32, 32, 10, 5);
  bool same = true;
  for (int64_t i = 0; i < 23; ++i) {
    same = same && train.labels.i64()[i] == want.labels[static_cast<size_t>(i)];
    for (int64_t c = 0; c < 3; ++c) same = same && train.images.f32()[((i * 3 + c) * 32 + 5) * 32 + 9] ==
                                                       fixture_pixel(want, i, c, 5, 9);
  }
  CHECK(same);
  CHECK(default_augment("cifar10").name() == "crop+flip");
  CHECK(default_augment("cifar10").pad == 4);
  // One batch missing: the error lists it.
  fs::remove(root / "data_batch_3.bin");
  const std::string msg = input_error_of(
      [&] { load_dataset(parse_data_ref("cifar10:" + (tmp.path() / "cifar10").string()), Split::Train); });
  CHECK_MESSAGE(contains(msg, "data_batch_3.bin"), msg);
  CHECK_MESSAGE(contains(msg, "cifar-10-binary.tar.gz"), msg);
}

TEST_CASE("registry: cifar100 fine and coarse labels - --label coarse is refused elsewhere") {
  TempDir tmp("registry");
  fixtures::write_cifar100_dir(tmp.path().string(), 30, 10, 6);
  const DataRef ref = parse_data_ref("cifar100:" + tmp.path().string());
  const Dataset fine = load_dataset(ref, Split::Train);
  LoadOptions coarse_options;
  coarse_options.label = "coarse";
  const Dataset coarse = load_dataset(ref, Split::Train, coarse_options);
  CHECK(fine.num_classes == 100);
  CHECK(coarse.num_classes == 20);
  CHECK(fine.class_names.size() == 100);
  CHECK(coarse.class_names.size() == 20);
  CHECK(fine.class_names[99] == "worm");
  CHECK(coarse.class_names[19] == "vehicles_2");
  for (int64_t i = 0; i < 30; ++i) CHECK(coarse.labels.i64()[i] == fine.labels.i64()[i] / 5);  // fixture's rule
  CHECK_THROWS_AS(load_dataset(parse_data_ref("cifar10:" + tmp.path().string()), Split::Train, coarse_options),
                  UsageError);
}

TEST_CASE("registry: svhn train, test and extra - --with-extra appends extra to train") {
  TempDir tmp("registry");
  fixtures::write_svhn_dir(tmp.path().string(), 12, 5, 7);
  const DataRef ref = parse_data_ref("svhn:" + tmp.path().string());
  CHECK(load_dataset(ref, Split::Train).size() == 12);
  CHECK(load_dataset(ref, Split::Test).size() == 5);
  CHECK_FALSE(split_available(ref, Split::Extra));
  LoadOptions extra;
  extra.with_extra = true;
  CHECK_THROWS_AS(load_dataset(ref, Split::Train, extra), InputError);
  // An extra file in the official layout (another split's file under the extra name will do).
  fs::copy_file(tmp.path() / "test_32x32.mat", tmp.path() / "extra_32x32.mat");
  CHECK(split_available(ref, Split::Extra));
  const Dataset both = load_dataset(ref, Split::Train, extra);
  CHECK(both.size() == 17);
  CHECK(both.class_names[0] == "0");
  CHECK(default_augment("svhn").name() == "crop");  // digits are not mirror-symmetric
  CHECK(dataset_splits(ref).size() == 3);
}

TEST_CASE("registry: stl10 from its archive directory, and --resize to 32x32") {
  TempDir tmp("registry");
  fixtures::write_stl10_dir((tmp.path() / "stl10_binary").string(), 4, 3, 8);
  const DataRef ref = parse_data_ref("stl10:" + tmp.path().string());
  const Dataset full = load_dataset(ref, Split::Test);
  CHECK(full.images.shape() == Shape{3, 3, 96, 96});
  CHECK(full.class_names[7] == "monkey");
  LoadOptions small;
  small.resize = parse_image_size("32x32");
  const Dataset resized = load_dataset(ref, Split::Test, small);
  CHECK(resized.images.shape() == Shape{3, 3, 32, 32});
  Tensor first = Tensor::empty({3, 96, 96});
  std::copy_n(full.images.f32(), 3 * 96 * 96, first.f32());
  const Tensor want = resize_bilinear(first, small.resize);
  for (int64_t j = 0; j < 3 * 32 * 32; ++j) REQUIRE(resized.images.f32()[j] == want.f32()[j]);
  CHECK(default_augment("stl10").pad == 12);
}

TEST_CASE("registry: image folders with train/test directories, or a single train split") {
  TempDir tmp("registry");
  fixtures::write_image_folder((tmp.path() / "both" / "train").string(), 3, 4, 10, 12, 3, 1);
  fixtures::write_image_folder((tmp.path() / "both" / "test").string(), 3, 2, 10, 12, 3, 2);
  const DataRef both = parse_data_ref("folder:" + (tmp.path() / "both").string());
  const Dataset train = load_dataset(both, Split::Train);
  const Dataset test = load_dataset(both, Split::Test);
  CHECK(train.size() == 12);
  CHECK(test.size() == 6);
  CHECK(train.name == "folder");
  CHECK(train.class_names == test.class_names);
  CHECK(dataset_splits(both).size() == 2);
  CHECK_FALSE(default_augment("folder").enabled());

  fixtures::write_image_folder((tmp.path() / "flat").string(), 2, 3, 8, 8, 1, 3);
  const DataRef flat = parse_data_ref("folder:" + (tmp.path() / "flat").string());
  CHECK(load_dataset(flat, Split::Train).size() == 6);
  CHECK_FALSE(split_available(flat, Split::Test));
  const std::string msg = input_error_of([&] { load_dataset(flat, Split::Test); });
  CHECK_MESSAGE(contains(msg, "has no test split"), msg);

  // Test classes must match the train classes.
  fixtures::write_image_folder((tmp.path() / "mismatch" / "train").string(), 3, 2, 8, 8, 1, 4);
  fixtures::write_image_folder((tmp.path() / "mismatch" / "test").string(), 2, 2, 8, 8, 1, 5);
  CHECK_THROWS_AS(load_dataset(parse_data_ref("folder:" + (tmp.path() / "mismatch").string()), Split::Test),
                  InputError);
  CHECK_THROWS_AS(parse_data_ref("folder"), UsageError);
}

TEST_CASE("registry: every dataset name is known and reports how to get it when missing") {
  TempDir tmp("registry");
  for (const char* name : {"cifar10", "cifar100", "svhn", "stl10"}) {
    CAPTURE(name);
    const std::string msg =
        input_error_of([&] { load_dataset(parse_data_ref(std::string(name) + ":" + tmp.file("nothing")), Split::Train); });
    CHECK_MESSAGE(contains(msg, "not found"), msg);
    CHECK_MESSAGE(contains(msg, "expected files:"), msg);
    CHECK_MESSAGE(contains(msg, "to get it:"), msg);
  }
}
