#pragma once
// Zeroth-order optimisation (ZOO, Chen et al. 2017) as Hu et al.'s label-inference attack uses it to make probes: an
// image x (D pixels) is pushed towards confidence in class y using nothing but the model's output probabilities.
// One step, for each probe:
//   1. S distinct coordinates are drawn; each is moved by +h and by -h, giving 2S query images (zoo_query_value);
//      every probe's queries are one batched forward;
//   2. from the two losses f = -log p_y of each coordinate, the symmetric difference ĝ = (f+ - f-) / 2h estimates
//      ∂f/∂x_i (zoo_gradient_estimate), computed in double from the logits so the 1e-4 step is not lost to rounding;
//   3. each drawn coordinate takes an Adam step with its own moments and its own bias-correction powers (coordinate
//      Adam: a coordinate drawn t times has been updated t times), and is clamped to [0, 1] (zoo_adam_coordinate).
// The Adam arithmetic is explicit fmaf and correctly rounded division and square root, so the CPU twin and the CUDA
// kernel give the same bits from the same logits.
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"

namespace lethe::kernels {

struct ZooHyper {
  float h = 1e-4f;       // the symmetric difference's step
  float beta1 = 0.9f;    // Adam
  float beta2 = 0.999f;
  float eps = 1e-8f;
};

// The Adam state of M probes of D pixels: four planes of [M, D], stored [4, M, D] so each plane is contiguous.
enum class ZooState : int64_t { Moment1 = 0, Moment2 = 1, Beta1Power = 2, Beta2Power = 3 };
constexpr int64_t kZooStatePlanes = 4;

// Query row r's pixel d, for a probe whose coordinate j is `coord`: row 2j moves it by +h, row 2j + 1 by -h.
LETHE_HD float zoo_query_value(float x, int64_t d, int64_t coord, int64_t sign_row, float h) {
  return d != coord ? x : (sign_row == 0 ? x + h : x - h);
}

// log p_y from one row of logits, in double (the two losses of a symmetric difference differ in the fourth digit).
LETHE_HD double zoo_log_prob(const float* z, int64_t num_logits, int64_t y) {
  float m = z[0];
  for (int64_t j = 1; j < num_logits; ++j) m = z[j] > m ? z[j] : m;
  double sum = 0.0;
  for (int64_t j = 0; j < num_logits; ++j) sum += exp(static_cast<double>(z[j]) - static_cast<double>(m));
  return static_cast<double>(z[y]) - static_cast<double>(m) - log(sum);
}

// ĝ = (f(x + h e_i) - f(x - h e_i)) / 2h with f = -log p_y, from the logits of the two query rows.
LETHE_HD float zoo_gradient_estimate(const float* logits_plus, const float* logits_minus, int64_t num_logits,
                                     int64_t y, float h) {
  const double diff = zoo_log_prob(logits_minus, num_logits, y) - zoo_log_prob(logits_plus, num_logits, y);
  return static_cast<float>(diff / (2.0 * static_cast<double>(h)));
}

// One Adam step of one coordinate: updates its moments and bias-correction powers in place and returns the new pixel
// value, clamped to [0, 1].
LETHE_HD float zoo_adam_coordinate(float x, float g, float lr, float& m, float& v, float& beta1_power,
                                   float& beta2_power, const ZooHyper& hp) {
  m = fmaf(hp.beta1, m, (1.0f - hp.beta1) * g);
  v = fmaf(hp.beta2, v, (1.0f - hp.beta2) * (g * g));
  beta1_power *= hp.beta1;
  beta2_power *= hp.beta2;
  const float m_hat = m / (1.0f - beta1_power);
  const float v_hat = v / (1.0f - beta2_power);
  const float next = x - lr * m_hat / (sqrtf(v_hat) + hp.eps);
  return next < 0.0f ? 0.0f : (next > 1.0f ? 1.0f : next);
}

}  // namespace lethe::kernels
