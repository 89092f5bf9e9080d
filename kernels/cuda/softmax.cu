// Row-wise ops on logits [n, k]: one warp per row, lanes striding over the classes. Row sums run in double and
// combine lanes in a fixed butterfly order, so results are deterministic.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {

constexpr int kWarpsPerBlock = kBlock / 32;

unsigned row_grid(int64_t n) { return static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock); }

__device__ __forceinline__ int64_t warp_row() {
  return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
}

__device__ __forceinline__ float row_max(const float* z, int64_t k, int lane) {
  float m = -INFINITY;
  for (int64_t j = lane; j < k; j += 32) m = fmaxf(m, z[j]);
  return warp_max_all(m);
}

// p = softmax(z) for one row by the whole warp; returns Σ exp(z - max) (every lane) and the max.
__device__ __forceinline__ double softmax_row(const float* z, float* p, int64_t k, int lane, float& max_out) {
  const float m = row_max(z, k, lane);
  double sum = 0.0;
  for (int64_t j = lane; j < k; j += 32) {
    const float e = expf(z[j] - m);
    p[j] = e;
    sum += e;
  }
  sum = warp_sum_all(sum);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = lane; j < k; j += 32) p[j] *= inv;
  max_out = m;
  return sum;
}

// Whole warps exit together (row is uniform across a warp), so the shuffles always see all 32 lanes.
__global__ void softmax_xent_forward_kernel(const float* __restrict__ logits, const int64_t* __restrict__ labels,
                                            float* __restrict__ probs, double* __restrict__ row_loss, int* bad_label,
                                            int64_t n, int64_t k) {
  const int64_t r = warp_row();
  if (r >= n) return;
  const int lane = threadIdx.x % 32;
  const float* z = logits + r * k;
  float m;
  const double sum = softmax_row(z, probs + r * k, k, lane, m);
  if (lane == 0) {
    const int64_t y = labels[r];
    if (y < 0 || y >= k) {
      atomicExch(bad_label, 1);
      row_loss[r] = 0.0;
    } else {
      // -log softmax_y from the logits, so a tiny probability cannot underflow to -inf.
      row_loss[r] = log(sum) - static_cast<double>(z[y] - m);
    }
  }
}

__global__ void softmax_xent_backward_kernel(const float* __restrict__ probs, const int64_t* __restrict__ labels,
                                             float scale, float* __restrict__ dlogits, int* bad_label, int64_t n,
                                             int64_t k) {
  const int64_t r = warp_row();
  if (r >= n) return;
  const int lane = threadIdx.x % 32;
  const int64_t y = labels[r];
  if (y < 0 || y >= k) {
    if (lane == 0) atomicExch(bad_label, 1);
    return;
  }
  for (int64_t j = lane; j < k; j += 32) {
    float v = probs[r * k + j] * scale;
    if (j == y) v -= scale;
    dlogits[r * k + j] = v;
  }
}

__global__ void softmax_kernel(const float* __restrict__ logits, float* __restrict__ probs, int64_t n, int64_t k) {
  const int64_t r = warp_row();
  if (r >= n) return;
  float m;
  softmax_row(logits + r * k, probs + r * k, k, threadIdx.x % 32, m);
}

__global__ void log_softmax_kernel(const float* __restrict__ logits, float* __restrict__ out, int64_t n, int64_t k) {
  const int64_t r = warp_row();
  if (r >= n) return;
  const int lane = threadIdx.x % 32;
  const float* z = logits + r * k;
  const float m = row_max(z, k, lane);
  double sum = 0.0;
  for (int64_t j = lane; j < k; j += 32) sum += exp(static_cast<double>(z[j] - m));
  sum = warp_sum_all(sum);
  const float lse = static_cast<float>(log(sum)) + m;
  for (int64_t j = lane; j < k; j += 32) out[r * k + j] = z[j] - lse;
}

// torch.argmax's sequential rule `if (z[j] > z[best]) best = j` from best = 0: a NaN at j = 0 keeps index 0, any
// other NaN never wins, and ties go to the first index. Lanes reduce (value, index) pairs under that order.
__global__ void argmax_rows_kernel(const float* __restrict__ logits, int64_t* __restrict__ out, int64_t n,
                                   int64_t k) {
  const int64_t r = warp_row();
  if (r >= n) return;
  const int lane = threadIdx.x % 32;
  const float* z = logits + r * k;
  float best_value = -INFINITY;
  int64_t best = -1;  // -1: no candidate in this lane yet
  for (int64_t j = lane; j < k; j += 32) {
    const float v = z[j];
    if (v == v && (best < 0 || v > best_value)) {
      best = j;
      best_value = v;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other_value = __shfl_xor_sync(0xffffffffu, best_value, offset);
    const int64_t other = __shfl_xor_sync(0xffffffffu, best, offset);
    const bool take = other >= 0 && (best < 0 || other_value > best_value ||
                                     (other_value == best_value && other < best));
    if (take) {
      best = other;
      best_value = other_value;
    }
  }
  if (lane == 0) out[r] = (z[0] != z[0] || best < 0) ? 0 : best;
}

}  // namespace

void softmax_xent_forward(const float* logits, const int64_t* labels, float* probs, double* row_loss, int* bad_label,
                          int64_t n, int64_t k, cudaStream_t stream) {
  if (n > 0 && k > 0)
    LETHE_LAUNCH(softmax_xent_forward_kernel, row_grid(n), kBlock, 0, stream, logits, labels, probs, row_loss,
                 bad_label, n, k);
}

void softmax_xent_backward(const float* probs, const int64_t* labels, float scale, float* dlogits, int* bad_label,
                           int64_t n, int64_t k, cudaStream_t stream) {
  if (n > 0 && k > 0)
    LETHE_LAUNCH(softmax_xent_backward_kernel, row_grid(n), kBlock, 0, stream, probs, labels, scale, dlogits,
                 bad_label, n, k);
}

void softmax(const float* logits, float* probs, int64_t n, int64_t k, cudaStream_t stream) {
  if (n > 0 && k > 0) LETHE_LAUNCH(softmax_kernel, row_grid(n), kBlock, 0, stream, logits, probs, n, k);
}

void log_softmax(const float* logits, float* out, int64_t n, int64_t k, cudaStream_t stream) {
  if (n > 0 && k > 0) LETHE_LAUNCH(log_softmax_kernel, row_grid(n), kBlock, 0, stream, logits, out, n, k);
}

void argmax_rows(const float* logits, int64_t* out, int64_t n, int64_t k, cudaStream_t stream) {
  if (n > 0 && k > 0) LETHE_LAUNCH(argmax_rows_kernel, row_grid(n), kBlock, 0, stream, logits, out, n, k);
}

}  // namespace lethe::LETHE_CUDA_NS
