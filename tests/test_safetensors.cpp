#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/safetensors.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace lethe;

namespace {

using test::read_bytes;
using test::write_bytes;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// A hand-made file: header length, JSON header, `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

void check_input_error(const std::string& path, const std::string& fragment) {
  try {
    (void)read_safetensors(path);
    FAIL("no error reading " << path);
  } catch (const InputError& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.rfind(path, 0) == 0, msg);  // every message starts with the path
    CHECK_MESSAGE(msg.find(fragment) != std::string::npos, msg);
    CHECK(e.code == ExitCode::BadInput);
  }
}

void check_raw(const lethe::test::TempDir& dir, const std::string& header, size_t data_bytes,
               const std::string& fragment) {
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, raw_file(header, data_bytes));
  check_input_error(path, fragment);
}

template <typename T>
bool bits_equal(const Tensor& a, const std::vector<T>& expected) {
  return a.nbytes() == expected.size() * sizeof(T) && std::memcmp(a.raw(), expected.data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("safetensors: round trip is bit-exact and keeps order, shapes and dtypes") {
  lethe::test::TempDir dir("safetensors");
  const std::string path = dir.file("rt.safetensors");

  const std::vector<float> weights = {0.0f, -0.0f, 1.5f, std::numeric_limits<float>::infinity(),
                                      std::numeric_limits<float>::denorm_min(), std::nanf("0x12345")};
  const std::vector<int64_t> labels = {0, -1, std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int64_t>::min()};
  Tensor scalar_i64 = Tensor::empty({}, DType::I64);
  *scalar_i64.i64() = 123456789012345;
  Tensor scalar_f32 = Tensor::empty({});
  *scalar_f32.f32() = -2.25f;
  // Written in an order that is not alphabetical, to check it survives.
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"z.weight", Tensor::from_vector(weights, {2, 3})},
      {"a.labels", Tensor::from_labels(labels)},
      {"bn.num_batches_tracked", scalar_i64},
      {"empty", Tensor::empty({0, 4})},
      {"m.scale", scalar_f32},
  };

  SUBCASE("empty metadata") {
    write_safetensors(path, tensors, {});
    const SafeTensorsFile f = read_safetensors(path);
    CHECK(f.metadata.empty());
    REQUIRE(f.tensors.size() == tensors.size());
  }
  SUBCASE("with metadata") {
    const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}, {"e", ""}};
    write_safetensors(path, tensors, meta);
    CHECK(read_safetensors(path).metadata == meta);
  }

  const SafeTensorsFile f = read_safetensors(path);
  // Offsets are contiguous in the given order, so file order (by offset) is the written order; "empty" has no
  // bytes and sits at the same offset as the scalar after it, so only the non-empty ones are order-checked.
  std::vector<std::string> nonempty_names;
  for (const auto& [name, t] : f.tensors)
    if (t.numel() > 0) nonempty_names.push_back(name);
  CHECK(nonempty_names == std::vector<std::string>{"z.weight", "a.labels", "bn.num_batches_tracked", "m.scale"});

  const Tensor* w = f.find("z.weight");
  REQUIRE(w != nullptr);
  CHECK(w->dtype() == DType::F32);
  CHECK(w->shape() == Shape{2, 3});
  CHECK(bits_equal(*w, weights));

  const Tensor* l = f.find("a.labels");
  REQUIRE(l != nullptr);
  CHECK(l->dtype() == DType::I64);
  CHECK(l->shape() == Shape{4});
  CHECK(bits_equal(*l, labels));

  const Tensor* s = f.find("bn.num_batches_tracked");
  REQUIRE(s != nullptr);
  CHECK(s->dtype() == DType::I64);
  CHECK(s->shape().empty());
  CHECK(*s->i64() == 123456789012345);

  const Tensor* sf = f.find("m.scale");
  REQUIRE(sf != nullptr);
  CHECK(sf->shape().empty());
  CHECK(*sf->f32() == -2.25f);

  const Tensor* e = f.find("empty");
  REQUIRE(e != nullptr);
  CHECK(e->shape() == Shape{0, 4});
  CHECK(f.find("missing") == nullptr);

  // Header padded with spaces to a multiple of 8, as the reference writer does.
  const std::string bytes = read_bytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len % 8 == 0);
  CHECK(bytes.size() == 8 + header_len + 6 * 4 + 4 * 8 + 8 + 4);
}

