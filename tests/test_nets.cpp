// The architectures against PyTorch: state-dict names, order, shapes and parameter counts; output shapes;
// logits for fixed weights; seeded initialisation (determinism and distributions); spec validation.
//
// The reference tables and logits come from torch 1.13 (/usr/bin/python3) with the same modules defined in a
// throwaway script: LeNet-5 as a module with attributes conv1, conv2, fc1..fc3; the ConvNet exactly as in
// TASI-LAB/Unlearning-inversion-attacks recovery/nn/models.py (width 64); torchvision's BasicBlock/ResNet layout
// with the CIFAR stem; the mlp as fc1..fcL.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "nets/nets.h"

using namespace lethe;

namespace {

// Reference tables list entries in PyTorch's state_dict() order.
struct Entry {
  const char* name;
  Shape shape;
  DType dtype;
};

// PyTorch 1.13: lenet5 1x28x28 K=10: 10 state-dict entries, 10 parameters, 61706 parameter elements
const std::vector<Entry> kLenet5Mnist = {
    {"conv1.weight", {6, 1, 5, 5}, DType::F32},
    {"conv1.bias", {6}, DType::F32},
    {"conv2.weight", {16, 6, 5, 5}, DType::F32},
    {"conv2.bias", {16}, DType::F32},
    {"fc1.weight", {120, 400}, DType::F32},
    {"fc1.bias", {120}, DType::F32},
    {"fc2.weight", {84, 120}, DType::F32},
    {"fc2.bias", {84}, DType::F32},
    {"fc3.weight", {10, 84}, DType::F32},
    {"fc3.bias", {10}, DType::F32},
};
// PyTorch 1.13: lenet5 3x32x32 K=10: 10 state-dict entries, 10 parameters, 83126 parameter elements
const std::vector<Entry> kLenet5Cifar = {
    {"conv1.weight", {6, 3, 5, 5}, DType::F32},
    {"conv1.bias", {6}, DType::F32},
    {"conv2.weight", {16, 6, 5, 5}, DType::F32},
    {"conv2.bias", {16}, DType::F32},
    {"fc1.weight", {120, 576}, DType::F32},
    {"fc1.bias", {120}, DType::F32},
    {"fc2.weight", {84, 120}, DType::F32},
    {"fc2.bias", {84}, DType::F32},
    {"fc3.weight", {10, 84}, DType::F32},
    {"fc3.bias", {10}, DType::F32},
};
// PyTorch 1.13: convnet 3x32x32 K=10: 58 state-dict entries, 34 parameters, 2904970 parameter elements
const std::vector<Entry> kConvNetCifar = {
    {"model.conv0.weight", {64, 3, 3, 3}, DType::F32},
    {"model.conv0.bias", {64}, DType::F32},
    {"model.bn0.weight", {64}, DType::F32},
    {"model.bn0.bias", {64}, DType::F32},
    {"model.bn0.running_mean", {64}, DType::F32},
    {"model.bn0.running_var", {64}, DType::F32},
    {"model.bn0.num_batches_tracked", {}, DType::I64},
    {"model.conv1.weight", {128, 64, 3, 3}, DType::F32},
    {"model.conv1.bias", {128}, DType::F32},
    {"model.bn1.weight", {128}, DType::F32},
    {"model.bn1.bias", {128}, DType::F32},
    {"model.bn1.running_mean", {128}, DType::F32},
    {"model.bn1.running_var", {128}, DType::F32},
    {"model.bn1.num_batches_tracked", {}, DType::I64},
    {"model.conv2.weight", {128, 128, 3, 3}, DType::F32},
    {"model.conv2.bias", {128}, DType::F32},
    {"model.bn2.weight", {128}, DType::F32},
    {"model.bn2.bias", {128}, DType::F32},
    {"model.bn2.running_mean", {128}, DType::F32},
    {"model.bn2.running_var", {128}, DType::F32},
    {"model.bn2.num_batches_tracked", {}, DType::I64},
    {"model.conv3.weight", {256, 128, 3, 3}, DType::F32},
    {"model.conv3.bias", {256}, DType::F32},
    {"model.bn3.weight", {256}, DType::F32},
    {"model.bn3.bias", {256}, DType::F32},
    {"model.bn3.running_mean", {256}, DType::F32},
    {"model.bn3.running_var", {256}, DType::F32},
    {"model.bn3.num_batches_tracked", {}, DType::I64},
    {"model.conv4.weight", {256, 256, 3, 3}, DType::F32},
    {"model.conv4.bias", {256}, DType::F32},
    {"model.bn4.weight", {256}, DType::F32},
    {"model.bn4.bias", {256}, DType::F32},
    {"model.bn4.running_mean", {256}, DType::F32},
    {"model.bn4.running_var", {256}, DType::F32},
    {"model.bn4.num_batches_tracked", {}, DType::I64},
    {"model.conv5.weight", {256, 256, 3, 3}, DType::F32},
    {"model.conv5.bias", {256}, DType::F32},
    {"model.bn5.weight", {256}, DType::F32},
    {"model.bn5.bias", {256}, DType::F32},
    {"model.bn5.running_mean", {256}, DType::F32},
    {"model.bn5.running_var", {256}, DType::F32},
    {"model.bn5.num_batches_tracked", {}, DType::I64},
    {"model.conv6.weight", {256, 256, 3, 3}, DType::F32},
    {"model.conv6.bias", {256}, DType::F32},
    {"model.bn6.weight", {256}, DType::F32},
    {"model.bn6.bias", {256}, DType::F32},
    {"model.bn6.running_mean", {256}, DType::F32},
    {"model.bn6.running_var", {256}, DType::F32},
    {"model.bn6.num_batches_tracked", {}, DType::I64},
    {"model.conv7.weight", {256, 256, 3, 3}, DType::F32},
    {"model.conv7.bias", {256}, DType::F32},
    {"model.bn7.weight", {256}, DType::F32},
    {"model.bn7.bias", {256}, DType::F32},
    {"model.bn7.running_mean", {256}, DType::F32},
    {"model.bn7.running_var", {256}, DType::F32},
    {"model.bn7.num_batches_tracked", {}, DType::I64},
    {"model.linear.weight", {10, 2304}, DType::F32},
    {"model.linear.bias", {10}, DType::F32},
};
// PyTorch 1.13: resnet18 3x32x32 K=10: 122 state-dict entries, 62 parameters, 11173962 parameter elements
const std::vector<Entry> kResNet18Cifar = {
    {"conv1.weight", {64, 3, 3, 3}, DType::F32},
    {"bn1.weight", {64}, DType::F32},
    {"bn1.bias", {64}, DType::F32},
    {"bn1.running_mean", {64}, DType::F32},
    {"bn1.running_var", {64}, DType::F32},
    {"bn1.num_batches_tracked", {}, DType::I64},
    {"layer1.0.conv1.weight", {64, 64, 3, 3}, DType::F32},
    {"layer1.0.bn1.weight", {64}, DType::F32},
    {"layer1.0.bn1.bias", {64}, DType::F32},
    {"layer1.0.bn1.running_mean", {64}, DType::F32},
    {"layer1.0.bn1.running_var", {64}, DType::F32},
    {"layer1.0.bn1.num_batches_tracked", {}, DType::I64},
    {"layer1.0.conv2.weight", {64, 64, 3, 3}, DType::F32},
    {"layer1.0.bn2.weight", {64}, DType::F32},
    {"layer1.0.bn2.bias", {64}, DType::F32},
    {"layer1.0.bn2.running_mean", {64}, DType::F32},
    {"layer1.0.bn2.running_var", {64}, DType::F32},
    {"layer1.0.bn2.num_batches_tracked", {}, DType::I64},
    {"layer1.1.conv1.weight", {64, 64, 3, 3}, DType::F32},
    {"layer1.1.bn1.weight", {64}, DType::F32},
    {"layer1.1.bn1.bias", {64}, DType::F32},
    {"layer1.1.bn1.running_mean", {64}, DType::F32},
    {"layer1.1.bn1.running_var", {64}, DType::F32},
    {"layer1.1.bn1.num_batches_tracked", {}, DType::I64},
    {"layer1.1.conv2.weight", {64, 64, 3, 3}, DType::F32},
    {"layer1.1.bn2.weight", {64}, DType::F32},
    {"layer1.1.bn2.bias", {64}, DType::F32},
    {"layer1.1.bn2.running_mean", {64}, DType::F32},
    {"layer1.1.bn2.running_var", {64}, DType::F32},
    {"layer1.1.bn2.num_batches_tracked", {}, DType::I64},
    {"layer2.0.conv1.weight", {128, 64, 3, 3}, DType::F32},
    {"layer2.0.bn1.weight", {128}, DType::F32},
    {"layer2.0.bn1.bias", {128}, DType::F32},
    {"layer2.0.bn1.running_mean", {128}, DType::F32},
    {"layer2.0.bn1.running_var", {128}, DType::F32},
    {"layer2.0.bn1.num_batches_tracked", {}, DType::I64},
    {"layer2.0.conv2.weight", {128, 128, 3, 3}, DType::F32},
    {"layer2.0.bn2.weight", {128}, DType::F32},
    {"layer2.0.bn2.bias", {128}, DType::F32},
    {"layer2.0.bn2.running_mean", {128}, DType::F32},
    {"layer2.0.bn2.running_var", {128}, DType::F32},
    {"layer2.0.bn2.num_batches_tracked", {}, DType::I64},
    {"layer2.0.downsample.0.weight", {128, 64, 1, 1}, DType::F32},
    {"layer2.0.downsample.1.weight", {128}, DType::F32},
    {"layer2.0.downsample.1.bias", {128}, DType::F32},
    {"layer2.0.downsample.1.running_mean", {128}, DType::F32},
    {"layer2.0.downsample.1.running_var", {128}, DType::F32},
    {"layer2.0.downsample.1.num_batches_tracked", {}, DType::I64},
    {"layer2.1.conv1.weight", {128, 128, 3, 3}, DType::F32},
    {"layer2.1.bn1.weight", {128}, DType::F32},
    {"layer2.1.bn1.bias", {128}, DType::F32},
    {"layer2.1.bn1.running_mean", {128}, DType::F32},
    {"layer2.1.bn1.running_var", {128}, DType::F32},
    {"layer2.1.bn1.num_batches_tracked", {}, DType::I64},
    {"layer2.1.conv2.weight", {128, 128, 3, 3}, DType::F32},
    {"layer2.1.bn2.weight", {128}, DType::F32},
    {"layer2.1.bn2.bias", {128}, DType::F32},
    {"layer2.1.bn2.running_mean", {128}, DType::F32},
    {"layer2.1.bn2.running_var", {128}, DType::F32},
    {"layer2.1.bn2.num_batches_tracked", {}, DType::I64},
    {"layer3.0.conv1.weight", {256, 128, 3, 3}, DType::F32},
    {"layer3.0.bn1.weight", {256}, DType::F32},
    {"layer3.0.bn1.bias", {256}, DType::F32},
    {"layer3.0.bn1.running_mean", {256}, DType::F32},
    {"layer3.0.bn1.running_var", {256}, DType::F32},
    {"layer3.0.bn1.num_batches_tracked", {}, DType::I64},
    {"layer3.0.conv2.weight", {256, 256, 3, 3}, DType::F32},
    {"layer3.0.bn2.weight", {256}, DType::F32},
    {"layer3.0.bn2.bias", {256}, DType::F32},
    {"layer3.0.bn2.running_mean", {256}, DType::F32},
    {"layer3.0.bn2.running_var", {256}, DType::F32},
    {"layer3.0.bn2.num_batches_tracked", {}, DType::I64},
    {"layer3.0.downsample.0.weight", {256, 128, 1, 1}, DType::F32},
    {"layer3.0.downsample.1.weight", {256}, DType::F32},
    {"layer3.0.downsample.1.bias", {256}, DType::F32},
    {"layer3.0.downsample.1.running_mean", {256}, DType::F32},
    {"layer3.0.downsample.1.running_var", {256}, DType::F32},
    {"layer3.0.downsample.1.num_batches_tracked", {}, DType::I64},
    {"layer3.1.conv1.weight", {256, 256, 3, 3}, DType::F32},
    {"layer3.1.bn1.weight", {256}, DType::F32},
    {"layer3.1.bn1.bias", {256}, DType::F32},
    {"layer3.1.bn1.running_mean", {256}, DType::F32},
    {"layer3.1.bn1.running_var", {256}, DType::F32},
    {"layer3.1.bn1.num_batches_tracked", {}, DType::I64},
    {"layer3.1.conv2.weight", {256, 256, 3, 3}, DType::F32},
    {"layer3.1.bn2.weight", {256}, DType::F32},
    {"layer3.1.bn2.bias", {256}, DType::F32},
    {"layer3.1.bn2.running_mean", {256}, DType::F32},
    {"layer3.1.bn2.running_var", {256}, DType::F32},
    {"layer3.1.bn2.num_batches_tracked", {}, DType::I64},
    {"layer4.0.conv1.weight", {512, 256, 3, 3}, DType::F32},
    {"layer4.0.bn1.weight", {512}, DType::F32},
    {"layer4.0.bn1.bias", {512}, DType::F32},
    {"layer4.0.bn1.running_mean", {512}, DType::F32},
    {"layer4.0.bn1.running_var", {512}, DType::F32},
    {"layer4.0.bn1.num_batches_tracked", {}, DType::I64},
    {"layer4.0.conv2.weight", {512, 512, 3, 3}, DType::F32},
    {"layer4.0.bn2.weight", {512}, DType::F32},
    {"layer4.0.bn2.bias", {512}, DType::F32},
    {"layer4.0.bn2.running_mean", {512}, DType::F32},
    {"layer4.0.bn2.running_var", {512}, DType::F32},
    {"layer4.0.bn2.num_batches_tracked", {}, DType::I64},
    {"layer4.0.downsample.0.weight", {512, 256, 1, 1}, DType::F32},
    {"layer4.0.downsample.1.weight", {512}, DType::F32},
    {"layer4.0.downsample.1.bias", {512}, DType::F32},
    {"layer4.0.downsample.1.running_mean", {512}, DType::F32},
    {"layer4.0.downsample.1.running_var", {512}, DType::F32},
    {"layer4.0.downsample.1.num_batches_tracked", {}, DType::I64},
    {"layer4.1.conv1.weight", {512, 512, 3, 3}, DType::F32},
    {"layer4.1.bn1.weight", {512}, DType::F32},
    {"layer4.1.bn1.bias", {512}, DType::F32},
    {"layer4.1.bn1.running_mean", {512}, DType::F32},
    {"layer4.1.bn1.running_var", {512}, DType::F32},
    {"layer4.1.bn1.num_batches_tracked", {}, DType::I64},
    {"layer4.1.conv2.weight", {512, 512, 3, 3}, DType::F32},
    {"layer4.1.bn2.weight", {512}, DType::F32},
    {"layer4.1.bn2.bias", {512}, DType::F32},
    {"layer4.1.bn2.running_mean", {512}, DType::F32},
    {"layer4.1.bn2.running_var", {512}, DType::F32},
    {"layer4.1.bn2.num_batches_tracked", {}, DType::I64},
    {"fc.weight", {10, 512}, DType::F32},
    {"fc.bias", {10}, DType::F32},
};
// PyTorch 1.13: mlp 1x28x28 hidden {256,128} K=10: 6 state-dict entries, 6 parameters, 235146 parameter elements
const std::vector<Entry> kMlpMnist = {
    {"fc1.weight", {256, 784}, DType::F32},
    {"fc1.bias", {256}, DType::F32},
    {"fc2.weight", {128, 256}, DType::F32},
    {"fc2.bias", {128}, DType::F32},
    {"fc3.weight", {10, 128}, DType::F32},
    {"fc3.bias", {10}, DType::F32},
};
// PyTorch 1.13: mlp 3x32x32 hidden {} K=100: 2 state-dict entries, 2 parameters, 307300 parameter elements
const std::vector<Entry> kMlpLinearCifar100 = {
    {"fc1.weight", {100, 3072}, DType::F32},
    {"fc1.bias", {100}, DType::F32},
};

// PyTorch 1.13, eval mode, double precision: logits [2, 10] for fill_fixed() weights and fixed_input().
const std::vector<float> kLenet5Logits = {
    0.5584547f, -1.249701f, 2.447209f, 0.5485314f, -1.504025f,
    1.575961f, 0.05426238f, 0.1999427f, 1.375248f, 2.731497f,
    0.5734145f, -1.128432f, 2.432862f, 0.3950441f, -1.529118f,
    1.595218f, 0.2453015f, 0.4731187f, 1.356868f, 2.932356f
};
const std::vector<float> kConvNetLogits = {
    1.309386f, 0.795507f, 3.38994f, -0.04983364f, 0.1764322f,
    -0.2200166f, 0.5949124f, 2.933871f, -2.799458f, -1.117187f,
    1.352628f, 0.743324f, 3.219882f, 0.4313612f, 0.328162f,
    -0.7675934f, 1.013893f, 2.781408f, -2.515283f, -1.151003f
};
const std::vector<float> kResNet18Logits = {
    0.8775657f, 6.07628f, -19.49101f, 16.31897f, -12.6011f,
    13.52022f, -7.190084f, -4.251713f, -19.17049f, 27.23029f,
    2.502989f, 5.0291f, -22.53535f, 15.54472f, -13.29952f,
    11.85716f, -7.148228f, -3.845987f, -18.03103f, 28.73504f
};
const std::vector<float> kMlpLogits = {
    -0.3377762f, 0.8169636f, 0.6101171f, -1.853815f, 0.608877f,
    1.029994f, -0.9022472f, 0.3634492f, 0.1707777f, 0.3306184f,
    -0.377771f, 0.4493212f, 0.6560935f, -0.8099172f, -0.1361504f,
    1.411175f, -0.4615016f, 0.06479271f, -0.4401731f, -0.02310807f
};

Backend& cpu() {
  static const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  return *backend;
}

ModelSpec spec_of(const std::string& arch, int64_t c, int64_t h, int64_t w, int64_t k,
                  std::vector<int64_t> hidden = {}) {
  ModelSpec spec;
  spec.arch = arch;
  spec.channels = c;
  spec.height = h;
  spec.width = w;
  spec.num_classes = k;
  spec.hidden = std::move(hidden);
  return spec;
}

bool is_buffer(const std::string& name) {
  for (const char* suffix : {".running_mean", ".running_var", ".num_batches_tracked"})
    if (name.ends_with(suffix)) return true;
  return false;
}

// The arena holds PyTorch's parameters in named_parameters() order and its buffers in named_buffers() order, and
// state_dict() lists the same names, shapes and dtypes as PyTorch's state_dict(): parameters first, then buffers
// (PyTorch interleaves them per module; safetensors files are keyed by name, so only the set and shapes matter there).
void check_layout(const Model& model, const std::vector<Entry>& expected, int64_t parameter_elements) {
  std::vector<const Entry*> params, buffers;
  for (const Entry& e : expected) (is_buffer(e.name) ? buffers : params).push_back(&e);
  const auto& entries = model.arena().entries();
  REQUIRE(entries.size() == params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    INFO("parameter " << i << ": " << params[i]->name);
    CHECK(entries[i].name == params[i]->name);
    CHECK(shape_str(entries[i].shape) == shape_str(params[i]->shape));
  }
  const auto& buffer_entries = model.arena().buffers();
  REQUIRE(buffer_entries.size() == buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    INFO("buffer " << i << ": " << buffers[i]->name);
    CHECK(buffer_entries[i].name == buffers[i]->name);
    CHECK(shape_str(buffer_entries[i].shape) == shape_str(buffers[i]->shape));
    CHECK(buffer_entries[i].dtype == buffers[i]->dtype);
  }
  CHECK(model.arena().size() == parameter_elements);

  std::vector<const Entry*> in_order = params;
  in_order.insert(in_order.end(), buffers.begin(), buffers.end());
  const auto state = model.state_dict();
  REQUIRE(state.size() == in_order.size());
  for (size_t i = 0; i < in_order.size(); ++i) {
    INFO("state-dict entry " << i << ": " << in_order[i]->name);
    CHECK(state[i].first == in_order[i]->name);
    CHECK(shape_str(state[i].second.shape()) == shape_str(in_order[i]->shape));
    CHECK(state[i].second.dtype() == in_order[i]->dtype);
  }
}

// Deterministic pseudo-random values, identical to the reference script's hash_u: a splitmix64-style mix of the
// element index and a tag (FNV-1a of the tensor's name), uniform in [-0.5, 0.5).
double hash_u(uint64_t i, uint64_t tag) {
  uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull + tag * 0xBF58476D1CE4E5B9ull;
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 29;
  return static_cast<double>(h >> 11) * 0x1.0p-53 - 0.5;
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Overwrites every state-dict tensor with fixed values (the reference script's fill()), keyed by name: weights
// scaled to variance 2/fan_in, BatchNorm weights near 1, running variances in [0.5, 1.5).
void fill_fixed(Model& model) {
  for (const auto& [name, tensor] : model.state_dict()) {
    if (name.ends_with(".num_batches_tracked")) continue;
    const uint64_t tag = fnv1a(name);
    float* data = tensor.f32();
    for (int64_t i = 0; i < tensor.numel(); ++i) {
      const double u = hash_u(static_cast<uint64_t>(i), tag);
      double value;
      if (name.ends_with(".running_mean"))
        value = 0.2 * u;
      else if (name.ends_with(".running_var"))
        value = 1.0 + u;
      else if (tensor.ndim() >= 2)
        value = std::sqrt(24.0 / static_cast<double>(tensor.numel() / tensor.dim(0))) * u;
      else if (name.ends_with(".weight"))
        value = 1.0 + 0.4 * u;
      else
        value = 0.2 * u;
      data[i] = static_cast<float>(value);
    }
  }
}

Tensor fixed_input(const ModelSpec& spec, int64_t n) {
  Tensor x = Tensor::empty(spec.input_shape(n));
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = static_cast<float>(0.5 + hash_u(static_cast<uint64_t>(i), 1000));
  return x;
}

// Eval-mode logits for the fixed weights and the fixed 2-image input equal PyTorch's (computed in double).
void check_fixed_logits(const ModelSpec& spec, const std::vector<float>& expected) {
  auto model = make_model_uninitialised(spec, cpu());
  fill_fixed(*model);
  const Tensor& logits = model->forward(fixed_input(spec, 2), /*train=*/false);
  REQUIRE(shape_str(logits.shape()) == shape_str({2, spec.num_classes}));
  const std::vector<float> got = logits.to_vector();
  REQUIRE(got.size() == expected.size());
  float scale = 1.0f;
  for (const float v : expected) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("logit " << i);
    CHECK(std::fabs(got[i] - expected[i]) <= 1e-3f * scale);
  }
}

void check_output_shape(const ModelSpec& spec) {
  auto model = make_model(spec, cpu(), 3);
  Tensor x = Tensor::empty(spec.input_shape(3));  // 3 rows, inferred in chunks of 2
  cpu().fill_uniform(x, 0.0f, 1.0f, 11, 0);
  for (const bool train : {false, true}) {
    const Tensor& logits = model->forward(x, train);
    CHECK(shape_str(logits.shape()) == shape_str({3, spec.num_classes}));
    for (const float v : logits.to_vector()) REQUIRE(std::isfinite(v));
  }
  Tensor logits;
  model->infer_logits(x, logits, 2);
  CHECK(shape_str(logits.shape()) == shape_str({3, spec.num_classes}));
}

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

struct Stats {
  double mean = 0, stddev = 0, max_abs = 0;
};

Stats stats_of(const std::vector<float>& v) {
  Stats s;
  for (const float x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (const float x : v) {
    s.stddev += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, static_cast<double>(std::fabs(x)));
  }
  s.stddev = std::sqrt(s.stddev / static_cast<double>(v.size()));
  return s;
}

// kaiming_uniform_(a=sqrt(5)) and the bias rule both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void check_default_uniform(const Model& model, const std::string& name, int64_t fan_in) {
  INFO(name);
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  const std::vector<float> v = values(model.arena().param(name));
  const Stats s = stats_of(v);
  CHECK(s.max_abs <= bound);
  if (v.size() >= 1000) {  // enough draws for the moments to be tight
    CHECK(s.max_abs > 0.95 * bound);
    CHECK(s.stddev == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.1));
    CHECK(std::fabs(s.mean) < 0.1 * bound);
  } else {
    CHECK(s.stddev > 0.0);
  }
}

