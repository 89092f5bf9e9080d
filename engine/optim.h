#pragma once
// Optimizers with PyTorch's update semantics, each one fused pass over the flat parameter arena.
#include <memory>
#include <string>

#include "engine/arena.h"
#include "engine/backend.h"

namespace lethe {

struct OptimConfig {
  std::string kind = "sgd";  // "sgd" | "adam" | "adamw"
  float lr = 0.01f;
  float momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` (the schedule decides it) from the arena's current gradients.
  virtual void step(float lr) = 0;
  int64_t steps() const { return steps_; }

 protected:
  int64_t steps_ = 0;
};

// Throws UsageError for an unknown kind or invalid hyper-parameters (e.g. nesterov without momentum).
std::unique_ptr<Optimizer> make_optimizer(const OptimConfig&, ParamArena&, Backend&);

// Adam's hyperparameters for step t (counted from 1), the bias corrections formed in double as PyTorch does (Python
// floats) before they are rounded to the kernel's float.
kernels::AdamHyper adam_hyper(float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                              int64_t t);

}  // namespace lethe