TEST_CASE("safetensors: write is atomic and replaces an existing file") {
  lethe::test::TempDir dir("safetensors");
  const std::string path = dir.file("model.safetensors");
  write_bytes(path, std::string(1000, 'x'));  // an older, unrelated file

  write_safetensors(path, {{"w", Tensor::from_vector({1, 2, 3}, {3})}}, {{"k", "v"}});
  const SafeTensorsFile f = read_safetensors(path);
  REQUIRE(f.find("w") != nullptr);
  CHECK(f.find("w")->to_vector() == std::vector<float>{1, 2, 3});
  CHECK(f.metadata.at("k") == "v");

  // Nothing but the target is left in the directory: no temporary file.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path())) names.push_back(entry.path().filename().string());
  CHECK(names == std::vector<std::string>{"model.safetensors"});

  SUBCASE("write_file_atomic replaces contents exactly") {
    write_file_atomic(path, "hello");
    CHECK(read_bytes(path) == "hello");
  }
  SUBCASE("a directory that does not exist is an I/O error naming the path, leaving nothing behind") {
    const std::string bad = dir.file("no_such_dir/model.safetensors");
    try {
      write_safetensors(bad, {{"w", Tensor::from_vector({1}, {1})}}, {});
      FAIL("no error writing into a missing directory");
    } catch (const InputError&) {
      FAIL("an I/O failure is not an input error");
    } catch (const Error& e) {
      CHECK(e.code == ExitCode::Other);
      CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
    CHECK(!fs::exists(dir.path() / "no_such_dir"));
  }
}

TEST_CASE("safetensors: malformed files are InputErrors naming the file and the defect") {
  lethe::test::TempDir dir("safetensors");
  const std::string path = dir.file("bad.safetensors");

  SUBCASE("missing file") { check_input_error(dir.file("nope.safetensors"), "cannot read"); }
  SUBCASE("shorter than the length prefix") {
    write_bytes(path, "abc");
    check_input_error(path, "truncated");
  }
  SUBCASE("empty file") {
    write_bytes(path, "");
    check_input_error(path, "truncated");
  }
  SUBCASE("cut inside the data") {
    write_safetensors(path, {{"w", Tensor::from_vector({1, 2, 3, 4}, {4})}}, {});
    const std::string bytes = read_bytes(path);
    write_bytes(path, bytes.substr(0, bytes.size() - 3));
    check_input_error(path, "past the end of the data");
  }
  SUBCASE("cut inside the header") {
    write_safetensors(path, {{"w", Tensor::from_vector({1, 2, 3, 4}, {4})}}, {});
    write_bytes(path, read_bytes(path).substr(0, 20));
    check_input_error(path, "out of bounds");
  }
  SUBCASE("header length past the end of the file") {
    write_bytes(path, le64(1000) + "{}");
    check_input_error(path, "header length 1000 is out of bounds");
  }
  SUBCASE("absurd header length") {
    write_bytes(path, le64(uint64_t{1} << 60) + std::string(64, ' '));
    check_input_error(path, "out of bounds");
  }
  SUBCASE("header length too small") {
    write_bytes(path, le64(1) + "{}");
    check_input_error(path, "out of bounds");
  }
  SUBCASE("malformed JSON") { check_raw(dir, "{\"w\": {\"dtype\": \"F32\",", 0, "malformed JSON header"); }
  SUBCASE("a number JSON cannot hold") {
    check_raw(dir, R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", 4, "malformed JSON header");
  }
  SUBCASE("header is not an object") { check_raw(dir, "[1, 2, 3]", 0, "not an object"); }
  SUBCASE("entry is not an object") { check_raw(dir, "{\"w\": 5}", 0, "'w'"); }
  SUBCASE("unknown dtype F16") {
    check_raw(dir, R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4, "\"F16\"");
  }
  SUBCASE("unknown dtype BF16") {
    check_raw(dir, R"({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})", 4,
              "tensor 'w': unsupported dtype \"BF16\"");
  }
  SUBCASE("missing dtype") { check_raw(dir, R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, "dtype"); }
  SUBCASE("shape and offsets disagree") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 16,
              "span 12 bytes but F32 [2,2] needs 16");
  }
  SUBCASE("negative dimension") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4, "non-negative");
  }
  SUBCASE("non-integer dimension") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4, "non-negative");
  }
  SUBCASE("element count overflows") {
    check_raw(dir,
              R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}})",
              4, "too many elements");
  }
  SUBCASE("offsets past the end of the data") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8, "past the end");
  }
  SUBCASE("begin after end") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8, "begin > end");
  }
  SUBCASE("offsets are not a pair") {
    check_raw(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 8, "data_offsets");
  }
  SUBCASE("overlapping tensors") {
    check_raw(dir,
              R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
              12, "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  }
  SUBCASE("a tensor inside another") {
    check_raw(dir,
              R"({"big": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                  "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                  "y": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
              16, "'big'");
  }
  SUBCASE("non-string metadata value") {
    check_raw(dir, R"({"__metadata__": {"epochs": 3}})", 0, "\"epochs\" is not a string");
  }
  SUBCASE("metadata not an object") { check_raw(dir, R"({"__metadata__": "pt"})", 0, "not a JSON object"); }
}

TEST_CASE("safetensors: zero-size tensors may share an offset and a valid hand-made file reads") {
  lethe::test::TempDir dir("safetensors");
  const std::string path = dir.file("ok.safetensors");
  const float values[2] = {3.0f, -4.0f};
  std::string data(reinterpret_cast<const char*>(values), sizeof values);
  const std::string header =
      R"({"__metadata__":{"a":"b"},"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
      R"("e2":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]},"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_bytes(path, le64(header.size()) + header + data);
  const SafeTensorsFile f = read_safetensors(path);
  CHECK(f.tensors.size() == 3);
  REQUIRE(f.find("v") != nullptr);
  CHECK(f.find("v")->to_vector() == std::vector<float>{3.0f, -4.0f});
  CHECK(f.find("e2")->shape() == Shape{3, 0});
  CHECK(f.metadata.at("a") == "b");
}