void check_all(const Tensor& t, float expected) {
  if (t.dtype() == DType::I64) {
    const Tensor host = t.to_cpu();
    for (int64_t i = 0; i < host.numel(); ++i) REQUIRE(host.i64()[i] == static_cast<int64_t>(expected));
    return;
  }
  for (const float v : t.to_vector()) REQUIRE(v == expected);
}

// Parameters and buffers of two models, bit for bit.
bool same_state(const Model& a, const Model& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  if (sa.size() != sb.size()) return false;
  for (size_t i = 0; i < sa.size(); ++i) {
    const Tensor x = sa[i].second.to_cpu(), y = sb[i].second.to_cpu();
    if (x.nbytes() != y.nbytes() || std::memcmp(x.raw(), y.raw(), x.nbytes()) != 0) return false;
  }
  return true;
}

// Fraction of parameter elements that differ between two models.
double fraction_differing(const Model& a, const Model& b) {
  const std::vector<float> x = a.arena().params().to_vector(), y = b.arena().params().to_vector();
  REQUIRE(x.size() == y.size());
  int64_t differing = 0;
  for (size_t i = 0; i < x.size(); ++i) differing += x[i] != y[i];
  return static_cast<double>(differing) / static_cast<double>(x.size());
}

void check_usage_error(const ModelSpec& spec, const std::string& expected_fragment) {
  INFO(spec.arch << " " << spec.channels << "x" << spec.height << "x" << spec.width << " K=" << spec.num_classes);
  bool threw = false;
  try {
    make_model(spec, cpu(), 1);
  } catch (const UsageError& e) {
    threw = true;
    CHECK(std::string(e.what()).find(expected_fragment) != std::string::npos);
  }
  CHECK(threw);
  CHECK_THROWS_AS(make_model_uninitialised(spec, cpu()), UsageError);
}

}  // namespace

