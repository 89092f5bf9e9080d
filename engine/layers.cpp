#include "engine/layers.h"

#include <cmath>

namespace lethe {

namespace {

// PyTorch's default for Conv2d and Linear: kaiming_uniform_(a=√5) on the weight, which reduces to
// U(-1/√fan_in, 1/√fan_in), and the same bound for the bias.
void pytorch_default_init(Backend& be, Tensor& weight, Tensor* bias, int64_t fan_in, uint64_t seed, uint64_t& stream) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  be.fill_uniform(weight, -bound, bound, seed, stream++);
  if (bias) be.fill_uniform(*bias, -bound, bound, seed, stream++);
}

const Tensor kUndefined;

}  // namespace

// ---------------------------------------------------------------- Conv2d
Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding, bool bias)
    : in_(in_channels), out_(out_channels), k_(kernel), stride_(stride), pad_(padding), has_bias_(bias) {
  LETHE_CHECK(in_ > 0 && out_ > 0 && k_ > 0 && stride_ > 0 && pad_ >= 0, "Conv2d hyper-parameters");
}

void Conv2d::register_params(ParamArena& arena, const std::string& prefix) {
  arena.add_param(prefix + "weight", {out_, in_, k_, k_}, &weight, &weight_grad);
  if (has_bias_) arena.add_param(prefix + "bias", {out_}, &bias, &bias_grad);
}

void Conv2d::reset_parameters(Backend& be, uint64_t seed, uint64_t& stream) {
  pytorch_default_init(be, weight, has_bias_ ? &bias : nullptr, in_ * k_ * k_, seed, stream);
}

Conv2dGeom Conv2d::geom(const Shape& in) const {
  LETHE_CHECK(in.size() == 4 && in[1] == in_, "Conv2d expects [N, " + std::to_string(in_) + ", H, W], got " + shape_str(in));
  const Conv2dGeom g = Conv2dGeom::make(in[0], in[1], in[2], in[3], out_, k_, k_, stride_, pad_);
  LETHE_CHECK(g.ho > 0 && g.wo > 0, "Conv2d input " + shape_str(in) + " is smaller than the kernel");
  return g;
}

Shape Conv2d::output_shape(const Shape& in) const {
  const Conv2dGeom g = geom(in);
  return {g.n, g.o, g.ho, g.wo};
}

const Tensor& Conv2d::forward(const Tensor& x, const Pass& pass) {
  const Conv2dGeom g = geom(x.shape());
  Tensor::ensure(y_, {g.n, g.o, g.ho, g.wo}, DType::F32, x.device());
  // Only a training pass (weight gradients to come) benefits from keeping the forward's columns.
  const bool save = pass.keep && pass.param_grads;
  if (!save) state_.reset();
  pass.be->conv2d_forward(x, weight, has_bias_ ? &bias : nullptr, y_, g, fused_relu_, save ? &state_ : nullptr);
  x_ = pass.keep ? x : Tensor();
  return y_;
}

const Tensor& Conv2d::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  LETHE_CHECK(x_.defined(), "Conv2d::backward without a kept forward");
  const Conv2dGeom g = geom(x_.shape());
  if (need_dx) Tensor::ensure(dx_, x_.shape(), DType::F32, x_.device());
  const bool pg = pass.param_grads;
  pass.be->conv2d_backward(x_, weight, dy, need_dx ? &dx_ : nullptr, pg ? &weight_grad : nullptr,
                           pg && has_bias_ ? &bias_grad : nullptr, g, &state_);
  return need_dx ? dx_ : kUndefined;
}

// ---------------------------------------------------------------- Linear
Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_(in_features), out_(out_features), has_bias_(bias) {
  LETHE_CHECK(in_ > 0 && out_ > 0, "Linear sizes");
}

void Linear::register_params(ParamArena& arena, const std::string& prefix) {
  arena.add_param(prefix + "weight", {out_, in_}, &weight, &weight_grad);
  if (has_bias_) arena.add_param(prefix + "bias", {out_}, &bias, &bias_grad);
}

void Linear::reset_parameters(Backend& be, uint64_t seed, uint64_t& stream) {
  pytorch_default_init(be, weight, has_bias_ ? &bias : nullptr, in_, seed, stream);
}

Shape Linear::output_shape(const Shape& in) const {
  LETHE_CHECK(in.size() == 2 && in[1] == in_,
              "Linear expects [N, " + std::to_string(in_) + "], got " + shape_str(in));
  return {in[0], out_};
}

