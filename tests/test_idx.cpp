#include <doctest/doctest.h>

#include "tests/test_util.h"
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "datasets/idx.h"
#include "datasets/registry.h"

namespace fs = std::filesystem;
using namespace lethe;

using lethe::test::input_error_of;
using lethe::test::contains;

namespace {

// A fresh directory per test, removed afterwards.
struct IdxTmpDir {
  fs::path path;
  IdxTmpDir() {
    static std::atomic<int> counter{0};
    const char* root = std::getenv("LETHE_TEST_TMP");
    const fs::path base = root && *root ? fs::path(root) : fs::temp_directory_path();
    path = base / ("lethe_idx_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~IdxTmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Sets (or unsets, for nullptr) an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const char* value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) old = v;
    if (value) ::setenv(n.c_str(), value, 1);
    else ::unsetenv(n.c_str());
  }
  ~ScopedEnv() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

// Changes the working directory for one scope (for the ./data/NAME search entry).
struct ScopedCwd {
  fs::path old;
  explicit ScopedCwd(const fs::path& dir) : old(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() {
    std::error_code ec;
    fs::current_path(old, ec);
  }
};

using test::read_bytes;
using test::write_bytes;

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  REQUIRE(f != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) > 0);
  REQUIRE(gzclose(f) == Z_OK);
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xFF), char((v >> 8) & 0xFF), char(v & 0xFF)};
}

// An idx images file of n images h x w whose pixel k (in file order) is (k * 37) % 256.
std::string idx_images(uint32_t n, uint32_t h, uint32_t w) {
  std::string s = be32(0x803) + be32(n) + be32(h) + be32(w);
  for (uint32_t k = 0; k < n * h * w; ++k) s += char((k * 37) % 256);
  return s;
}

std::string idx_labels(const std::vector<int>& labels) {
  std::string s = be32(0x801) + be32(static_cast<uint32_t>(labels.size()));
  for (int y : labels) s += char(y);
  return s;
}

// A loadable pair of images and labels (n = 3, 2x2) in `dir`, with the given base names.
void write_pair(const fs::path& dir, const std::string& images, const std::string& labels, bool gz_images,
                bool gz_labels, uint32_t n = 3) {
  fs::create_directories(dir);
  std::vector<int> ys;
  for (uint32_t i = 0; i < n; ++i) ys.push_back(int(i % 10));
  const std::string img = idx_images(n, 2, 2), lab = idx_labels(ys);
  if (gz_images) write_gzip((dir / (images + ".gz")).string(), img);
  else write_bytes((dir / images).string(), img);
  if (gz_labels) write_gzip((dir / (labels + ".gz")).string(), lab);
  else write_bytes((dir / labels).string(), lab);
}

void write_split(const fs::path& dir, const std::string& prefix, uint32_t n) {
  write_pair(dir, prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte", true, false, n);
}

}  // namespace

TEST_CASE("idx: raw and gzip files load to [N,1,H,W] pixels in [0,1] and i64 labels") {
  IdxTmpDir tmp;
  const std::string img = idx_images(3, 2, 4), lab = idx_labels({0, 9, 4});
  write_bytes(tmp.file("img"), img);
  write_bytes(tmp.file("lab"), lab);
  write_gzip(tmp.file("img.gz"), img);
  write_gzip(tmp.file("lab.gz"), lab);

  for (const auto& [ipath, lpath] : {std::pair{tmp.file("img"), tmp.file("lab")},
                                     std::pair{tmp.file("img.gz"), tmp.file("lab.gz")},
                                     std::pair{tmp.file("img.gz"), tmp.file("lab")}}) {
    CAPTURE(ipath);
    const Dataset d = load_idx_pair(ipath, lpath, 10);
    REQUIRE(d.images.shape() == Shape{3, 1, 2, 4});
    REQUIRE(d.labels.shape() == Shape{3});
    CHECK(d.labels.dtype() == DType::I64);
    CHECK(d.size() == 3);
    CHECK(d.num_classes == 10);
    CHECK(d.source == ipath);
    const float* px = d.images.f32();
    for (int k = 0; k < 24; ++k) CHECK(px[k] == float((k * 37) % 256) / 255.0f);
    CHECK(d.labels.i64()[0] == 0);
    CHECK(d.labels.i64()[1] == 9);
    CHECK(d.labels.i64()[2] == 4);
  }
}