TEST_CASE("nets: known_archs") {
  CHECK(known_archs() == std::vector<std::string>{"lenet5", "convnet", "resnet18", "mlp"});
}

TEST_CASE("nets: lenet5 state dict matches PyTorch") {
  check_layout(*make_model_uninitialised(spec_of("lenet5", 1, 28, 28, 10), cpu()), kLenet5Mnist, 61706);
  check_layout(*make_model_uninitialised(spec_of("lenet5", 3, 32, 32, 10), cpu()), kLenet5Cifar, 83126);
}

TEST_CASE("nets: convnet state dict matches the official ConvNet") {
  check_layout(*make_model_uninitialised(spec_of("convnet", 3, 32, 32, 10), cpu()), kConvNetCifar, 2904970);
  // 28 -> 9 -> 3 after the two stride-3 pools: the same 2304-wide classifier as at 32x32.
  auto mnist = make_model_uninitialised(spec_of("convnet", 1, 28, 28, 10), cpu());
  CHECK(shape_str(mnist->arena().param("model.linear.weight").shape()) == "[10, 2304]");
  CHECK(shape_str(mnist->arena().param("model.conv0.weight").shape()) == "[64, 1, 3, 3]");
}

TEST_CASE("nets: resnet18 state dict matches torchvision's layout") {
  check_layout(*make_model_uninitialised(spec_of("resnet18", 3, 32, 32, 10), cpu()), kResNet18Cifar, 11173962);
}

