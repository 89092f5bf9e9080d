#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "engine/safetensors.h"
#include "nets/model_io.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using lethe::test::Rng;
using lethe::test::TempDir;

namespace {

ModelSpec mlp_spec() {
  ModelSpec spec;
  spec.arch = "mlp";
  spec.channels = 2;
  spec.height = 5;
  spec.width = 4;
  spec.num_classes = 3;
  spec.hidden = {7, 5};
  spec.mean = {0.1f, 0.7f};
  spec.std = {0.3f, 1.0f / 3.0f};  // not a short decimal: the metadata must round-trip it exactly
  return spec;
}

void check_same_spec(const ModelSpec& a, const ModelSpec& b) {
  CHECK(a.arch == b.arch);
  CHECK(a.channels == b.channels);
  CHECK(a.height == b.height);
  CHECK(a.width == b.width);
  CHECK(a.num_classes == b.num_classes);
  CHECK(a.hidden == b.hidden);
  CHECK(a.base_channels == b.base_channels);
  CHECK(a.mean == b.mean);
  CHECK(a.std == b.std);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ha = a.to_cpu(), hb = b.to_cpu();
  return ha.dtype() == hb.dtype() && ha.shape() == hb.shape() &&
         std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}

void check_same_state(const Model& a, const Model& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].first == sb[i].first);
    CHECK_MESSAGE(same_bits(sa[i].second, sb[i].second), sa[i].first);
  }
}

// Saves, loads, and checks the loaded model is the same model: spec, every tensor bit for bit, provenance, logits.
void round_trip(const ModelSpec& spec, uint64_t seed) {
  auto be = make_cpu_backend(1);
  auto model = make_model(spec, *be, seed);
  model->metadata()["dataset"] = "fashion-mnist";
  model->metadata()["seed"] = seed;
  model->metadata()["train"] = {{"epochs", 2}, {"lr", 0.01}};

  TempDir dir("model_io");
  const std::string path = dir.file(spec.arch + ".safetensors");
  save_model(*model, path);
  auto loaded = load_model(path, *be);

  check_same_spec(loaded->spec(), spec);
  check_same_state(*model, *loaded);
  CHECK(loaded->metadata() == model->metadata());

  Rng rng(seed);
  const Tensor x = lethe::test::random_tensor(spec.input_shape(5), rng, 0.0f, 1.0f);
  Tensor logits_a, logits_b;
  model->infer_logits(x, logits_a);
  loaded->infer_logits(x, logits_b);
  CHECK(logits_a.shape() == Shape{5, spec.num_classes});
  CHECK(same_bits(logits_a, logits_b));

  // The metadata keys other tools (the PyTorch cross-check) rely on.
  const SafeTensorsFile file = read_safetensors(path);
  CHECK(file.metadata.at("format") == "pt");
  CHECK(file.metadata.at("arch") == spec.arch);
  CHECK(file.metadata.at("num_classes") == std::to_string(spec.num_classes));
  CHECK(file.metadata.at("input_shape") == "[" + std::to_string(spec.channels) + "," + std::to_string(spec.height) +
                                               "," + std::to_string(spec.width) + "]");
  CHECK(file.metadata.count("lethe_version") == 1);
  CHECK(file.metadata.count("hidden") == (spec.arch == "mlp" ? 1u : 0u));
  // Absent at the default width, so those files are the same bytes as before the field existed.
  CHECK(file.metadata.count("base_channels") == (spec.base_channels != 0 ? 1u : 0u));
}

// Writes the lenet5 state dict after `edit`, with the metadata of a real save; returns the file's path.
template <typename Edit>
std::string edited_file(const TempDir& dir, const Model& model, Edit edit) {
  const std::string good = dir.file("good.safetensors");
  save_model(model, good);
  SafeTensorsFile file = read_safetensors(good);
  std::vector<std::pair<std::string, Tensor>> tensors = model.state_dict();
  edit(tensors, file.metadata);
  const std::string path = dir.file("edited.safetensors");
  write_safetensors(path, tensors, file.metadata);
  return path;
}

