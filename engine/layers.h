#pragma once
// Layers: forward and backward side by side. Each layer owns its output and input-gradient buffers (reused across
// calls) and keeps a handle on its input for backward. Parameters are views into the model's arena.
#include <memory>
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/backend.h"

namespace lethe {

// How a pass runs.
struct Pass {
  Backend* be = nullptr;
  bool train = false;          // BatchNorm: batch statistics and running-stat updates
  bool keep = true;            // keep what backward needs (false for inference-only passes)
  bool param_grads = true;     // backward accumulates parameter gradients into the arena
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string kind() const = 0;
  // Registers parameters and buffers under `prefix` (e.g. "layer1.0.conv1.").
  virtual void register_params(ParamArena&, const std::string& /*prefix*/) {}
  // PyTorch's default initialisation for this layer, drawn from Philox stream family `stream`.
  virtual void reset_parameters(Backend&, uint64_t /*seed*/, uint64_t& /*stream*/) {}
  virtual Shape output_shape(const Shape& input) const = 0;
  // Returns the layer's output buffer (valid until the next forward).
  virtual const Tensor& forward(const Tensor& x, const Pass& pass) = 0;
  // Returns dL/dx (valid until the next backward); undefined tensor if !need_dx.
  virtual const Tensor& backward(const Tensor& dy, const Pass& pass, bool need_dx) = 0;
  // Asks the layer to apply a following ReLU in its own output pass; true if it will (see Sequential::add).
  virtual bool absorb_relu() { return false; }
};

using LayerPtr = std::unique_ptr<Layer>;

class Conv2d final : public Layer {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         bool bias = true);
  std::string kind() const override { return "Conv2d"; }
  void register_params(ParamArena&, const std::string& prefix) override;
  void reset_parameters(Backend&, uint64_t seed, uint64_t& stream) override;
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;
  bool absorb_relu() override { return fused_relu_ = true; }
  Tensor weight, bias, weight_grad, bias_grad;

 private:
  bool fused_relu_ = false;
  Conv2dGeom geom(const Shape& in) const;
  int64_t in_, out_, k_, stride_, pad_;
  bool has_bias_;
  Tensor x_, y_, dx_;
  std::unique_ptr<LayerState> state_;  // what the backend keeps between forward and backward
};

class Linear final : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  std::string kind() const override { return "Linear"; }
  void register_params(ParamArena&, const std::string& prefix) override;
  void reset_parameters(Backend&, uint64_t seed, uint64_t& stream) override;
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool absorb_relu() override { return fused_relu_ = true; }
  Tensor weight, bias, weight_grad, bias_grad;

 private:
  bool fused_relu_ = false;
  int64_t in_, out_;
  bool has_bias_;
  Tensor x_, y_, dx_;
};

class BatchNorm2d final : public Layer {
 public:
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  std::string kind() const override { return "BatchNorm2d"; }
  void register_params(ParamArena&, const std::string& prefix) override;
  void reset_parameters(Backend&, uint64_t seed, uint64_t& stream) override;
  Shape output_shape(const Shape& in) const override { return in; }
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;
  bool absorb_relu() override { return fused_relu_ = true; }
  Tensor weight, bias, weight_grad, bias_grad;
  Tensor running_mean, running_var, num_batches_tracked;  // num_batches_tracked: I64 scalar

 private:
  bool fused_relu_ = false;
  int64_t channels_;
  float eps_, momentum_;
  bool last_batch_stats_ = false;
  Tensor x_, y_, dx_, save_mean_, save_invstd_;
};

class ReLU final : public Layer {
 public:
  std::string kind() const override { return "ReLU"; }
  Shape output_shape(const Shape& in) const override { return in; }
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;
  // The producer before it already applied the ReLU: forward only adopts its input as the output.
  void input_already_activated() { fused_ = true; }

 private:
  bool fused_ = false;
  Tensor y_, dx_;
};

class MaxPool2d final : public Layer {
 public:
  MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);  // stride 0 means = kernel
  std::string kind() const override { return "MaxPool2d"; }
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;

 private:
  Pool2dGeom geom(const Shape& in) const;
  int64_t k_, stride_, pad_;
  Shape in_shape_;
  Tensor argmax_, y_, dx_;
};

// AvgPool2d(kernel, stride, padding); kernel 0 means AdaptiveAvgPool2d(1) (the whole spatial extent).
class AvgPool2d final : public Layer {
 public:
  AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  static LayerPtr global() { return std::make_unique<AvgPool2d>(0); }
  std::string kind() const override { return k_ == 0 ? "AdaptiveAvgPool2d" : "AvgPool2d"; }
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;

 private:
  Pool2dGeom geom(const Shape& in) const;
  int64_t k_, stride_, pad_;
  Shape in_shape_;
  Tensor y_, dx_;
};

// [N, C, H, W] -> [N, C·H·W] in C-major order (torch.flatten(x, 1)). A view: no copy.
class Flatten final : public Layer {
 public:
  std::string kind() const override { return "Flatten"; }
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;

 private:
  Shape in_shape_;
  Tensor y_, dx_;
};

// Children run in order; each child's parameters are named prefix + child name + ".".
class Sequential : public Layer {
 public:
  Sequential() = default;
  // name "" for parameterless layers. A ReLU added right after a layer that can absorb it (conv, linear, batch
  // norm) is fused into that layer's output pass; names and gradients are unchanged.
  Sequential& add(std::string name, LayerPtr layer);
  std::string kind() const override { return "Sequential"; }
  void register_params(ParamArena&, const std::string& prefix) override;
  void reset_parameters(Backend&, uint64_t seed, uint64_t& stream) override;
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;
  size_t size() const { return children_.size(); }
  Layer& child(size_t i) { return *children_[i].second; }
  const std::string& child_name(size_t i) const { return children_[i].first; }

 private:
  std::vector<std::pair<std::string, LayerPtr>> children_;
  Tensor passthrough_;
};

// y = relu(main(x) + shortcut(x)); an empty shortcut is the identity (torchvision's BasicBlock tail).
class Residual final : public Layer {
 public:
  Residual(LayerPtr main, LayerPtr shortcut, std::string main_prefix = "", std::string shortcut_prefix = "downsample.");
  std::string kind() const override { return "Residual"; }
  void register_params(ParamArena&, const std::string& prefix) override;
  void reset_parameters(Backend&, uint64_t seed, uint64_t& stream) override;
  Shape output_shape(const Shape& in) const override;
  const Tensor& forward(const Tensor& x, const Pass&) override;
  const Tensor& backward(const Tensor& dy, const Pass&, bool need_dx) override;

 private:
  LayerPtr main_, shortcut_;
  std::string main_prefix_, shortcut_prefix_;
  Tensor y_, dsum_, dx_;
};

}  // namespace lethe