TEST_CASE("nets: convnet and resnet18 take a base channel width") {
  // 0 (the default) and an explicit 64 are the papers' networks.
  ModelSpec convnet64 = spec_of("convnet", 3, 32, 32, 10), resnet64 = spec_of("resnet18", 3, 32, 32, 10);
  convnet64.base_channels = resnet64.base_channels = 64;
  check_layout(*make_model_uninitialised(convnet64, cpu()), kConvNetCifar, 2904970);
  check_layout(*make_model_uninitialised(resnet64, cpu()), kResNet18Cifar, 11173962);

  const auto shape_of = [](const Model& model, const std::string& name) {
    return shape_str(model.arena().param(name).shape());
  };
  // ConvNet at width 8: stages of 8, 16, 16, 32 x5 channels; the 3x3 map after the pools gives 9 * 32 = 288
  // classifier inputs. Parameters counted by hand from those shapes: 48634.
  ModelSpec convnet = spec_of("convnet", 3, 32, 32, 10);
  convnet.base_channels = 8;
  auto small_convnet = make_model(convnet, cpu(), 1);
  CHECK(shape_of(*small_convnet, "model.conv0.weight") == "[8, 3, 3, 3]");
  CHECK(shape_of(*small_convnet, "model.conv1.weight") == "[16, 8, 3, 3]");
  CHECK(shape_of(*small_convnet, "model.conv2.weight") == "[16, 16, 3, 3]");
  CHECK(shape_of(*small_convnet, "model.conv3.weight") == "[32, 16, 3, 3]");
  CHECK(shape_of(*small_convnet, "model.conv7.weight") == "[32, 32, 3, 3]");
  CHECK(shape_of(*small_convnet, "model.bn7.weight") == "[32]");
  CHECK(shape_str(small_convnet->arena().buffer("model.bn7.running_var").shape()) == "[32]");
  CHECK(shape_of(*small_convnet, "model.linear.weight") == "[10, 288]");
  CHECK(small_convnet->arena().params().numel() == 48634);
  check_output_shape(convnet);

  // ResNet-18 at base 8: stages of 8, 16, 32 and 64 channels, a 64-wide fc. Counted by hand: 176402.
  ModelSpec resnet = spec_of("resnet18", 3, 32, 32, 10);
  resnet.base_channels = 8;
  auto small_resnet = make_model(resnet, cpu(), 1);
  CHECK(shape_of(*small_resnet, "conv1.weight") == "[8, 3, 3, 3]");
  CHECK(shape_of(*small_resnet, "layer1.1.conv2.weight") == "[8, 8, 3, 3]");
  CHECK(shape_of(*small_resnet, "layer2.0.conv1.weight") == "[16, 8, 3, 3]");
  CHECK(shape_of(*small_resnet, "layer2.0.downsample.0.weight") == "[16, 8, 1, 1]");
  CHECK(shape_of(*small_resnet, "layer3.0.downsample.1.weight") == "[32]");
  CHECK(shape_of(*small_resnet, "layer4.1.conv2.weight") == "[64, 64, 3, 3]");
  CHECK(shape_of(*small_resnet, "fc.weight") == "[10, 64]");
  CHECK(small_resnet->arena().params().numel() == 176402);
  resnet.height = 5;
  resnet.width = 7;
  check_output_shape(resnet);
}