void replace(std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& name, Tensor t) {
  for (auto& [n, v] : tensors)
    if (n == name) v = std::move(t);
}

// Loading `path` fails with an InputError whose message names the file and contains every fragment.
void check_load_error(const std::string& path, Backend& be, const std::vector<std::string>& fragments) {
  try {
    (void)load_model(path, be);
    FAIL("no error loading " << path);
  } catch (const InputError& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.find(path) != std::string::npos, msg);
    for (const std::string& f : fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, msg);
  }
}

}  // namespace

TEST_CASE("model_io: lenet5 round trip keeps every tensor, the provenance and the logits") { round_trip(test::lenet5_spec(), 11); }

TEST_CASE("model_io: mlp round trip keeps hidden widths and exact normalisation") { round_trip(mlp_spec(), 12); }

TEST_CASE("model_io: a base channel width round-trips") {
  for (const char* arch : {"convnet", "resnet18"}) {
    INFO(arch);
    ModelSpec spec;
    spec.arch = arch;
    spec.height = spec.width = 9;
    spec.base_channels = 4;
    round_trip(spec, 13);
  }
}

TEST_CASE("model_io: a bad base channel width in a file is an input error") {
  auto be = make_cpu_backend(1);
  ModelSpec spec;
  spec.arch = "convnet";
  spec.height = spec.width = 9;
  spec.base_channels = 4;
  auto model = make_model(spec, *be, 5);
  TempDir dir("model_io_base");
  const auto with_base = [&](const std::string& value) {
    return edited_file(dir, *model, [&](auto&, std::map<std::string, std::string>& metadata) {
      metadata["base_channels"] = value;
    });
  };
  check_load_error(with_base("0"), *be, {"base_channels", "positive integer"});
  check_load_error(with_base("four"), *be, {"base_channels", "not valid JSON"});
  // A width the file's tensors were not saved at: the shapes no longer match.
  check_load_error(with_base("8"), *be, {"model.conv0.weight", "expects F32 [8, 1, 3, 3]"});
  check_load_error(with_base("100000"), *be, {"cannot build", "base_channels is 100000"});
  // lenet5 has no base width: a file that gives one describes a model that does not exist.
  auto lenet = make_model(test::lenet5_spec(), *be, 5);
  const std::string lenet_path = edited_file(dir, *lenet, [](auto&, std::map<std::string, std::string>& metadata) {
    metadata["base_channels"] = "8";
  });
  check_load_error(lenet_path, *be, {"cannot build", "base_channels applies only"});
}

TEST_CASE("model_io: BatchNorm buffers, including the I64 num_batches_tracked scalar, round-trip") {
  auto be = make_cpu_backend(1);
  ModelSpec spec;
  spec.arch = "convnet";
  spec.height = spec.width = 9;  // the smallest input convnet takes keeps the test light
  auto model = make_model(spec, *be, 3);
  // Non-default buffer values, so a load that skipped them would show.
  Rng rng(3);
  bool saw_counter = false;
  for (auto& [name, t] : model->state_dict()) {
    if (t.dtype() == DType::I64) {
      CHECK(t.shape().empty());
      const int64_t count = 4242;
      copy_bytes(t.raw(), t.device(), &count, Device::CPU, sizeof count);
      saw_counter = true;
    } else if (name.find("running_var") != std::string::npos) {
      lethe::test::fill_random(t, rng, 0.5f, 2.0f);
    } else if (name.find("running_mean") != std::string::npos) {
      lethe::test::fill_random(t, rng);
    }
  }
  REQUIRE(saw_counter);

  TempDir dir("model_io_bn");
  const std::string path = dir.file("convnet.safetensors");
  save_model(*model, path);
  const SafeTensorsFile file = read_safetensors(path);
  const Tensor* counter = file.find("model.bn0.num_batches_tracked");
  REQUIRE(counter != nullptr);
  CHECK(counter->dtype() == DType::I64);
  CHECK(counter->shape().empty());
  CHECK(*counter->i64() == 4242);

  auto loaded = load_model(path, *be);
  check_same_state(*model, *loaded);
}

