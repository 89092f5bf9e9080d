#pragma once
// Per-element math shared by the CPU loops and the CUDA kernels. Each function is the single definition of its
// formula; backends only decide how to iterate.
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"
#include "kernels/philox.h"

namespace lethe::kernels {

// NaN propagates (x != x), as torch.relu does: a NaN must never be silently turned into a zero.
LETHE_HD float relu(float x) { return (x > 0.0f || x != x) ? x : 0.0f; }
// Gradient through ReLU, taken from the output (y > 0 iff x > 0), as PyTorch's threshold_backward does:
// zero where y <= 0, passed through otherwise (NaN included).
LETHE_HD float relu_backward(float y, float dy) { return y <= 0.0f ? 0.0f : dy; }

// (x - mean) / std per channel; the model's fixed input normalisation.
LETHE_HD float normalize(float x, float mean, float inv_std) { return (x - mean) * inv_std; }

// BatchNorm's affine normalisation with precomputed statistics.
LETHE_HD float batchnorm_apply(float x, float mean, float invstd, float gamma, float beta) {
  return (x - mean) * invstd * gamma + beta;
}
LETHE_HD float batchnorm_invstd(float var, float eps) { return 1.0f / sqrtf(var + eps); }
// Running statistics: PyTorch blends with `momentum` and stores the *unbiased* batch variance.
LETHE_HD float running_update(float running, float batch_value, float momentum) {
  return (1.0f - momentum) * running + momentum * batch_value;
}
// dx of train-mode BatchNorm for one element, given per-channel sums over the batch:
// sum_dy = Σ dy, sum_dy_xhat = Σ dy·x̂, count = N·H·W.
LETHE_HD float batchnorm_train_dx(float dy, float xhat, float gamma, float invstd, float sum_dy, float sum_dy_xhat,
                                  float count) {
  return gamma * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count);
}

// Projection onto [lo, hi]; NaN stays NaN (a box constraint must not hide a diverged value).
LETHE_HD float clamp_value(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

// The gradient of the inversion attack's image prior tv·TV(x) + l2·‖x‖² at element i of a stack of H×W planes, where
// TV(x) = Σ over horizontal and vertical neighbour pairs (a, b) within a plane of (a - b)²: each pair the element
// belongs to contributes 2·tv·(x_i - neighbour), and the L2 term 2·l2·x_i.
LETHE_HD float image_prior_grad(const float* x, int64_t i, int64_t height, int64_t width, float tv, float l2) {
  const int64_t col = i % width, row = (i / width) % height;
  const float v = x[i];
  float diff = 0.0f;
  if (col > 0) diff += v - x[i - 1];
  if (col + 1 < width) diff += v - x[i + 1];
  if (row > 0) diff += v - x[i - width];
  if (row + 1 < height) diff += v - x[i + width];
  return 2.0f * tv * diff + 2.0f * l2 * v;
}

struct SgdHyper {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
// torch.optim.SGD, one element: weight decay folds into the gradient; the momentum buffer starts as the gradient.
LETHE_HD void sgd_update(float& param, float grad, float& momentum_buf, const SgdHyper& h) {
  float d = grad + h.weight_decay * param;
  if (h.momentum != 0.0f) {
    momentum_buf = h.first_step ? d : h.momentum * momentum_buf + (1.0f - h.dampening) * d;
    d = h.nesterov ? d + h.momentum * momentum_buf : momentum_buf;
  }
  param -= h.lr * d;
}

struct AdamHyper {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;               // AdamW: decay the weights directly instead of adding wd·p to the gradient
  float bias_correction1;       // 1 - beta1^t
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
};
// torch.optim.Adam / AdamW (amsgrad off), one element, in PyTorch's operation order.
LETHE_HD void adam_update(float& param, float grad, float& m, float& v, const AdamHyper& h) {
  if (h.decoupled) {
    param *= 1.0f - h.lr * h.weight_decay;
  } else {
    grad += h.weight_decay * param;
  }
  m += (grad - m) * (1.0f - h.beta1);
  v = h.beta2 * v + (1.0f - h.beta2) * grad * grad;
  const float denom = sqrtf(v) / h.bias_correction2_sqrt + h.eps;
  param -= (h.lr / h.bias_correction1) * (m / denom);
}

struct AscentHyper {
  float lr;
  float sign = 1;       // +1 ascends the loss (NegGrad, Hu's approximate unlearning), -1 descends
  float max_norm = 0;   // > 0 clips the whole gradient to this L2 norm; <= 0 never clips
  float noise_std = 0;  // parameter-obfuscation defence: Gaussian noise added to the update; 0 draws nothing
  uint64_t seed = 0, stream = 0;  // Philox normal stream of the noise, as fill_normal(t, 0, 1, seed, stream)
};
// torch.nn.utils.clip_grad_norm_'s scale factor from the gradient's sum of squares, in double: max_norm / (norm +
// 1e-6) when that is below 1, else 1. A NaN norm (NaN or overflow in the gradient, which clipping cannot repair)
// gives 1, so the NaN reaches the parameters instead of being hidden. Used by clip_grad_norm on every backend and by
// the ascent step.
LETHE_HD float clip_coefficient(double sum_squares, float max_norm) {
  const double coef = static_cast<double>(max_norm) / (sqrt(sum_squares) + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}
// The ascent step's coefficient: max_norm <= 0 means no clipping.
LETHE_HD float ascent_clip_coefficient(double sum_squares, float max_norm) {
  return max_norm > 0.0f ? clip_coefficient(sum_squares, max_norm) : 1.0f;
}
// One element of the unlearning update: param += sign·lr·c·grad + noise_std·N_i, N_i = philox_normal(seed, stream, i)
// (what fill_normal(t, 0, 1, seed, stream) writes at element i). noise_std = 0 skips the draw, so the result is
// bit-identical to an update without the defence.
LETHE_HD void ascent_update(float& param, float grad, float coef, uint64_t i, const AscentHyper& h) {
  float delta = h.sign * h.lr * coef * grad;
  if (h.noise_std != 0.0f) delta += h.noise_std * philox_normal(h.seed, h.stream, i);
  param += delta;
}

}  // namespace lethe::kernels