TEST_CASE("nets: mlp state dict matches PyTorch") {
  check_layout(*make_model_uninitialised(spec_of("mlp", 1, 28, 28, 10, {256, 128}), cpu()), kMlpMnist, 235146);
  check_layout(*make_model_uninitialised(spec_of("mlp", 3, 32, 32, 100), cpu()), kMlpLinearCifar100, 307300);
}

TEST_CASE("nets: logits for fixed weights equal PyTorch's") {
  // Pins the wiring (layer order, pool placement, flatten order, residual sums, eval-mode BatchNorm) to the
  // reference modules, independently of the initialisation.
  SUBCASE("lenet5") { check_fixed_logits(spec_of("lenet5", 1, 28, 28, 10), kLenet5Logits); }
  SUBCASE("convnet") { check_fixed_logits(spec_of("convnet", 3, 32, 32, 10), kConvNetLogits); }
  SUBCASE("resnet18") { check_fixed_logits(spec_of("resnet18", 3, 32, 32, 10), kResNet18Logits); }
  SUBCASE("mlp") { check_fixed_logits(spec_of("mlp", 1, 28, 28, 10, {256, 128}), kMlpLogits); }
}

TEST_CASE("nets: forward gives [N, K] logits") {
  // The 32x32 CIFAR shapes of convnet and resnet18 run in the fixed-logits test; smaller inputs keep this one quick.
  check_output_shape(spec_of("lenet5", 1, 28, 28, 10));
  check_output_shape(spec_of("lenet5", 3, 32, 32, 100));
  check_output_shape(spec_of("lenet5", 1, 12, 12, 2));  // the smallest input lenet5 takes
  check_output_shape(spec_of("convnet", 1, 28, 28, 10));
  check_output_shape(spec_of("convnet", 1, 9, 9, 3));  // the smallest input convnet takes
  check_output_shape(spec_of("resnet18", 1, 5, 7, 4));  // odd sides through the stride-2 stages
  check_output_shape(spec_of("mlp", 1, 28, 28, 10, {64, 32}));
  check_output_shape(spec_of("mlp", 3, 8, 8, 5));
}

