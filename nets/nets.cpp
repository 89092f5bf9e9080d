// The architectures. Each builder validates the spec, lays out the layer tree with PyTorch's module names (so the
// arena's parameter names are the PyTorch state-dict keys), and make_model applies the arch's initialisation.
#include "nets/nets.h"

#include <cmath>
#include <utility>

namespace lethe {
namespace {

// Bounds that keep a bad spec from turning into a huge allocation; far above anything the architectures are used at.
constexpr int64_t kMaxChannels = 64;
constexpr int64_t kMaxSide = 4096;
constexpr int64_t kMaxClasses = 1 << 20;
constexpr int64_t kMaxWidth = 1 << 20;
constexpr int64_t kMaxLinearWeights = int64_t{1} << 28;  // 1 GiB of f32 in one Linear weight
// The first-stage width of convnet and resnet18 (64 in the papers); their widest stages are 4x and 8x that.
constexpr int64_t kDefaultBaseChannels = 64;
constexpr int64_t kMaxBaseChannels = 512;

// Philox streams for ResNet's kaiming_normal_ conv weights, far above the small sequential stream numbers that
// Model::init hands out, so the two never overlap.
constexpr uint64_t kResNetConvStreamBase = 0x4B41494D00000000ull;  // "KAIM"

std::string describe(const ModelSpec& spec) {
  return spec.arch + " at input " + std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
         std::to_string(spec.width);
}

LayerPtr relu() { return std::make_unique<ReLU>(); }

int64_t base_channels(const ModelSpec& spec) {
  return spec.base_channels > 0 ? spec.base_channels : kDefaultBaseChannels;
}

LayerPtr linear(const ModelSpec& spec, int64_t in, int64_t out) {
  // The spec bounds keep in <= 2^30 and out <= 2^20, so the product cannot overflow.
  if (in * out > kMaxLinearWeights)
    throw UsageError(describe(spec) + ": a Linear layer of " + std::to_string(in) + " -> " + std::to_string(out) +
                     " would have " + std::to_string(in * out) + " weights (limit " +
                     std::to_string(kMaxLinearWeights) + "); use a smaller input");
  return std::make_unique<Linear>(in, out);
}

// Spatial side after MaxPool2d(k) with stride k and no padding (floor mode).
int64_t pooled(int64_t side, int64_t k) { return side / k; }

// LeNet-5: conv1 5x5 pad 2 -> relu -> pool 2, conv2 5x5 -> relu -> pool 2, fc1 120, fc2 84, fc3 K.
std::unique_ptr<Sequential> build_lenet5(const ModelSpec& spec) {
  const auto side_after = [](int64_t side) { return pooled(pooled(side, 2) - 4, 2); };
  const int64_t h = side_after(spec.height), w = side_after(spec.width);
  if (h < 1 || w < 1)
    throw UsageError(describe(spec) + ": lenet5 needs at least 12x12 input (two 2x2 pools around a 5x5 conv leave "
                                      "no pixels below that)");
  auto net = std::make_unique<Sequential>();
  net->add("conv1", std::make_unique<Conv2d>(spec.channels, 6, 5, 1, 2));
  net->add("", relu());
  net->add("", std::make_unique<MaxPool2d>(2));
  net->add("conv2", std::make_unique<Conv2d>(6, 16, 5));
  net->add("", relu());
  net->add("", std::make_unique<MaxPool2d>(2));
  net->add("", std::make_unique<Flatten>());
  net->add("fc1", linear(spec, 16 * h * w, 120));
  net->add("", relu());
  net->add("fc2", linear(spec, 120, 84));
  net->add("", relu());
  net->add("fc3", linear(spec, 84, spec.num_classes));
  return net;
}

// Hu et al.'s ConvNet, width 64, as defined in TASI-LAB/Unlearning-inversion-attacks recovery/nn/models.py
// (class ConvNet, built by construct_model('ConvNet') with width=64; spec.base_channels, when set, is that width).
// What that code says:
// - Every module sits inside `self.model = nn.Sequential(OrderedDict(...))`, so the state-dict keys are
//   "model.conv0.weight", "model.bn0.running_mean", ..., "model.linear.bias". The children here carry that
//   "model." prefix in their names, which gives the same keys while keeping the tree flat.
// - Convs are nn.Conv2d(kernel_size=3, padding=1) with the default bias=True; each is followed by BatchNorm2d and
//   ReLU.
// - 'pool0' = nn.MaxPool2d(3) (stride defaults to the kernel, 3) sits after conv5/bn5/relu5; 'pool1' =
//   nn.MaxPool2d(3) after conv7/bn7/relu7; then Flatten and 'linear' = nn.Linear(36 * width, num_classes).
// - The OrderedDict lists ('conv6', 'bn6', 'relu6') twice; a repeated key keeps its first position, so the net has
//   a single conv6 and eight convs in all (conv0..conv7).
// The official Linear is fixed at 36*width inputs (a 3x3 map, inputs 27..35 pixels wide); here its width follows
// from the input shape, which is the same at 28x28 and 32x32.
std::unique_ptr<Sequential> build_convnet(const ModelSpec& spec) {
  const int64_t width = base_channels(spec);
  const int64_t h = pooled(pooled(spec.height, 3), 3), w = pooled(pooled(spec.width, 3), 3);
  if (h < 1 || w < 1)
    throw UsageError(describe(spec) + ": convnet needs at least 9x9 input (two 3x3 max pools with stride 3)");
  const int64_t conv_out[8] = {width, 2 * width, 2 * width, 4 * width, 4 * width, 4 * width, 4 * width, 4 * width};
  auto net = std::make_unique<Sequential>();
  int64_t in = spec.channels;
  for (int i = 0; i < 8; ++i) {
    const std::string idx = std::to_string(i);
    net->add("model.conv" + idx, std::make_unique<Conv2d>(in, conv_out[i], 3, 1, 1));
    net->add("model.bn" + idx, std::make_unique<BatchNorm2d>(conv_out[i]));
    net->add("", relu());
    if (i == 5 || i == 7) net->add("", std::make_unique<MaxPool2d>(3));
    in = conv_out[i];
  }
  net->add("", std::make_unique<Flatten>());
  net->add("model.linear", linear(spec, in * h * w, spec.num_classes));
  return net;
}

// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)).
LayerPtr basic_block(int64_t in, int64_t planes, int64_t stride) {
  auto main = std::make_unique<Sequential>();
  main->add("conv1", std::make_unique<Conv2d>(in, planes, 3, stride, 1, /*bias=*/false));
  main->add("bn1", std::make_unique<BatchNorm2d>(planes));
  main->add("", relu());
  main->add("conv2", std::make_unique<Conv2d>(planes, planes, 3, 1, 1, /*bias=*/false));
  main->add("bn2", std::make_unique<BatchNorm2d>(planes));
  std::unique_ptr<Sequential> downsample;
  if (stride != 1 || in != planes) {
    downsample = std::make_unique<Sequential>();
    downsample->add("0", std::make_unique<Conv2d>(in, planes, 1, stride, 0, /*bias=*/false));
    downsample->add("1", std::make_unique<BatchNorm2d>(planes));
  }
  return std::make_unique<Residual>(std::move(main), std::move(downsample), "", "downsample.");
}

// CIFAR-style ResNet-18 with torchvision's module names: a 3x3 stride-1 stem and no max pool. (The official
// TASI-LAB code builds the same network but keeps the stages in a ModuleList, so its keys read "layers.0.0.conv1"
// where torchvision's read "layer1.0.conv1"; the torchvision names are used here.) The stages have 64, 128, 256
// and 512 channels, or base, 2*base, 4*base and 8*base with spec.base_channels set.
std::unique_ptr<Sequential> build_resnet18(const ModelSpec& spec) {
  const int64_t base = base_channels(spec);
  auto net = std::make_unique<Sequential>();
  net->add("conv1", std::make_unique<Conv2d>(spec.channels, base, 3, 1, 1, /*bias=*/false));
  net->add("bn1", std::make_unique<BatchNorm2d>(base));
  net->add("", relu());
  const std::pair<int64_t, int64_t> stages[4] = {{base, 1}, {2 * base, 2}, {4 * base, 2}, {8 * base, 2}};
  int64_t in = base;
  for (int s = 0; s < 4; ++s) {
    const auto [planes, stride] = stages[s];
    auto stage = std::make_unique<Sequential>();
    stage->add("0", basic_block(in, planes, stride));
    stage->add("1", basic_block(planes, planes, 1));
    net->add("layer" + std::to_string(s + 1), std::move(stage));
    in = planes;
  }
  net->add("", AvgPool2d::global());
  net->add("", std::make_unique<Flatten>());
  net->add("fc", linear(spec, in, spec.num_classes));
  return net;
}

// Flatten, then fc1..fcL with ReLU between; the last maps to the classes.
std::unique_ptr<Sequential> build_mlp(const ModelSpec& spec) {
  auto net = std::make_unique<Sequential>();
  net->add("", std::make_unique<Flatten>());
  int64_t in = spec.channels * spec.height * spec.width;
  int index = 1;
  for (const int64_t width : spec.hidden) {
    net->add("fc" + std::to_string(index++), linear(spec, in, width));
    net->add("", relu());
    in = width;
  }
  net->add("fc" + std::to_string(index), linear(spec, in, spec.num_classes));
  return net;
}

struct Arch {
  const char* name;
  std::unique_ptr<Sequential> (*build)(const ModelSpec&);
};
constexpr Arch kArchs[] = {
    {"lenet5", build_lenet5}, {"convnet", build_convnet}, {"resnet18", build_resnet18}, {"mlp", build_mlp}};

void check_range(const ModelSpec& spec, const char* what, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi)
    throw UsageError("model " + spec.arch + ": " + what + " is " + std::to_string(value) + ", must be in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

const Arch& validate(const ModelSpec& spec) {
  const Arch* arch = nullptr;
  for (const Arch& a : kArchs)
    if (spec.arch == a.name) arch = &a;
  if (!arch) {
    std::string list;
    for (const std::string& name : known_archs()) list += (list.empty() ? "" : ", ") + name;
    throw UsageError("unknown model arch '" + spec.arch + "' (known: " + list + ")");
  }
  check_range(spec, "num_classes", spec.num_classes, 2, kMaxClasses);
  check_range(spec, "input channels", spec.channels, 1, kMaxChannels);
  check_range(spec, "input height", spec.height, 1, kMaxSide);
  check_range(spec, "input width", spec.width, 1, kMaxSide);
  if (spec.arch != "mlp" && !spec.hidden.empty())
    throw UsageError("model " + spec.arch + ": hidden widths apply only to the mlp arch");
  for (const int64_t width : spec.hidden) check_range(spec, "an mlp hidden width", width, 1, kMaxWidth);
  check_range(spec, "base_channels", spec.base_channels, 0, kMaxBaseChannels);
  if (spec.base_channels != 0 && spec.arch != "convnet" && spec.arch != "resnet18")
    throw UsageError("model " + spec.arch + ": base_channels applies only to the convnet and resnet18 archs");
  // Model only asserts these as invariants; a spec from the user or a file must fail as a usage error first.
  if (spec.mean.size() != spec.std.size() ||
      (!spec.mean.empty() && static_cast<int64_t>(spec.mean.size()) != spec.channels))
    throw UsageError("model " + spec.arch + ": input normalisation needs one mean and one std per channel (" +
                     std::to_string(spec.channels) + "), got " + std::to_string(spec.mean.size()) + " and " +
                     std::to_string(spec.std.size()));
  for (size_t c = 0; c < spec.std.size(); ++c)
    if (!(std::isfinite(spec.mean[c]) && std::isfinite(spec.std[c]) && spec.std[c] > 0))
      throw UsageError("model " + spec.arch + ": input normalisation of channel " + std::to_string(c) +
                       " needs a finite mean and a positive std");
  return *arch;
}

// torchvision ResNet's init on top of the defaults: conv weights ~ kaiming_normal_(mode='fan_out',
// nonlinearity='relu') = N(0, sqrt(2 / (O*KH*KW))). BatchNorm keeps weight 1 / bias 0 and fc its default, which
// Model::init already set. Conv weights are the only 4-D parameters.
void resnet_conv_init(Model& model, uint64_t seed) {
  uint64_t stream = kResNetConvStreamBase;
  for (const ParamEntry& entry : model.arena().entries()) {
    if (entry.shape.size() != 4) continue;
    const double fan_out = static_cast<double>(entry.shape[0] * entry.shape[2] * entry.shape[3]);
    Tensor weight = model.arena().param(entry.name);
    model.backend().fill_normal(weight, 0.0f, static_cast<float>(std::sqrt(2.0 / fan_out)), seed, stream++);
  }
}

}  // namespace

std::vector<std::string> known_archs() {
  std::vector<std::string> names;
  for (const Arch& a : kArchs) names.emplace_back(a.name);
  return names;
}

std::unique_ptr<Model> make_model_uninitialised(const ModelSpec& spec, Backend& be) {
  const Arch& arch = validate(spec);
  return std::make_unique<Model>(spec, arch.build(spec), be);
}

std::unique_ptr<Model> make_model(const ModelSpec& spec, Backend& be, uint64_t seed) {
  auto model = make_model_uninitialised(spec, be);
  model->init(seed);
  if (spec.arch == "resnet18") resnet_conv_init(*model, seed);
  return model;
}

ModelSpec spec_for_data(const std::string& arch, const Dataset& data, std::vector<int64_t> hidden) {
  ModelSpec spec;
  spec.arch = arch;
  spec.channels = data.channels();
  spec.height = data.height();
  spec.width = data.width();
  spec.num_classes = data.num_classes;
  spec.hidden = std::move(hidden);
  spec.mean = data.mean;
  spec.std = data.std;
  return spec;
}

}  // namespace lethe