TEST_CASE("idx: read_maybe_gzip returns raw bytes as-is and inflates gzip, including concatenated members") {
  IdxTmpDir tmp;
  std::string a(100000, '\0'), b = "tail";
  for (size_t i = 0; i < a.size(); ++i) a[i] = char((i * i) % 251);
  write_bytes(tmp.file("raw"), a);
  write_gzip(tmp.file("a.gz"), a);
  write_gzip(tmp.file("b.gz"), b);
  CHECK(read_maybe_gzip(tmp.file("raw")) == a);
  CHECK(read_maybe_gzip(tmp.file("a.gz")) == a);
  write_bytes(tmp.file("ab.gz"), read_bytes(tmp.file("a.gz")) + read_bytes(tmp.file("b.gz")));
  CHECK(read_maybe_gzip(tmp.file("ab.gz")) == a + b);
  // An exact fit under the cap is allowed.
  CHECK(read_maybe_gzip(tmp.file("a.gz"), a.size()) == a);
  CHECK(read_maybe_gzip(tmp.file("raw"), a.size()) == a);
}

TEST_CASE("idx: malformed files throw InputError naming the file and the defect") {
  IdxTmpDir tmp;
  const std::string good_labels = tmp.file("good-labels");
  write_bytes(good_labels, idx_labels({1, 2, 3}));
  const std::string good_images = tmp.file("good-images");
  write_bytes(good_images, idx_images(3, 2, 2));
  CHECK(load_idx_pair(good_images, good_labels, 10).size() == 3);

  auto images_error = [&](const std::string& name, const std::string& bytes) {
    const std::string path = tmp.file(name);
    write_bytes(path, bytes);
    const std::string msg = input_error_of([&] { load_idx_pair(path, good_labels, 10); });
    CHECK_MESSAGE(contains(msg, path), msg);
    return msg;
  };

  SUBCASE("bad magic") {
    const std::string msg = images_error("bad-magic", be32(0x804) + be32(3) + be32(2) + be32(2) + std::string(12, 0));
    CHECK_MESSAGE(contains(msg, "bad magic 0x00000804 (expected 0x00000803 for idx images)"), msg);
  }
  SUBCASE("a labels file where images are expected") {
    const std::string msg = images_error("swapped", idx_labels({1, 2, 3}));
    CHECK_MESSAGE(contains(msg, "bad magic 0x00000801 (expected 0x00000803 for idx images)"), msg);
    CHECK_MESSAGE(contains(msg, "looks like an idx labels file"), msg);
  }
  SUBCASE("truncated header") {
    CHECK_MESSAGE(contains(images_error("tiny", std::string("\0\0", 2)), "truncated header"), "2-byte file");
    const std::string msg = images_error("short-header", be32(0x803) + be32(3) + be32(2));
    CHECK_MESSAGE(contains(msg, "truncated header"), msg);
    CHECK_MESSAGE(contains(msg, "16-byte header"), msg);
  }
  SUBCASE("truncated data") {
    std::string bytes = idx_images(3, 2, 2);
    bytes.resize(bytes.size() - 5);
    const std::string msg = images_error("truncated", bytes);
    CHECK_MESSAGE(contains(msg, "need 12 data bytes"), msg);
    CHECK_MESSAGE(contains(msg, "has 7 (truncated)"), msg);
  }
  SUBCASE("trailing bytes") {
    const std::string msg = images_error("trailing", idx_images(3, 2, 2) + "xyz");
    CHECK_MESSAGE(contains(msg, "need 12 data bytes"), msg);
    CHECK_MESSAGE(contains(msg, "has 15 (3 trailing bytes)"), msg);
  }
  SUBCASE("absurd dimensions are refused before any allocation") {
    const std::string msg =
        images_error("absurd", be32(0x803) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF) + be32(1) + std::string(64, 1));
    CHECK_MESSAGE(contains(msg, "4294967295 x 4294967295 x 1 are absurd"), msg);
  }
  SUBCASE("a zero dimension") {
    const std::string msg = images_error("zero-dim", be32(0x803) + be32(3) + be32(0) + be32(2));
    CHECK_MESSAGE(contains(msg, "dimension 1 of idx images is 0"), msg);
  }
  SUBCASE("label out of range") {
    const std::string path = tmp.file("bad-labels");
    write_bytes(path, idx_labels({1, 9, 10}));
    const std::string msg = input_error_of([&] { load_idx_pair(good_images, path, 10); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "label 10 at index 2"), msg);
  }
  SUBCASE("image and label counts disagree") {
    const std::string path = tmp.file("two-labels");
    write_bytes(path, idx_labels({1, 2}));
    const std::string msg = input_error_of([&] { load_idx_pair(good_images, path, 10); });
    CHECK_MESSAGE(contains(msg, good_images + " has 3 images"), msg);
    CHECK_MESSAGE(contains(msg, path + " has 2 labels"), msg);
  }
  SUBCASE("missing file") {
    const std::string path = tmp.file("nope");
    const std::string msg = input_error_of([&] { load_idx_pair(path, good_labels, 10); });
    CHECK_MESSAGE(contains(msg, path), msg);
  }
}