TEST_CASE("nets: initialisation is deterministic in the seed") {
  for (const ModelSpec& spec :
       {spec_of("lenet5", 1, 28, 28, 10), spec_of("convnet", 3, 32, 32, 10), spec_of("resnet18", 3, 32, 32, 10),
        spec_of("mlp", 1, 28, 28, 10, {32})}) {
    INFO(spec.arch);
    auto a = make_model(spec, cpu(), 42);
    auto b = make_model(spec, cpu(), 42);
    auto c = make_model(spec, cpu(), 43);
    CHECK(same_state(*a, *b));
    CHECK_FALSE(same_state(*a, *c));
    // Everything random differs; only the constant BatchNorm weights (1) and biases (0) coincide.
    const double expected_min = spec.arch == "resnet18" || spec.arch == "convnet" ? 0.99 : 0.999;
    CHECK(fraction_differing(*a, *c) > expected_min);
  }
}

TEST_CASE("nets: lenet5 and mlp init follow PyTorch's default distributions") {
  auto lenet = make_model(spec_of("lenet5", 1, 28, 28, 10), cpu(), 5);
  check_default_uniform(*lenet, "conv1.weight", 25);
  check_default_uniform(*lenet, "conv1.bias", 25);
  check_default_uniform(*lenet, "conv2.weight", 150);
  check_default_uniform(*lenet, "conv2.bias", 150);
  check_default_uniform(*lenet, "fc1.weight", 400);
  check_default_uniform(*lenet, "fc1.bias", 400);
  check_default_uniform(*lenet, "fc3.weight", 84);

  auto mlp = make_model(spec_of("mlp", 1, 28, 28, 10, {256}), cpu(), 5);
  check_default_uniform(*mlp, "fc1.weight", 784);
  check_default_uniform(*mlp, "fc2.weight", 256);
  check_default_uniform(*mlp, "fc2.bias", 256);
}

