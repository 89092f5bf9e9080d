// BatchNorm2d over x [n, c, hw], parallel over channels (each channel's statistics are summed in one fixed order).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"

namespace lethe::kernels::cpu {

void batchnorm_forward(const float* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool batch_stats, float momentum, float eps, float* y, float* save_mean,
                       float* save_invstd, int64_t n, int64_t c, int64_t hw, bool relu, int threads) {
  const int64_t count = n * hw;
#pragma omp parallel for num_threads(n * c * hw < 65536 ? 1 : threads) schedule(static)
  for (int64_t ch = 0; ch < c; ++ch) {
    float mean, invstd;
    if (batch_stats) {
      // Two passes in double: mean, then centred squares (no catastrophic cancellation).
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = x + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; ++j) sum += p[j];
      }
      const double mu = sum / static_cast<double>(count);
      double sq = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = x + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; ++j) {
          const double d = p[j] - mu;
          sq += d * d;
        }
      }
      const double var_biased = sq / static_cast<double>(count);
      const double var_unbiased = count > 1 ? sq / static_cast<double>(count - 1) : var_biased;
      mean = static_cast<float>(mu);
      invstd = static_cast<float>(1.0 / std::sqrt(var_biased + eps));
      running_mean[ch] = running_update(running_mean[ch], mean, momentum);
      running_var[ch] = running_update(running_var[ch], static_cast<float>(var_unbiased), momentum);
    } else {
      mean = running_mean[ch];
      invstd = batchnorm_invstd(running_var[ch], eps);
    }
    save_mean[ch] = mean;
    save_invstd[ch] = invstd;
    const float gm = gamma[ch], bt = beta[ch];
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * c + ch) * hw;
      float* q = y + (i * c + ch) * hw;
      if (relu) {
        for (int64_t j = 0; j < hw; ++j) q[j] = kernels::relu(batchnorm_apply(p[j], mean, invstd, gm, bt));
      } else {
        for (int64_t j = 0; j < hw; ++j) q[j] = batchnorm_apply(p[j], mean, invstd, gm, bt);
      }
    }
  }
}

void batchnorm_backward(const float* x, const float* gamma, const float* save_mean, const float* save_invstd,
                        const float* dy, bool batch_stats, float* dx, float* dgamma, float* dbeta, int64_t n,
                        int64_t c, int64_t hw, int threads) {
  const float count = static_cast<float>(n * hw);
#pragma omp parallel for num_threads(n * c * hw < 65536 ? 1 : threads) schedule(static)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * c + ch) * hw;
      const float* d = dy + (i * c + ch) * hw;
      for (int64_t j = 0; j < hw; ++j) {
        sum_dy += d[j];
        sum_dy_xhat += static_cast<double>(d[j]) * ((p[j] - mean) * invstd);
      }
    }
    if (dgamma) dgamma[ch] += static_cast<float>(sum_dy_xhat);
    if (dbeta) dbeta[ch] += static_cast<float>(sum_dy);
    if (!dx) continue;
    const float gm = gamma[ch];
    const float sdy = static_cast<float>(sum_dy), sdx = static_cast<float>(sum_dy_xhat);
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x + (i * c + ch) * hw;
      const float* d = dy + (i * c + ch) * hw;
      float* q = dx + (i * c + ch) * hw;
      if (batch_stats) {
        for (int64_t j = 0; j < hw; ++j)
          q[j] = batchnorm_train_dx(d[j], (p[j] - mean) * invstd, gm, invstd, sdy, sdx, count);
      } else {
        const float s = gm * invstd;  // statistics are constants in eval mode
        for (int64_t j = 0; j < hw; ++j) q[j] = d[j] * s;
      }
    }
  }
}

}  // namespace lethe::kernels::cpu
