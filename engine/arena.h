#pragma once
// One contiguous buffer holds every trainable parameter of a model, and a mirrored buffer holds their gradients,
// so optimizers, parameter comparison, pruning and noise work on flat vectors. Layers get named views into both.
// Non-trainable state (BatchNorm running statistics, num_batches_tracked) lives beside it as named buffers.
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lethe {

class Backend;

struct ParamEntry {
  std::string name;  // PyTorch state-dict name, e.g. "conv1.weight"
  Shape shape;
  int64_t offset = 0;  // elements into the arena
  int64_t numel = 0;
  Tensor* value_slot = nullptr;  // the layer's view, bound at finalize()
  Tensor* grad_slot = nullptr;
};

struct BufferEntry {
  std::string name;  // e.g. "bn1.running_mean"
  Shape shape;
  DType dtype = DType::F32;
  Tensor* slot = nullptr;
};

class ParamArena {
 public:
  ParamArena() = default;
  ParamArena(const ParamArena&) = delete;
  ParamArena& operator=(const ParamArena&) = delete;

  // Registration, while the model is built. Names must be unique.
  void add_param(const std::string& name, const Shape& shape, Tensor* value_slot, Tensor* grad_slot);
  void add_buffer(const std::string& name, const Shape& shape, DType dtype, Tensor* slot);
  // Allocates both arenas (zeroed) and the buffers, and binds every slot to its view.
  void finalize(Device device);
  bool finalized() const { return finalized_; }

  const Tensor& params() const { return params_; }  // flat [P]
  const Tensor& grads() const { return grads_; }    // flat [P]
  int64_t size() const { return total_; }
  const std::vector<ParamEntry>& entries() const { return entries_; }
  const std::vector<BufferEntry>& buffers() const { return buffers_; }

  const ParamEntry* find(const std::string& name) const;   // nullptr if absent
  Tensor param(const std::string& name) const;              // throws if absent
  Tensor grad(const std::string& name) const;
  Tensor buffer(const std::string& name) const;

  void zero_grad(Backend& be);

 private:
  std::vector<ParamEntry> entries_;
  std::vector<BufferEntry> buffers_;
  std::vector<Tensor> buffer_storage_;
  Tensor params_, grads_;
  int64_t total_ = 0;
  bool finalized_ = false;
};

}  // namespace lethe