TEST_CASE("nets: convnet init follows PyTorch's defaults") {
  auto model = make_model(spec_of("convnet", 3, 32, 32, 10), cpu(), 5);
  check_default_uniform(*model, "model.conv0.weight", 27);
  check_default_uniform(*model, "model.conv3.weight", 128 * 9);
  check_default_uniform(*model, "model.conv3.bias", 128 * 9);
  check_default_uniform(*model, "model.linear.weight", 2304);
  for (int i = 0; i < 8; ++i) {
    const std::string bn = "model.bn" + std::to_string(i) + ".";
    check_all(model->arena().param(bn + "weight"), 1.0f);
    check_all(model->arena().param(bn + "bias"), 0.0f);
    check_all(model->arena().buffer(bn + "running_mean"), 0.0f);
    check_all(model->arena().buffer(bn + "running_var"), 1.0f);
    check_all(model->arena().buffer(bn + "num_batches_tracked"), 0.0f);
  }
}

TEST_CASE("nets: resnet18 init follows torchvision") {
  auto model = make_model(spec_of("resnet18", 3, 32, 32, 10), cpu(), 5);
  int convs = 0, bns = 0;
  for (const ParamEntry& entry : model->arena().entries()) {
    INFO(entry.name);
    const Tensor value = model->arena().param(entry.name);
    if (entry.shape.size() == 4) {  // kaiming_normal_(mode='fan_out', nonlinearity='relu')
      ++convs;
      const double fan_out = static_cast<double>(entry.shape[0] * entry.shape[2] * entry.shape[3]);
      const double expected_std = std::sqrt(2.0 / fan_out);
      const Stats s = stats_of(values(value));
      CHECK(s.stddev == doctest::Approx(expected_std).epsilon(0.1));
      CHECK(std::fabs(s.mean) < 0.1 * expected_std);
      CHECK(s.max_abs > 2.5 * expected_std);  // a normal's tails, not a uniform's cut-off at sqrt(3)
    } else if (entry.name.rfind("fc.", 0) == 0) {
      check_default_uniform(*model, entry.name, 512);
    } else {
      ++bns;
      check_all(value, entry.name.ends_with(".weight") ? 1.0f : 0.0f);
    }
  }
  CHECK(convs == 20);
  CHECK(bns == 40);
  for (const BufferEntry& buffer : model->arena().buffers()) {
    INFO(buffer.name);
    const float expected = buffer.name.ends_with(".running_var") ? 1.0f : 0.0f;
    check_all(model->arena().buffer(buffer.name), expected);
  }
}

