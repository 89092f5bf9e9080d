#include "engine/arena.h"

#include "engine/backend.h"

namespace lethe {

void ParamArena::add_param(const std::string& name, const Shape& shape, Tensor* value_slot, Tensor* grad_slot) {
  LETHE_CHECK(!finalized_, "add_param after finalize: " + name);
  LETHE_CHECK(find(name) == nullptr, "duplicate parameter " + name);
  ParamEntry e;
  e.name = name;
  e.shape = shape;
  e.numel = shape_numel(shape);
  e.offset = total_;
  e.value_slot = value_slot;
  e.grad_slot = grad_slot;
  total_ += e.numel;
  entries_.push_back(std::move(e));
}

void ParamArena::add_buffer(const std::string& name, const Shape& shape, DType dtype, Tensor* slot) {
  LETHE_CHECK(!finalized_, "add_buffer after finalize: " + name);
  for (const auto& b : buffers_) LETHE_CHECK(b.name != name, "duplicate buffer " + name);
  buffers_.push_back(BufferEntry{name, shape, dtype, slot});
}

void ParamArena::finalize(Device device) {
  LETHE_CHECK(!finalized_, "finalize twice");
  params_ = Tensor::zeros({total_}, DType::F32, device);
  grads_ = Tensor::zeros({total_}, DType::F32, device);
  for (auto& e : entries_) {
    if (e.value_slot) *e.value_slot = params_.rows(e.offset, e.numel).reshape(e.shape);
    if (e.grad_slot) *e.grad_slot = grads_.rows(e.offset, e.numel).reshape(e.shape);
  }
  buffer_storage_.reserve(buffers_.size());
  for (auto& b : buffers_) {
    buffer_storage_.push_back(Tensor::zeros(b.shape, b.dtype, device));
    if (b.slot) *b.slot = buffer_storage_.back();
  }
  finalized_ = true;
}

const ParamEntry* ParamArena::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

Tensor ParamArena::param(const std::string& name) const {
  const ParamEntry* e = find(name);
  LETHE_CHECK(e != nullptr, "no parameter named " + name);
  return params_.rows(e->offset, e->numel).reshape(e->shape);
}

Tensor ParamArena::grad(const std::string& name) const {
  const ParamEntry* e = find(name);
  LETHE_CHECK(e != nullptr, "no parameter named " + name);
  return grads_.rows(e->offset, e->numel).reshape(e->shape);
}

Tensor ParamArena::buffer(const std::string& name) const {
  for (size_t i = 0; i < buffers_.size(); ++i)
    if (buffers_[i].name == name) return buffer_storage_[i];
  LETHE_CHECK(false, "no buffer named " + name);
  return {};
}

void ParamArena::zero_grad(Backend& be) {
  Tensor g = grads_;
  be.fill(g, 0.0f);
}

}  // namespace lethe
