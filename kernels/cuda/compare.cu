// The fused parameter comparison (Backend::compare_params) on the device, deterministic in two passes over the plan
// of kernels/compare.h (the same work items as the CPU):
// 1. compare_items_kernel<G, kVec4>: block (item, group) reads the item's target tile once and the tiles of G aux
//    vectors, each element once, in float4 loads when the rows are 16-byte aligned (scalar loads for the item's
//    unaligned head and tail). Each thread accumulates in float (compare_accumulate), then CUB's BlockReduce sums
//    the threads in double and thread 0 writes the item's partials.
// 2. compare_segments_kernel: block (segment, aux) sums the segment's item partials in double, in a fixed order.
// G is a compile-time group size (16, 8, 4, 2, 1; N is covered by groups of 16 and then its binary remainder), so the
// accumulators live in registers and N = 16 reads the target once.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <cstdint>

#include "kernels/compare.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {

// Loops over a group's aux vectors are unrolled, so the per-vector accumulators stay in registers.
#if defined(__CUDACC__)
#define LETHE_COMPARE_UNROLL _Pragma("unroll")
#else
#define LETHE_COMPARE_UNROLL _Pragma("GCC unroll 16")
#endif

constexpr int kMaxGroup = 16;
constexpr int kSegmentBlock = 128;
static_assert(kernels::kCompareTile % 4 == 0, "tiles hold whole float4s");

// Partials per (item, aux vector), and results per (aux vector, segment): kernels::SegmentStats's four doubles.
struct Stats4 {
  double dot, aux_sq, target_sq, diff_sq;
};
struct Stats4Sum {
  __device__ __forceinline__ Stats4 operator()(const Stats4& a, const Stats4& b) const {
    return {a.dot + b.dot, a.aux_sq + b.aux_sq, a.target_sq + b.target_sq, a.diff_sq + b.diff_sq};
  }
};
struct Stats3 {
  double dot, aux_sq, diff_sq;
};
struct Stats3Sum {
  __device__ __forceinline__ Stats3 operator()(const Stats3& a, const Stats3& b) const {
    return {a.dot + b.dot, a.aux_sq + b.aux_sq, a.diff_sq + b.diff_sq};
  }
};

template <int G>
struct Accumulators {
  float tsq = 0.0f;
  float dot[G], asq[G], dsq[G];
};

template <int G>
__device__ __forceinline__ void accumulate_scalar(const float* __restrict__ t, const float* __restrict__ a, int64_t ld,
                                                  int64_t i, Accumulators<G>& acc) {
  const float x = t[i];
  kernels::compare_accumulate_target(x, acc.tsq);
LETHE_COMPARE_UNROLL
  for (int g = 0; g < G; ++g) kernels::compare_accumulate(a[g * ld + i], x, acc.dot[g], acc.asq[g], acc.dsq[g]);
}

// Block (item = blockIdx.x, group = blockIdx.y) over aux vectors first_aux + group·G .. + G − 1 of n_aux.
// kVec4: target, aux and ld·4 bytes are 16-byte aligned, so element i is float4-aligned whenever i % 4 == 0.
template <int G, bool kVec4>
__global__ void __launch_bounds__(kBlock) compare_items_kernel(const float* __restrict__ target,
                                                               const float* __restrict__ aux, int64_t ld,
                                                               int64_t first_aux, int64_t n_aux,
                                                               const int64_t* __restrict__ cuts,
                                                               double* __restrict__ partials) {
  const int64_t item = blockIdx.x, j0 = first_aux + static_cast<int64_t>(blockIdx.y) * G;
  const int64_t lo = cuts[item], hi = cuts[item + 1];
  const float* __restrict__ a = aux + j0 * ld;
  Accumulators<G> acc;
LETHE_COMPARE_UNROLL
  for (int g = 0; g < G; ++g) acc.dot[g] = acc.asq[g] = acc.dsq[g] = 0.0f;
  if constexpr (kVec4) {
    const int64_t body_lo = ((lo + 3) / 4) * 4 < hi ? ((lo + 3) / 4) * 4 : hi;
    const int64_t body_hi = (hi / 4) * 4 > body_lo ? (hi / 4) * 4 : body_lo;
    // Head and tail (at most 3 elements each) in scalar loads; the body in float4s.
    if (lo + threadIdx.x < body_lo) accumulate_scalar<G>(target, a, ld, lo + threadIdx.x, acc);
    if (body_hi + threadIdx.x < hi) accumulate_scalar<G>(target, a, ld, body_hi + threadIdx.x, acc);
    const float4* __restrict__ t4 = reinterpret_cast<const float4*>(target);
    for (int64_t v = body_lo / 4 + threadIdx.x; v < body_hi / 4; v += kBlock) {
      const float4 x = t4[v];
      kernels::compare_accumulate_target(x.x, acc.tsq);
      kernels::compare_accumulate_target(x.y, acc.tsq);
      kernels::compare_accumulate_target(x.z, acc.tsq);
      kernels::compare_accumulate_target(x.w, acc.tsq);
LETHE_COMPARE_UNROLL
      for (int g = 0; g < G; ++g) {
        const float4 y = reinterpret_cast<const float4*>(a + g * ld)[v];
        kernels::compare_accumulate(y.x, x.x, acc.dot[g], acc.asq[g], acc.dsq[g]);
        kernels::compare_accumulate(y.y, x.y, acc.dot[g], acc.asq[g], acc.dsq[g]);
        kernels::compare_accumulate(y.z, x.z, acc.dot[g], acc.asq[g], acc.dsq[g]);
        kernels::compare_accumulate(y.w, x.w, acc.dot[g], acc.asq[g], acc.dsq[g]);
      }
    }
  } else {
    for (int64_t i = lo + threadIdx.x; i < hi; i += kBlock) accumulate_scalar<G>(target, a, ld, i, acc);
  }

  __shared__ typename cub::BlockReduce<Stats3, kBlock>::TempStorage storage;
  __shared__ BlockSum::TempStorage target_storage;
  const double tsq = BlockSum(target_storage).Sum(static_cast<double>(acc.tsq));
LETHE_COMPARE_UNROLL
  for (int g = 0; g < G; ++g) {
    const Stats3 mine{acc.dot[g], acc.asq[g], acc.dsq[g]};
    const Stats3 total = cub::BlockReduce<Stats3, kBlock>(storage).Reduce(mine, Stats3Sum{});
    if (threadIdx.x == 0) {
      double* p = partials + (item * n_aux + j0 + g) * 4;
      p[0] = total.dot;
      p[1] = total.aux_sq;
      p[2] = tsq;
      p[3] = total.diff_sq;
    }
    __syncthreads();  // storage is reused
  }
}

