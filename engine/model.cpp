#include "engine/model.h"

#include <algorithm>

#include "engine/loss.h"

namespace lethe {

namespace {
// The classifier is the last Linear reached in the layer tree (the final fc of every net here).
Linear* find_last_linear(Layer& layer) {
  if (auto* lin = dynamic_cast<Linear*>(&layer)) return lin;
  if (auto* seq = dynamic_cast<Sequential*>(&layer)) {
    for (size_t i = seq->size(); i-- > 0;)
      if (Linear* found = find_last_linear(seq->child(i))) return found;
  }
  return nullptr;
}
}  // namespace

Model::Model(ModelSpec spec, std::unique_ptr<Sequential> net, Backend& be)
    : spec_(std::move(spec)), net_(std::move(net)), be_(&be) {
  LETHE_CHECK(net_ != nullptr, "Model without a net");
  LETHE_CHECK(spec_.mean.size() == spec_.std.size(), "mean and std must have the same length");
  LETHE_CHECK(spec_.mean.empty() || static_cast<int64_t>(spec_.mean.size()) == spec_.channels,
              "normalisation needs one mean/std per input channel");
  net_->register_params(arena_, "");
  arena_.finalize(be.device());
  if (!spec_.mean.empty()) {
    std::vector<float> inv(spec_.std.size());
    for (size_t i = 0; i < inv.size(); ++i) {
      LETHE_CHECK(spec_.std[i] > 0, "normalisation std must be positive");
      inv[i] = 1.0f / spec_.std[i];
    }
    norm_mean_ = Tensor::empty({spec_.channels}, DType::F32, be.device());
    norm_inv_std_ = Tensor::empty({spec_.channels}, DType::F32, be.device());
    copy_bytes(norm_mean_.raw(), be.device(), spec_.mean.data(), Device::CPU, inv.size() * sizeof(float));
    copy_bytes(norm_inv_std_.raw(), be.device(), inv.data(), Device::CPU, inv.size() * sizeof(float));
  }
  classifier_ = find_last_linear(*net_);
  const Shape out = net_->output_shape(spec_.input_shape(1));
  LETHE_CHECK(out == Shape({1, spec_.num_classes}),
              "net maps " + shape_str(spec_.input_shape(1)) + " to " + shape_str(out) + ", not [1, num_classes]");
}

void Model::init(uint64_t seed) {
  uint64_t stream = 0;
  net_->reset_parameters(*be_, seed, stream);
}

const Tensor& Model::forward(const Tensor& x, bool train) { return run_forward(x, Pass{be_, train, true, true}); }

const Tensor& Model::run_forward(const Tensor& x, const Pass& pass) {
  LETHE_CHECK(x.ndim() == 4 && x.dim(1) == spec_.channels && x.dim(2) == spec_.height && x.dim(3) == spec_.width,
              "model input " + shape_str(x.shape()) + " does not match " + shape_str(spec_.input_shape(x.dim(0))));
  if (!norm_mean_.defined()) return net_->forward(x, pass);
  Tensor::ensure(x_norm_, x.shape(), DType::F32, be_->device());
  be_->normalize_forward(x, norm_mean_, norm_inv_std_, x_norm_);
  return net_->forward(x_norm_, pass);
}

const Tensor& Model::backward(const Tensor& dlogits, bool param_grads, bool need_dx) {
  const Pass pass{be_, true, true, param_grads};
  const Tensor& d = net_->backward(dlogits, pass, need_dx);
  if (!need_dx || !norm_mean_.defined()) return d;
  Tensor::ensure(dx_, d.shape(), DType::F32, be_->device());
  be_->normalize_backward(d, norm_inv_std_, dx_);
  return dx_;
}

void Model::infer_logits(const Tensor& x, Tensor& logits, int64_t chunk) {
  LETHE_CHECK(chunk > 0, "chunk must be positive");
  LETHE_CHECK(x.ndim() == 4, "infer_logits expects NCHW input");
  const int64_t n = x.dim(0);
  Tensor::ensure(logits, {n, spec_.num_classes}, DType::F32, be_->device());
  const Pass pass{be_, false, false, false};
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t count = std::min(chunk, n - start);
    const Tensor xs = x.rows(start, count);
    LETHE_CHECK(xs.dim(1) == spec_.channels && xs.dim(2) == spec_.height && xs.dim(3) == spec_.width,
                "model input " + shape_str(x.shape()) + " does not match " + shape_str(spec_.input_shape(n)));
    const Tensor* in = &xs;
    if (norm_mean_.defined()) {
      Tensor::ensure(x_norm_, xs.shape(), DType::F32, be_->device());
      be_->normalize_forward(xs, norm_mean_, norm_inv_std_, x_norm_);
      in = &x_norm_;
    }
    const Tensor& out = net_->forward(*in, pass);
    Tensor dst = logits.rows(start, count);
    be_->copy(out, dst);
  }
}

double Model::input_gradient(const Tensor& x, const Tensor& labels, Tensor& dx) {
  // Eval mode, activations kept, and no parameter gradients to come (so nothing is saved for them).
  const Tensor& logits = run_forward(x, Pass{be_, false, true, false});
  SoftmaxCrossEntropy loss;
  const double value = loss.forward(*be_, logits, labels);
  const Tensor& d = backward(loss.backward(*be_, labels), false, true);
  Tensor::ensure(dx, x.shape(), DType::F32, be_->device());
  be_->copy(d, dx);
  return value;
}

Linear& Model::classifier() {
  LETHE_CHECK(classifier_ != nullptr, "model has no Linear classifier");
  return *classifier_;
}

Tensor Model::class_row(int64_t k) {
  Linear& fc = classifier();
  LETHE_CHECK(k >= 0 && k < fc.out_features(), "class index out of range");
  return fc.weight.rows(k, 1).reshape({fc.in_features()});
}

std::vector<std::pair<std::string, Tensor>> Model::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& e : arena_.entries()) out.emplace_back(e.name, arena_.param(e.name));
  for (const auto& b : arena_.buffers()) out.emplace_back(b.name, arena_.buffer(b.name));
  return out;
}

void Model::copy_state_from(const Model& other) {
  LETHE_CHECK(other.spec_.arch == spec_.arch && other.arena_.size() == arena_.size(), "copy_state_from: arch differs");
  Tensor dst = arena_.params();
  be_->copy(other.arena_.params(), dst);
  for (const auto& b : arena_.buffers()) {
    Tensor to = arena_.buffer(b.name);
    const Tensor from = other.arena_.buffer(b.name);
    copy_bytes(to.raw(), to.device(), from.raw(), from.device(), from.nbytes());
  }
}

}  // namespace lethe