const Tensor& Linear::forward(const Tensor& x, const Pass& pass) {
  Tensor::ensure(y_, output_shape(x.shape()), DType::F32, x.device());
  pass.be->linear_forward(x, weight, has_bias_ ? &bias : nullptr, y_, fused_relu_);
  x_ = pass.keep ? x : Tensor();
  return y_;
}

const Tensor& Linear::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  LETHE_CHECK(x_.defined(), "Linear::backward without a kept forward");
  if (need_dx) Tensor::ensure(dx_, x_.shape(), DType::F32, x_.device());
  const bool pg = pass.param_grads;
  pass.be->linear_backward(x_, weight, dy, need_dx ? &dx_ : nullptr, pg ? &weight_grad : nullptr,
                           pg && has_bias_ ? &bias_grad : nullptr);
  return need_dx ? dx_ : kUndefined;
}

// ---------------------------------------------------------------- BatchNorm2d
BatchNorm2d::BatchNorm2d(int64_t channels, float eps, float momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  LETHE_CHECK(channels_ > 0, "BatchNorm2d channels");
}

void BatchNorm2d::register_params(ParamArena& arena, const std::string& prefix) {
  arena.add_param(prefix + "weight", {channels_}, &weight, &weight_grad);
  arena.add_param(prefix + "bias", {channels_}, &bias, &bias_grad);
  arena.add_buffer(prefix + "running_mean", {channels_}, DType::F32, &running_mean);
  arena.add_buffer(prefix + "running_var", {channels_}, DType::F32, &running_var);
  arena.add_buffer(prefix + "num_batches_tracked", {}, DType::I64, &num_batches_tracked);
}

void BatchNorm2d::reset_parameters(Backend& be, uint64_t, uint64_t&) {
  be.fill(weight, 1.0f);
  be.fill(bias, 0.0f);
  be.fill(running_mean, 0.0f);
  be.fill(running_var, 1.0f);
  const int64_t zero = 0;
  copy_bytes(num_batches_tracked.raw(), num_batches_tracked.device(), &zero, Device::CPU, sizeof zero);
}

const Tensor& BatchNorm2d::forward(const Tensor& x, const Pass& pass) {
  LETHE_CHECK(x.ndim() == 4 && x.dim(1) == channels_,
              "BatchNorm2d(" + std::to_string(channels_) + ") got input " + shape_str(x.shape()));
  Tensor::ensure(y_, x.shape(), DType::F32, x.device());
  Tensor::ensure(save_mean_, {channels_}, DType::F32, x.device());
  Tensor::ensure(save_invstd_, {channels_}, DType::F32, x.device());
  last_batch_stats_ = pass.train;
  pass.be->batchnorm2d_forward(x, weight, bias, running_mean, running_var, pass.train, momentum_, eps_, y_, save_mean_,
                               save_invstd_, fused_relu_);
  if (pass.train) {
    int64_t tracked = 0;
    copy_bytes(&tracked, Device::CPU, num_batches_tracked.raw(), num_batches_tracked.device(), sizeof tracked);
    ++tracked;
    copy_bytes(num_batches_tracked.raw(), num_batches_tracked.device(), &tracked, Device::CPU, sizeof tracked);
  }
  x_ = pass.keep ? x : Tensor();
  return y_;
}

const Tensor& BatchNorm2d::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  LETHE_CHECK(x_.defined(), "BatchNorm2d::backward without a kept forward");
  if (need_dx) Tensor::ensure(dx_, x_.shape(), DType::F32, x_.device());
  const bool pg = pass.param_grads;
  pass.be->batchnorm2d_backward(x_, weight, save_mean_, save_invstd_, dy, last_batch_stats_, need_dx ? &dx_ : nullptr,
                                pg ? &weight_grad : nullptr, pg ? &bias_grad : nullptr);
  return need_dx ? dx_ : kUndefined;
}

// ---------------------------------------------------------------- ReLU
const Tensor& ReLU::forward(const Tensor& x, const Pass& pass) {
  if (fused_) {
    y_ = x;
    return y_;
  }
  Tensor::ensure(y_, x.shape(), DType::F32, x.device());
  pass.be->relu_forward(x, y_);
  return y_;
}