TEST_CASE("nets: bad specs are usage errors") {
  check_usage_error(spec_of("vgg16", 3, 32, 32, 10), "lenet5, convnet, resnet18, mlp");
  check_usage_error(spec_of("", 3, 32, 32, 10), "unknown model arch");
  check_usage_error(spec_of("lenet5", 1, 4, 4, 10), "at least 12x12");
  check_usage_error(spec_of("lenet5", 1, 28, 11, 10), "at least 12x12");
  check_usage_error(spec_of("convnet", 3, 8, 8, 10), "at least 9x9");
  check_usage_error(spec_of("convnet", 3, 32, 8, 10), "at least 9x9");
  check_usage_error(spec_of("lenet5", 1, 28, 28, 1), "num_classes");
  check_usage_error(spec_of("mlp", 1, 28, 28, 0), "num_classes");
  check_usage_error(spec_of("resnet18", 0, 32, 32, 10), "channels");
  check_usage_error(spec_of("resnet18", 3, -1, 32, 10), "height");
  check_usage_error(spec_of("mlp", 3, 32, 32, 10, {128, 0}), "hidden width");
  check_usage_error(spec_of("lenet5", 1, 28, 28, 10, {128}), "only to the mlp");
  for (const char* arch : {"lenet5", "mlp"}) {
    ModelSpec widened = spec_of(arch, 1, 28, 28, 10);
    widened.base_channels = 8;
    check_usage_error(widened, "base_channels applies only to the convnet and resnet18");
  }
  for (const int64_t base : {int64_t{-1}, int64_t{513}, int64_t{1} << 40}) {
    ModelSpec widened = spec_of("resnet18", 3, 32, 32, 10);
    widened.base_channels = base;
    check_usage_error(widened, "base_channels is " + std::to_string(base));
  }
  // Sizes that would ask for absurd allocations are refused before anything is allocated.
  check_usage_error(spec_of("mlp", 3, 4096, 4096, 10, {1024}), "weights");
  check_usage_error(spec_of("resnet18", 3, int64_t{1} << 40, 32, 10), "height");
  check_usage_error(spec_of("mlp", 3, 32, 32, int64_t{1} << 40), "num_classes");

  ModelSpec normalised = spec_of("lenet5", 3, 32, 32, 10);
  normalised.mean = {0.5f, 0.5f};
  normalised.std = {0.25f, 0.25f};
  check_usage_error(normalised, "one mean and one std per channel");
  normalised.mean = {0.5f, 0.5f, 0.5f};
  check_usage_error(normalised, "one mean and one std per channel");
  normalised.std = {0.25f, 0.0f, 0.25f};
  check_usage_error(normalised, "positive std");
  normalised.std = {0.25f, 0.25f, 0.25f};
  CHECK(make_model(normalised, cpu(), 1)->spec().mean.size() == 3);
}