TEST_CASE("idx: corrupt, truncated and oversized gzip throw InputError naming the file") {
  IdxTmpDir tmp;
  std::string content = idx_images(50, 28, 28);
  const std::string gz = tmp.file("images.gz");
  write_gzip(gz, content);
  const std::string packed = read_bytes(gz);
  REQUIRE(packed.size() > 64);

  SUBCASE("corrupt") {
    std::string bad = packed;
    for (size_t i = 20; i < 40; ++i) bad[i] = char(bad[i] ^ 0x5A);
    const std::string path = tmp.file("corrupt.gz");
    write_bytes(path, bad);
    const std::string msg = input_error_of([&] { read_maybe_gzip(path); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "corrupt gzip"), msg);
  }
  SUBCASE("checksum mismatch in the trailer") {
    std::string bad = packed;
    bad[bad.size() - 6] = char(bad[bad.size() - 6] ^ 0xFF);  // inside the CRC-32
    const std::string path = tmp.file("crc.gz");
    write_bytes(path, bad);
    const std::string msg = input_error_of([&] { read_maybe_gzip(path); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "corrupt gzip"), msg);
  }
  SUBCASE("truncated") {
    const std::string path = tmp.file("truncated.gz");
    write_bytes(path, packed.substr(0, packed.size() / 2));
    const std::string msg = input_error_of([&] { load_idx_pair(path, path, 10); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "truncated gzip"), msg);
  }
  SUBCASE("garbage after the stream") {
    const std::string path = tmp.file("trailing.gz");
    write_bytes(path, packed + "junk");
    const std::string msg = input_error_of([&] { read_maybe_gzip(path); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "trailing data"), msg);
  }
  SUBCASE("a gzip bomb stops at the cap") {
    // 16 MiB of zeros packs into a few KiB; the reader must stop at 1 MiB of output.
    const std::string path = tmp.file("bomb.gz");
    write_gzip(path, std::string(size_t(16) << 20, '\0'));
    REQUIRE(fs::file_size(path) < 100000);
    const std::string msg = input_error_of([&] { read_maybe_gzip(path, size_t(1) << 20); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "decompressed size exceeds the limit of 1048576 bytes"), msg);
  }
  SUBCASE("a raw file over the cap") {
    const std::string path = tmp.file("big");
    write_bytes(path, std::string(2000, 'x'));
    const std::string msg = input_error_of([&] { read_maybe_gzip(path, 1000); });
    CHECK_MESSAGE(contains(msg, path), msg);
    CHECK_MESSAGE(contains(msg, "over the limit of 1000"), msg);
  }
}

