#include "engine/optim.h"

#include <cmath>
#include <cstdio>

namespace lethe {
namespace {

// Hyper-parameter checks follow torch.optim's constructors; `!(x >= 0)` also rejects NaN, which PyTorch's
// `not 0.0 <= x` rejects too. Infinities are refused as well: no finite training run wants them.
std::string num(float x) {
  char s[32];
  std::snprintf(s, sizeof s, "%g", static_cast<double>(x));  // %g keeps eps = 1e-8 readable
  return s;
}
void require(bool ok, const std::string& optimizer, const std::string& what, float value) {
  if (!ok) throw UsageError("invalid " + optimizer + " " + what + ": " + num(value));
}
bool non_negative(float x) { return std::isfinite(x) && x >= 0.0f; }

void check_lr(float lr, const std::string& optimizer) { require(non_negative(lr), optimizer, "learning rate", lr); }

// The optimizer state lives beside the arena: flat, arena-sized, zeroed, on the arena's device.
Tensor state_like(const ParamArena& arena) {
  return Tensor::zeros({arena.size()}, DType::F32, arena.params().device());
}

class Sgd final : public Optimizer {
 public:
  Sgd(const OptimConfig& cfg, ParamArena& arena, Backend& be) : cfg_(cfg), arena_(arena), be_(be) {
    // Allocated even without momentum: the backend's fused pass takes the buffer unconditionally, and the
    // per-element update never touches it when momentum is 0.
    momentum_buf_ = state_like(arena);
  }

  void step(float lr) override {
    check_lr(lr, "SGD");
    const kernels::SgdHyper h{lr, cfg_.momentum, cfg_.dampening, cfg_.weight_decay, cfg_.nesterov,
                              /*first_step=*/steps_ == 0};
    Tensor params = arena_.params();  // a view: the update writes through it into the arena
    be_.sgd_step(params, arena_.grads(), momentum_buf_, h);
    ++steps_;
  }

 private:
  OptimConfig cfg_;
  ParamArena& arena_;
  Backend& be_;
  Tensor momentum_buf_;
};

class Adam final : public Optimizer {
 public:
  Adam(const OptimConfig& cfg, bool decoupled, ParamArena& arena, Backend& be)
      : cfg_(cfg), decoupled_(decoupled), arena_(arena), be_(be) {
    m_ = state_like(arena);
    v_ = state_like(arena);
  }

  void step(float lr) override {
    check_lr(lr, decoupled_ ? "AdamW" : "Adam");
    const kernels::AdamHyper h =
        adam_hyper(lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, decoupled_, steps_ + 1);
    Tensor params = arena_.params();
    be_.adam_step(params, arena_.grads(), m_, v_, h);
    ++steps_;
  }

 private:
  OptimConfig cfg_;
  bool decoupled_;
  ParamArena& arena_;
  Backend& be_;
  Tensor m_, v_;
};

void validate_sgd(const OptimConfig& c) {
  check_lr(c.lr, "SGD");
  require(non_negative(c.momentum), "SGD", "momentum", c.momentum);
  require(std::isfinite(c.dampening), "SGD", "dampening", c.dampening);
  require(non_negative(c.weight_decay), "SGD", "weight_decay", c.weight_decay);
  if (c.nesterov && (c.momentum <= 0.0f || c.dampening != 0.0f))
    throw UsageError("SGD: nesterov momentum requires momentum > 0 and dampening = 0 (got momentum " + num(c.momentum) +
                     ", dampening " + num(c.dampening) + ")");
}

void validate_adam(const OptimConfig& c, const std::string& name) {
  check_lr(c.lr, name);
  require(non_negative(c.eps), name, "eps", c.eps);
  require(c.beta1 >= 0.0f && c.beta1 < 1.0f, name, "beta1 (must be in [0, 1))", c.beta1);
  require(c.beta2 >= 0.0f && c.beta2 < 1.0f, name, "beta2 (must be in [0, 1))", c.beta2);
  require(non_negative(c.weight_decay), name, "weight_decay", c.weight_decay);
}

}  // namespace

kernels::AdamHyper adam_hyper(float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                              int64_t t) {
  // PyTorch counts steps from 1 and forms the bias corrections in double (Python floats) before use.
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  return {lr, beta1, beta2, eps, weight_decay, decoupled, static_cast<float>(bc1), static_cast<float>(bc2_sqrt)};
}

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, ParamArena& arena, Backend& be) {
  LETHE_CHECK(arena.finalized(), "optimizer created before the parameter arena was finalized");
  LETHE_CHECK(arena.params().device() == be.device(),
              std::string("arena on ") + device_name(arena.params().device()) + ", backend on " +
                  device_name(be.device()));
  if (cfg.kind == "sgd") {
    validate_sgd(cfg);
    return std::make_unique<Sgd>(cfg, arena, be);
  }
  if (cfg.kind == "adam" || cfg.kind == "adamw") {
    const bool decoupled = cfg.kind == "adamw";
    validate_adam(cfg, decoupled ? "AdamW" : "Adam");
    return std::make_unique<Adam>(cfg, decoupled, arena, be);
  }
  throw UsageError("unknown optimizer '" + cfg.kind + "' (known: sgd, adam, adamw)");
}

}  // namespace lethe
