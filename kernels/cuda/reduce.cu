// Deterministic reductions: every sum runs in double over a split that depends only on the sizes, per-block
// partials first, then one block (or one thread per channel) combines them in a fixed order. No float atomics.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {

constexpr int64_t kMaxPartials = 1024;
constexpr int kMaxChannelSplits = 64;

__global__ void dot_partials_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t n,
                                    double* __restrict__ partials) {
  double s = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  __shared__ BlockSum::TempStorage storage;
  const double total = BlockSum(storage).Sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void sum_f64_kernel(const double* __restrict__ in, int64_t n, double* __restrict__ out) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += in[i];
  __shared__ BlockSum::TempStorage storage;
  const double total = BlockSum(storage).Sum(s);
  if (threadIdx.x == 0) *out = total;
}

__global__ void clip_by_norm_kernel(float* g, int64_t n, const double* __restrict__ sum_squares, float max_norm) {
  const float c = kernels::clip_coefficient(*sum_squares, max_norm);
  if (c == 1.0f) return;  // within the limit (or a NaN norm, which clipping cannot repair): leave untouched
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    g[i] *= c;
}

// Block (split s, channel ch) sums its share of the channel's n·hw elements into two doubles.
__global__ void channel_partials_kernel(int what, const float* __restrict__ x, const float* __restrict__ dy,
                                        const double* __restrict__ mean_f64, const float* __restrict__ mean_f32,
                                        const float* __restrict__ invstd, int64_t n, int64_t c, int64_t hw,
                                        double* __restrict__ partials) {
  const int64_t ch = blockIdx.y, splits = gridDim.x, count = n * hw;
  const int64_t chunk = (count + splits - 1) / splits;
  const int64_t lo = chunk * blockIdx.x, hi = lo + chunk < count ? lo + chunk : count;
  double s0 = 0.0, s1 = 0.0;
  const double mu = what == static_cast<int>(ChannelSum::CenteredSquare) ? mean_f64[ch] : 0.0;
  const float m32 = what == static_cast<int>(ChannelSum::DyAndDyXhat) ? mean_f32[ch] : 0.0f;
  const float is32 = what == static_cast<int>(ChannelSum::DyAndDyXhat) ? invstd[ch] : 0.0f;
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    const int64_t img = j / hw, at = (img * c + ch) * hw + (j - img * hw);
    if (what == static_cast<int>(ChannelSum::X)) {
      s0 += x[at];
    } else if (what == static_cast<int>(ChannelSum::CenteredSquare)) {
      const double d = static_cast<double>(x[at]) - mu;
      s0 += d * d;
    } else {
      const float d = dy[at];
      s0 += d;
      s1 += static_cast<double>(d) * ((x[at] - m32) * is32);
    }
  }
  __shared__ BlockSum::TempStorage storage;
  const double t0 = BlockSum(storage).Sum(s0);
  __syncthreads();  // storage is reused
  const double t1 = BlockSum(storage).Sum(s1);
  if (threadIdx.x == 0) {
    partials[(ch * splits + blockIdx.x) * 2] = t0;
    partials[(ch * splits + blockIdx.x) * 2 + 1] = t1;
  }
}

__global__ void channel_finish_kernel(const double* __restrict__ partials, int64_t splits, int64_t c,
                                      double* __restrict__ sums) {
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  double s0 = 0.0, s1 = 0.0;
  for (int64_t s = 0; s < splits; ++s) {
    s0 += partials[(ch * splits + s) * 2];
    s1 += partials[(ch * splits + s) * 2 + 1];
  }
  sums[2 * ch] = s0;
  sums[2 * ch + 1] = s1;
}

__global__ void accumulate_channel_sums_kernel(const double* __restrict__ sums, int which, float* __restrict__ dst,
                                               int64_t c) {
  const int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch < c) dst[ch] += static_cast<float>(sums[2 * ch + which]);
}

__global__ void check_labels_kernel(const int64_t* __restrict__ labels, int64_t n, int64_t k, int* bad) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (labels[i] < 0 || labels[i] >= k) atomicExch(bad, 1);
}

unsigned channel_grid(int64_t c) { return static_cast<unsigned>((c + kBlock - 1) / kBlock); }

}  // namespace

int64_t reduce_partials(int64_t n) { return grid_for(n, kMaxPartials); }

void dot(const float* a, const float* b, int64_t n, double* partials, double* out, cudaStream_t stream) {
  const unsigned blocks = grid_for(n, kMaxPartials);
  LETHE_LAUNCH(dot_partials_kernel, blocks, kBlock, 0, stream, a, b, n, partials);
  sum_f64(partials, blocks, out, stream);
}

void sum_f64(const double* in, int64_t n, double* out, cudaStream_t stream) {
  LETHE_LAUNCH(sum_f64_kernel, 1, kBlock, 0, stream, in, n, out);
}

void clip_by_norm(float* g, int64_t n, const double* sum_squares, float max_norm, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(clip_by_norm_kernel, grid_for(n), kBlock, 0, stream, g, n, sum_squares, max_norm);
}

int channel_splits(int64_t n, int64_t hw) {
  const int64_t per_block = int64_t(kBlock) * 16;
  const int64_t splits = (n * hw + per_block - 1) / per_block;
  return static_cast<int>(splits < 1 ? 1 : splits > kMaxChannelSplits ? kMaxChannelSplits : splits);
}

void channel_sums(ChannelSum what, const float* x, const float* dy, const double* mean_f64, const float* mean_f32,
                  const float* invstd, int64_t n, int64_t c, int64_t hw, double* partials, double* sums,
                  cudaStream_t stream) {
  if (c <= 0) return;
  const int splits = channel_splits(n, hw);
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(c));
  LETHE_LAUNCH(channel_partials_kernel, grid, kBlock, 0, stream, static_cast<int>(what), x, dy, mean_f64, mean_f32,
               invstd, n, c, hw, partials);
  LETHE_LAUNCH(channel_finish_kernel, channel_grid(c), kBlock, 0, stream, partials, static_cast<int64_t>(splits), c,
               sums);
}

void accumulate_channel_sums(const double* sums, int which, float* dst, int64_t c, cudaStream_t stream) {
  if (c > 0) LETHE_LAUNCH(accumulate_channel_sums_kernel, channel_grid(c), kBlock, 0, stream, sums, which, dst, c);
}

void check_labels(const int64_t* labels, int64_t n, int64_t k, int* bad, cudaStream_t stream) {
  if (n > 0) LETHE_LAUNCH(check_labels_kernel, grid_for(n, 64), kBlock, 0, stream, labels, n, k, bad);
}

}  // namespace lethe::LETHE_CUDA_NS