TEST_CASE("registry: parse_data_ref takes NAME or NAME:PATH and refuses unknown names") {
  const DataRef plain = parse_data_ref("fashion-mnist");
  CHECK(plain.name == "fashion-mnist");
  CHECK(plain.path.empty());
  const DataRef with_path = parse_data_ref("mnist:/some/dir:with:colons");
  CHECK(with_path.name == "mnist");
  CHECK(with_path.path == "/some/dir:with:colons");
  CHECK_THROWS_AS(parse_data_ref("cifar99"), UsageError);
  CHECK_THROWS_AS(parse_data_ref("mnist:"), UsageError);
  CHECK_THROWS_AS(parse_data_ref(":/tmp"), UsageError);
  CHECK_THROWS_AS(parse_data_ref(""), UsageError);
  CHECK_THROWS_AS(load_dataset(DataRef{"nope", ""}, Split::Train), UsageError);
  const std::vector<std::string> known = known_datasets();
  CHECK(std::find(known.begin(), known.end(), "mnist") != known.end());
  CHECK(std::find(known.begin(), known.end(), "fashion-mnist") != known.end());
}

TEST_CASE("registry: search order is $LETHE_DATA, ./data, /usr/share/datasets") {
  IdxTmpDir tmp;
  const fs::path env_root = tmp.path / "env", cwd = tmp.path / "cwd";
  fs::create_directories(env_root);
  fs::create_directories(cwd);
  ScopedCwd in_cwd(cwd);

  {
    ScopedEnv env("LETHE_DATA", env_root.string().c_str());
    const std::vector<std::string> dirs = data_search_path("mnist");
    REQUIRE(dirs.size() == 3);
    CHECK(dirs[0] == (env_root / "mnist").string());
    CHECK(dirs[1] == "./data/mnist");
    CHECK(dirs[2] == "/usr/share/datasets/mnist");
  }
  {
    ScopedEnv env("LETHE_DATA", nullptr);
    CHECK(data_search_path("mnist").size() == 2);
  }

  // Only ./data has it.
  write_split(cwd / "data" / "mnist", "train", 5);
  {
    ScopedEnv env("LETHE_DATA", env_root.string().c_str());
    const Dataset d = load_dataset(parse_data_ref("mnist"), Split::Train);
    CHECK(d.size() == 5);
    CHECK(d.source == "./data/mnist");
  }
  // $LETHE_DATA wins over ./data; raw and .gz names are both accepted.
  write_pair(env_root / "mnist", "train-images-idx3-ubyte", "train-labels-idx1-ubyte", false, true, 7);
  {
    ScopedEnv env("LETHE_DATA", env_root.string().c_str());
    const Dataset d = load_dataset(parse_data_ref("mnist"), Split::Train);
    CHECK(d.size() == 7);
    CHECK(d.source == (env_root / "mnist").string());
    CHECK(d.name == "mnist");
    CHECK(d.num_classes == 10);
    REQUIRE(d.mean.size() == 1);
    CHECK(d.mean[0] == doctest::Approx(0.1307));
    CHECK(d.std[0] == doctest::Approx(0.3081));
    CHECK(d.class_names.size() == 10);
  }
  // $LETHE_DATA also wins over the system copy of Fashion-MNIST.
  write_split(env_root / "fashion-mnist", "t10k", 4);
  {
    ScopedEnv env("LETHE_DATA", env_root.string().c_str());
    const Dataset d = load_dataset(parse_data_ref("fashion-mnist"), Split::Test);
    CHECK(d.size() == 4);
    CHECK(d.source == (env_root / "fashion-mnist").string());
    CHECK(d.mean[0] == doctest::Approx(0.2860));
    CHECK(d.std[0] == doctest::Approx(0.3530));
    REQUIRE(d.class_names.size() == 10);
    CHECK(d.class_names[0] == "T-shirt/top");
    CHECK(d.class_names[9] == "Ankle boot");
  }
}