// Block b = j·segments + s sums segment s's items for aux vector j, thread by thread in item order, then in a fixed
// tree: deterministic.
__global__ void __launch_bounds__(kSegmentBlock) compare_segments_kernel(const double* __restrict__ partials,
                                                                         const int64_t* __restrict__ seg_items,
                                                                         int64_t segments, int64_t n_aux,
                                                                         double* __restrict__ out) {
  const int64_t b = blockIdx.x, j = b / segments, s = b - j * segments;
  Stats4 sum{0.0, 0.0, 0.0, 0.0};
  for (int64_t it = seg_items[s] + threadIdx.x; it < seg_items[s + 1]; it += kSegmentBlock) {
    const double* p = partials + (it * n_aux + j) * 4;
    sum.dot += p[0];
    sum.aux_sq += p[1];
    sum.target_sq += p[2];
    sum.diff_sq += p[3];
  }
  __shared__ typename cub::BlockReduce<Stats4, kSegmentBlock>::TempStorage storage;
  const Stats4 total = cub::BlockReduce<Stats4, kSegmentBlock>(storage).Reduce(sum, Stats4Sum{});
  if (threadIdx.x == 0) {
    double* o = out + b * 4;
    o[0] = total.dot;
    o[1] = total.aux_sq;
    o[2] = total.target_sq;
    o[3] = total.diff_sq;
  }
}

template <int G>
void launch_groups(bool vec4, const float* target, const float* aux, int64_t ld, int64_t first_aux, int64_t groups,
                   int64_t n_aux, const int64_t* cuts, int64_t items, double* partials, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(groups));
  if (vec4) {
    LETHE_LAUNCH((compare_items_kernel<G, true>), grid, kBlock, 0, stream, target, aux, ld, first_aux, n_aux, cuts,
                 partials);
  } else {
    LETHE_LAUNCH((compare_items_kernel<G, false>), grid, kBlock, 0, stream, target, aux, ld, first_aux, n_aux, cuts,
                 partials);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void compare_params(const float* target, const float* aux, int64_t n_aux, int64_t ld, const int64_t* cuts,
                    int64_t items, const int64_t* seg_items, int64_t segments, double* partials, double* out,
                    cudaStream_t stream) {
  if (n_aux <= 0 || items <= 0 || segments <= 0) return;
  LETHE_CHECK(items <= INT32_MAX && n_aux / kMaxGroup <= 65535 && n_aux * segments <= INT32_MAX,
              "compare_params: " + std::to_string(items) + " items, " + std::to_string(n_aux) + " aux vectors and " +
                  std::to_string(segments) + " segments exceed the launch grid");
  const bool vec4 = aligned16(target) && aligned16(aux) && ld % 4 == 0;
  // Groups of 16, then the remainder as 8 + 4 + 2 + 1 (each launch reads the target once more).
  const int64_t full = n_aux / kMaxGroup;
  if (full > 0) launch_groups<kMaxGroup>(vec4, target, aux, ld, 0, full, n_aux, cuts, items, partials, stream);
  int64_t first = full * kMaxGroup;
  const int64_t rest = n_aux - first;
  if (rest & 8) launch_groups<8>(vec4, target, aux, ld, first, 1, n_aux, cuts, items, partials, stream);
  first += rest & 8;
  if (rest & 4) launch_groups<4>(vec4, target, aux, ld, first, 1, n_aux, cuts, items, partials, stream);
  first += rest & 4;
  if (rest & 2) launch_groups<2>(vec4, target, aux, ld, first, 1, n_aux, cuts, items, partials, stream);
  first += rest & 2;
  if (rest & 1) launch_groups<1>(vec4, target, aux, ld, first, 1, n_aux, cuts, items, partials, stream);
  LETHE_LAUNCH(compare_segments_kernel, n_aux * segments, kSegmentBlock, 0, stream, partials, seg_items, segments,
               n_aux, out);
}

}  // namespace lethe::LETHE_CUDA_NS