TEST_CASE("model_io: files that do not match the arch are rejected, naming the file and the tensor") {
  auto be = make_cpu_backend(1);
  auto model = make_model(test::lenet5_spec(), *be, 5);
  TempDir dir("model_io_bad");
  using Tensors = std::vector<std::pair<std::string, Tensor>>;
  using Meta = std::map<std::string, std::string>;

  SUBCASE("wrong shape") {
    const std::string path = edited_file(dir, *model, [](Tensors& t, Meta&) {
      replace(t, "fc1.weight", Tensor::zeros({120, 255}));
    });
    check_load_error(path, *be, {"fc1.weight", "[120, 255]", "[120, 400]"});
  }
  SUBCASE("wrong dtype") {
    const std::string path = edited_file(dir, *model, [](Tensors& t, Meta&) {
      replace(t, "conv1.bias", Tensor::zeros({6}, DType::I64));
    });
    check_load_error(path, *be, {"conv1.bias", "I64", "F32"});
  }
  SUBCASE("missing tensor") {
    const std::string path = edited_file(dir, *model, [](Tensors& t, Meta&) { t.pop_back(); });
    check_load_error(path, *be, {"fc3.bias", "missing"});
  }
  SUBCASE("extra tensor") {
    const std::string path = edited_file(dir, *model, [](Tensors& t, Meta&) {
      t.emplace_back("fc4.weight", Tensor::zeros({2, 2}));
    });
    check_load_error(path, *be, {"fc4.weight", "unexpected"});
  }
  SUBCASE("missing arch") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m.erase("arch"); });
    check_load_error(path, *be, {"\"arch\"", "missing"});
  }
  SUBCASE("unknown arch") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m["arch"] = "vgg11"; });
    check_load_error(path, *be, {"vgg11"});
  }
  SUBCASE("malformed input_shape") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m["input_shape"] = "[1,28]"; });
    check_load_error(path, *be, {"\"input_shape\"", "[1,28]"});
  }
  SUBCASE("non-numeric num_classes") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m["num_classes"] = "ten"; });
    check_load_error(path, *be, {"\"num_classes\""});
  }
  SUBCASE("num_classes that disagrees with the classifier") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m["num_classes"] = "7"; });
    check_load_error(path, *be, {"fc3.weight"});
  }
  SUBCASE("std of the wrong length") {
    const std::string path = edited_file(dir, *model, [](Tensors&, Meta& m) { m["std"] = "[0.5,0.5]"; });
    check_load_error(path, *be, {"\"std\""});
  }
}

TEST_CASE("model_io: load_weights reads a bare state dict and leaves the model untouched on error") {
  auto be = make_cpu_backend(1);
  auto source = make_model(mlp_spec(), *be, 21);
  auto target = make_model(mlp_spec(), *be, 22);
  TempDir dir("model_io_weights");

  // A PyTorch-style file: the state dict only, no Lethe metadata.
  const std::string path = dir.file("state.safetensors");
  write_safetensors(path, source->state_dict(), {{"format", "pt"}});
  load_weights(*target, path);
  check_same_state(*source, *target);

  auto fresh = make_model(mlp_spec(), *be, 23);
  auto untouched = make_model(mlp_spec(), *be, 23);
  auto tensors = source->state_dict();
  tensors.erase(tensors.begin() + 1);  // fc1.bias: everything before and after it would load fine
  const std::string bad = dir.file("partial.safetensors");
  write_safetensors(bad, tensors, {});
  CHECK_THROWS_AS(load_weights(*fresh, bad), InputError);
  check_same_state(*fresh, *untouched);
}