TEST_CASE("registry: NAME:PATH reads PATH only") {
  IdxTmpDir tmp;
  write_split(tmp.path / "elsewhere", "t10k", 6);
  const Dataset d = load_dataset(parse_data_ref("mnist:" + (tmp.path / "elsewhere").string()), Split::Test);
  CHECK(d.size() == 6);
  CHECK(d.source == (tmp.path / "elsewhere").string());
  // The train split is not there: the error names PATH alone.
  const std::string msg =
      input_error_of([&] { load_dataset(parse_data_ref("mnist:" + tmp.path.string()), Split::Train); });
  CHECK_MESSAGE(contains(msg, tmp.path.string() + " (lacks train-images-idx3-ubyte[.gz], "
                                                  "train-labels-idx1-ubyte[.gz])"),
                msg);
  CHECK_MESSAGE(!contains(msg, "./data/mnist (no such directory)"), msg);  // only PATH is searched
  const std::string file = tmp.file("a-file");
  write_bytes(file, "not a directory");
  const std::string not_dir = input_error_of([&] { load_dataset(parse_data_ref("mnist:" + file), Split::Test); });
  CHECK_MESSAGE(contains(not_dir, file + " (not a directory)"), not_dir);
}

TEST_CASE("registry: not found lists every directory looked at, the files expected and how to get them") {
  IdxTmpDir tmp;
  ScopedCwd in_cwd(tmp.path);
  ScopedEnv env("LETHE_DATA", tmp.file("root").c_str());
  // A directory with only one of the two files.
  fs::create_directories(tmp.path / "root" / "mnist");
  write_bytes((tmp.path / "root" / "mnist" / "t10k-images-idx3-ubyte").string(), idx_images(1, 1, 1));

  const std::string msg = input_error_of([&] { load_dataset(parse_data_ref("mnist"), Split::Test); });
  CHECK_MESSAGE(contains(msg, "dataset 'mnist' (test split) not found"), msg);
  CHECK_MESSAGE(contains(msg, (tmp.path / "root" / "mnist").string() + " (lacks t10k-labels-idx1-ubyte[.gz])"), msg);
  CHECK_MESSAGE(contains(msg, "./data/mnist (no such directory)"), msg);
  CHECK_MESSAGE(contains(msg, "/usr/share/datasets/mnist"), msg);
  CHECK_MESSAGE(contains(msg, "expected files: t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"), msg);
  CHECK_MESSAGE(contains(msg, "./data/mnist (gzipped or not)"), msg);

  const std::string fashion = input_error_of(
      [&] { load_dataset(parse_data_ref("fashion-mnist:" + tmp.file("missing")), Split::Train); });
  CHECK_MESSAGE(contains(fashion, tmp.file("missing") + " (no such directory)"), fashion);
  CHECK_MESSAGE(contains(fashion, "apt-get install dataset-fashion-mnist"), fashion);
}

TEST_CASE("registry: the real Fashion-MNIST loads with 60000/10000 28x28 images and balanced classes") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    MESSAGE("SKIPPED: " << dir << " is absent (apt-get install dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_dataset(parse_data_ref("fashion-mnist:" + dir), Split::Train);
  const Dataset test = load_dataset(parse_data_ref("fashion-mnist:" + dir), Split::Test);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  for (const Dataset* d : {&train, &test}) {
    CHECK(d->channels() == 1);
    CHECK(d->height() == 28);
    CHECK(d->width() == 28);
    CHECK(d->num_classes == 10);
    const float* px = d->images.f32();
    float lo = 1, hi = 0;
    double sum = 0;
    for (int64_t i = 0; i < d->images.numel(); ++i) {
      lo = std::min(lo, px[i]);
      hi = std::max(hi, px[i]);
      sum += px[i];
    }
    CHECK(lo == 0.0f);
    CHECK(hi == 1.0f);
    // The published normalisation mean is the training set's pixel mean.
    if (d == &train) CHECK(sum / double(d->images.numel()) == doctest::Approx(0.2860).epsilon(0.001));
  }
  CHECK(class_counts(train) == std::vector<int64_t>(10, 6000));
  CHECK(class_counts(test) == std::vector<int64_t>(10, 1000));
}