const Tensor& ReLU::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  if (!need_dx) return kUndefined;
  Tensor::ensure(dx_, y_.shape(), DType::F32, y_.device());
  pass.be->relu_backward(y_, dy, dx_);
  return dx_;
}

// ---------------------------------------------------------------- MaxPool2d
MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding)
    : k_(kernel), stride_(stride > 0 ? stride : kernel), pad_(padding) {
  LETHE_CHECK(k_ > 0 && pad_ >= 0 && 2 * pad_ <= k_, "MaxPool2d: padding must be at most half the kernel");
}

Pool2dGeom MaxPool2d::geom(const Shape& in) const {
  LETHE_CHECK(in.size() == 4, "MaxPool2d expects NCHW, got " + shape_str(in));
  const Pool2dGeom g = Pool2dGeom::make(in[0], in[1], in[2], in[3], k_, k_, stride_, pad_);
  LETHE_CHECK(g.ho > 0 && g.wo > 0, "MaxPool2d input " + shape_str(in) + " is smaller than the window");
  return g;
}

Shape MaxPool2d::output_shape(const Shape& in) const {
  const Pool2dGeom g = geom(in);
  return {g.n, g.c, g.ho, g.wo};
}

const Tensor& MaxPool2d::forward(const Tensor& x, const Pass& pass) {
  const Pool2dGeom g = geom(x.shape());
  Tensor::ensure(y_, {g.n, g.c, g.ho, g.wo}, DType::F32, x.device());
  if (pass.keep) Tensor::ensure(argmax_, y_.shape(), DType::I64, x.device());
  pass.be->maxpool2d_forward(x, y_, pass.keep ? &argmax_ : nullptr, g);
  in_shape_ = x.shape();
  if (!pass.keep) argmax_ = Tensor();
  return y_;
}

const Tensor& MaxPool2d::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  if (!need_dx) return kUndefined;
  LETHE_CHECK(argmax_.defined(), "MaxPool2d::backward without a kept forward");
  Tensor::ensure(dx_, in_shape_, DType::F32, dy.device());
  pass.be->maxpool2d_backward(argmax_, dy, dx_, geom(in_shape_));
  return dx_;
}

// ---------------------------------------------------------------- AvgPool2d
AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding)
    : k_(kernel), stride_(stride > 0 ? stride : kernel), pad_(padding) {
  LETHE_CHECK(k_ >= 0 && pad_ >= 0 && 2 * pad_ <= k_, "AvgPool2d: padding must be at most half the kernel");
}

Pool2dGeom AvgPool2d::geom(const Shape& in) const {
  LETHE_CHECK(in.size() == 4, "AvgPool2d expects NCHW, got " + shape_str(in));
  if (k_ == 0) return Pool2dGeom::make(in[0], in[1], in[2], in[3], in[2], in[3], 1, 0);  // adaptive, output 1x1
  const Pool2dGeom g = Pool2dGeom::make(in[0], in[1], in[2], in[3], k_, k_, stride_, pad_);
  LETHE_CHECK(g.ho > 0 && g.wo > 0, "AvgPool2d input " + shape_str(in) + " is smaller than the window");
  return g;
}

Shape AvgPool2d::output_shape(const Shape& in) const {
  const Pool2dGeom g = geom(in);
  return {g.n, g.c, g.ho, g.wo};
}

const Tensor& AvgPool2d::forward(const Tensor& x, const Pass& pass) {
  const Pool2dGeom g = geom(x.shape());
  Tensor::ensure(y_, {g.n, g.c, g.ho, g.wo}, DType::F32, x.device());
  pass.be->avgpool2d_forward(x, y_, g);
  in_shape_ = x.shape();
  return y_;
}

const Tensor& AvgPool2d::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  if (!need_dx) return kUndefined;
  Tensor::ensure(dx_, in_shape_, DType::F32, dy.device());
  pass.be->avgpool2d_backward(dy, dx_, geom(in_shape_));
  return dx_;
}

// ---------------------------------------------------------------- Flatten
Shape Flatten::output_shape(const Shape& in) const {
  LETHE_CHECK(!in.empty(), "Flatten of a scalar");
  int64_t rest = 1;
  for (size_t i = 1; i < in.size(); ++i) rest *= in[i];
  return {in[0], rest};
}

const Tensor& Flatten::forward(const Tensor& x, const Pass&) {
  in_shape_ = x.shape();
  y_ = x.reshape(output_shape(x.shape()));
  return y_;
}

