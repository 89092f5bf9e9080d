// BatchNorm2d: statistics from the deterministic channel sums (reduce.cu), the per-element math from
// kernels/elementwise.h, in the CPU twin's precision (statistics in double, normalisation in float).
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/elementwise.h"

namespace lethe::LETHE_CUDA_NS {

namespace {

unsigned channel_grid(int64_t c) { return static_cast<unsigned>((c + kBlock - 1) / kBlock); }

__global__ void batchnorm_mean_kernel(const double* __restrict__ sums_x, int64_t count, double* __restrict__ mean,
                                      int64_t c) {
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch < c) mean[ch] = sums_x[2 * ch] / static_cast<double>(count);
}

__global__ void batchnorm_finish_stats_kernel(const double* __restrict__ mean_f64, const double* __restrict__ sums_sq,
                                              int64_t count, float momentum, float eps, float* running_mean,
                                              float* running_var, float* save_mean, float* save_invstd, int64_t c) {
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  const double sq = sums_sq[2 * ch];
  const double var_biased = sq / static_cast<double>(count);
  const double var_unbiased = count > 1 ? sq / static_cast<double>(count - 1) : var_biased;
  const float mean = static_cast<float>(mean_f64[ch]);
  save_mean[ch] = mean;
  save_invstd[ch] = static_cast<float>(1.0 / sqrt(var_biased + static_cast<double>(eps)));
  running_mean[ch] = kernels::running_update(running_mean[ch], mean, momentum);
  running_var[ch] = kernels::running_update(running_var[ch], static_cast<float>(var_unbiased), momentum);
}

__global__ void batchnorm_eval_stats_kernel(const float* __restrict__ running_mean,
                                            const float* __restrict__ running_var, float eps,
                                            float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                            int64_t c) {
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  save_mean[ch] = running_mean[ch];
  save_invstd[ch] = kernels::batchnorm_invstd(running_var[ch], eps);
}

__global__ void batchnorm_apply_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                       const float* __restrict__ beta, const float* __restrict__ mean,
                                       const float* __restrict__ invstd, float* __restrict__ y, int64_t total,
                                       int64_t c, int64_t hw, bool relu) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = (i / hw) % c;
    const float v = kernels::batchnorm_apply(x[i], mean[ch], invstd[ch], gamma[ch], beta[ch]);
    y[i] = relu ? kernels::relu(v) : v;
  }
}

__global__ void batchnorm_backward_dx_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                             const float* __restrict__ mean, const float* __restrict__ invstd,
                                             const float* __restrict__ dy, const double* __restrict__ sums,
                                             bool batch_stats, float* __restrict__ dx, int64_t total, int64_t c,
                                             int64_t hw, float count) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ch = (i / hw) % c;
    const float is = invstd[ch], gm = gamma[ch];
    if (batch_stats) {
      const float xhat = (x[i] - mean[ch]) * is;
      dx[i] = kernels::batchnorm_train_dx(dy[i], xhat, gm, is, static_cast<float>(sums[2 * ch]),
                                          static_cast<float>(sums[2 * ch + 1]), count);
    } else {
      dx[i] = dy[i] * (gm * is);  // statistics are constants in eval mode
    }
  }
}

}  // namespace

void batchnorm_mean(const double* sums_x, int64_t count, double* mean_f64, int64_t c, cudaStream_t stream) {
  if (c > 0) LETHE_LAUNCH(batchnorm_mean_kernel, channel_grid(c), kBlock, 0, stream, sums_x, count, mean_f64, c);
}

void batchnorm_finish_stats(const double* mean_f64, const double* sums_sq, int64_t count, float momentum, float eps,
                            float* running_mean, float* running_var, float* save_mean, float* save_invstd, int64_t c,
                            cudaStream_t stream) {
  if (c > 0)
    LETHE_LAUNCH(batchnorm_finish_stats_kernel, channel_grid(c), kBlock, 0, stream, mean_f64, sums_sq, count,
                 momentum, eps, running_mean, running_var, save_mean, save_invstd, c);
}

void batchnorm_eval_stats(const float* running_mean, const float* running_var, float eps, float* save_mean,
                          float* save_invstd, int64_t c, cudaStream_t stream) {
  if (c > 0)
    LETHE_LAUNCH(batchnorm_eval_stats_kernel, channel_grid(c), kBlock, 0, stream, running_mean, running_var, eps,
                 save_mean, save_invstd, c);
}

void batchnorm_apply(const float* x, const float* gamma, const float* beta, const float* save_mean,
                     const float* save_invstd, float* y, int64_t n, int64_t c, int64_t hw, bool relu,
                     cudaStream_t stream) {
  const int64_t total = n * c * hw;
  if (total > 0)
    LETHE_LAUNCH(batchnorm_apply_kernel, grid_for(total), kBlock, 0, stream, x, gamma, beta, save_mean, save_invstd,
                 y, total, c, hw, relu);
}

void batchnorm_backward_dx(const float* x, const float* gamma, const float* save_mean, const float* save_invstd,
                           const float* dy, const double* sums, bool batch_stats, float* dx, int64_t n, int64_t c,
                           int64_t hw, cudaStream_t stream) {
  const int64_t total = n * c * hw;
  if (total > 0)
    LETHE_LAUNCH(batchnorm_backward_dx_kernel, grid_for(total), kBlock, 0, stream, x, gamma, save_mean, save_invstd,
                 dy, sums, batch_stats, dx, total, c, hw, static_cast<float>(n * hw));
}

}  // namespace lethe::LETHE_CUDA_NS
