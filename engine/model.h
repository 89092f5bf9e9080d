#pragma once
// A model: its spec (architecture, input shape, classes, input normalisation), the layer tree, and the arena that
// holds its parameters. Input images are pixels in [0, 1]; the model applies its own per-channel normalisation
// first, so input gradients (inversion attacks) are taken in pixel space.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/layers.h"

namespace lethe {

struct ModelSpec {
  std::string arch;                       // "lenet5" | "convnet" | "resnet18" | "mlp"
  int64_t channels = 1, height = 28, width = 28;
  int64_t num_classes = 10;
  std::vector<int64_t> hidden;            // mlp hidden widths
  int64_t base_channels = 0;              // convnet and resnet18: channels of the first stage (0: the arch's 64)
  std::vector<float> mean, std;           // per-channel normalisation (empty: identity)
  Shape input_shape(int64_t n) const { return {n, channels, height, width}; }
};

class Model {
 public:
  // `net` maps normalised NCHW input to logits [N, num_classes]. Registers and allocates the arena.
  Model(ModelSpec spec, std::unique_ptr<Sequential> net, Backend& be);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }
  Backend& backend() const { return *be_; }
  ParamArena& arena() { return arena_; }
  const ParamArena& arena() const { return arena_; }
  Sequential& net() { return *net_; }
  // Free-form provenance written to the model file: dataset, split, seed, training config.
  nlohmann::json& metadata() { return metadata_; }
  const nlohmann::json& metadata() const { return metadata_; }

  // PyTorch's default initialisation of every layer, from Philox streams under `seed`.
  void init(uint64_t seed);

  // Forward with activations kept for backward. x: [N, C, H, W] pixels. Returns logits [N, K].
  const Tensor& forward(const Tensor& x, bool train);
  // Backward from dL/dlogits through the last forward. Accumulates parameter gradients if param_grads.
  // Returns dL/dx in pixel space if need_dx (else an undefined tensor).
  const Tensor& backward(const Tensor& dlogits, bool param_grads, bool need_dx);

  // Inference: eval mode, no activations kept, processed in chunks of `chunk` rows. logits: [N, K].
  void infer_logits(const Tensor& x, Tensor& logits, int64_t chunk = 1024);
  // Mean softmax cross-entropy of (x, labels) in eval mode and its gradient w.r.t. x; parameter gradients are
  // neither computed nor touched. Returns the loss.
  double input_gradient(const Tensor& x, const Tensor& labels, Tensor& dx);

  // The final Linear layer: row k of its weight is class k's weight vector.
  Linear& classifier();
  const Linear& classifier() const { return const_cast<Model*>(this)->classifier(); }
  Tensor class_row(int64_t k);  // view [in_features] of the classifier weight

  // State dict in registration order: parameters then, per layer, buffers. Names are PyTorch's.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  // Copies parameters and buffers from a model of the same architecture.
  void copy_state_from(const Model& other);

 private:
  const Tensor& run_forward(const Tensor& x, const Pass& pass);

  ModelSpec spec_;
  std::unique_ptr<Sequential> net_;
  Backend* be_;
  ParamArena arena_;
  nlohmann::json metadata_ = nlohmann::json::object();
  Tensor norm_mean_, norm_inv_std_;
  Tensor x_norm_, dx_, dlogits_, probs_, infer_chunk_logits_;
  Linear* classifier_ = nullptr;
};

}  // namespace lethe