const Tensor& Flatten::backward(const Tensor& dy, const Pass&, bool need_dx) {
  if (!need_dx) return kUndefined;
  dx_ = dy.reshape(in_shape_);
  return dx_;
}

// ---------------------------------------------------------------- Sequential
Sequential& Sequential::add(std::string name, LayerPtr layer) {
  if (auto* relu = dynamic_cast<ReLU*>(layer.get()); relu && !children_.empty() && children_.back().second->absorb_relu())
    relu->input_already_activated();
  children_.emplace_back(std::move(name), std::move(layer));
  return *this;
}

void Sequential::register_params(ParamArena& arena, const std::string& prefix) {
  for (auto& [name, layer] : children_) layer->register_params(arena, name.empty() ? prefix : prefix + name + ".");
}

void Sequential::reset_parameters(Backend& be, uint64_t seed, uint64_t& stream) {
  for (auto& child : children_) child.second->reset_parameters(be, seed, stream);
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (const auto& child : children_) s = child.second->output_shape(s);
  return s;
}

const Tensor& Sequential::forward(const Tensor& x, const Pass& pass) {
  if (children_.empty()) {
    passthrough_ = x;
    return passthrough_;
  }
  const Tensor* h = &x;
  for (auto& child : children_) h = &child.second->forward(*h, pass);
  return *h;
}

const Tensor& Sequential::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  if (children_.empty()) {
    passthrough_ = dy;
    return need_dx ? passthrough_ : kUndefined;
  }
  const Tensor* d = &dy;
  for (size_t i = children_.size(); i-- > 0;) d = &children_[i].second->backward(*d, pass, i > 0 || need_dx);
  return *d;
}

// ---------------------------------------------------------------- Residual
Residual::Residual(LayerPtr main, LayerPtr shortcut, std::string main_prefix, std::string shortcut_prefix)
    : main_(std::move(main)),
      shortcut_(std::move(shortcut)),
      main_prefix_(std::move(main_prefix)),
      shortcut_prefix_(std::move(shortcut_prefix)) {
  LETHE_CHECK(main_ != nullptr, "Residual needs a main branch");
}

void Residual::register_params(ParamArena& arena, const std::string& prefix) {
  main_->register_params(arena, prefix + main_prefix_);
  if (shortcut_) shortcut_->register_params(arena, prefix + shortcut_prefix_);
}

void Residual::reset_parameters(Backend& be, uint64_t seed, uint64_t& stream) {
  main_->reset_parameters(be, seed, stream);
  if (shortcut_) shortcut_->reset_parameters(be, seed, stream);
}

Shape Residual::output_shape(const Shape& in) const {
  const Shape m = main_->output_shape(in);
  const Shape s = shortcut_ ? shortcut_->output_shape(in) : in;
  LETHE_CHECK(m == s, "Residual branches disagree: " + shape_str(m) + " vs " + shape_str(s));
  return m;
}

const Tensor& Residual::forward(const Tensor& x, const Pass& pass) {
  const Tensor& m = main_->forward(x, pass);
  const Tensor& s = shortcut_ ? shortcut_->forward(x, pass) : x;
  LETHE_CHECK(m.shape() == s.shape(), "Residual branches disagree: " + shape_str(m.shape()) + " vs " + shape_str(s.shape()));
  Tensor::ensure(y_, m.shape(), DType::F32, m.device());
  pass.be->add(m, s, y_);
  pass.be->relu_forward(y_, y_);
  return y_;
}

const Tensor& Residual::backward(const Tensor& dy, const Pass& pass, bool need_dx) {
  Tensor::ensure(dsum_, y_.shape(), DType::F32, y_.device());
  pass.be->relu_backward(y_, dy, dsum_);
  const Tensor& dmain = main_->backward(dsum_, pass, need_dx);
  if (!shortcut_) {
    if (!need_dx) return kUndefined;
    Tensor::ensure(dx_, dmain.shape(), DType::F32, dmain.device());
    pass.be->add(dmain, dsum_, dx_);
    return dx_;
  }
  const Tensor& dshort = shortcut_->backward(dsum_, pass, need_dx);
  if (!need_dx) return kUndefined;
  Tensor::ensure(dx_, dmain.shape(), DType::F32, dmain.device());
  pass.be->add(dmain, dshort, dx_);
  return dx_;
}

}  // namespace lethe
