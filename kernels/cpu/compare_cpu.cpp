// The fused parameter comparison on the CPU (Backend::compare_params): the plan of kernels/compare.h, items in
// parallel, then each segment's items summed in order.
//
// Memory-bound: N + 1 vectors are read once each. Per item the target's tile (16 KiB) is read first and then stays in
// L1, while the aux rows' tiles stream past it, four rows side by side (see kRows). Within an item every quantity is
// summed in kLanes independent float lanes per row (AVX-512 intrinsics where the compiler targets AVX-512; otherwise
// a lane loop the compiler vectorises, compare_accumulate's fmaf becoming a vector FMA), and the lanes are combined
// in double, in lane order. Nothing depends on the thread count: an item's sums are the same whichever thread
// computes them.
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace lethe::kernels::cpu {

namespace {

// Independent float accumulators per quantity and aux row: one AVX-512 vector (two AVX2 vectors).
constexpr int kLanes = 16;
// Aux rows read side by side: four sequential streams at once keep enough cache misses in flight for one core to
// reach its streaming bandwidth (one row at a time reaches about 60% of it), and each target vector is loaded once
// for all four.
constexpr int kRows = 4;
// Software prefetch distance within each row, in floats (4 KiB): the hardware prefetchers alone lag behind.
constexpr int64_t kPrefetch = 1024;

struct ItemSums {
  double dot, aux_sq, diff_sq;
};

// Combines the lanes in double, in lane order.
inline ItemSums combine(const float* dot, const float* aux_sq, const float* diff_sq) {
  ItemSums s{0, 0, 0};
  for (int l = 0; l < kLanes; ++l) {
    s.dot += dot[l];
    s.aux_sq += aux_sq[l];
    s.diff_sq += diff_sq[l];
  }
  return s;
}

// a·t, a² and (a − t)² over n elements for R aux rows (row r at a + r·ld). Element i goes to lane i % kLanes of its
// row in every version, accumulated with fused multiply-adds, so the vector and scalar versions give the same bits.
template <int R>
inline void item_sums(const float* __restrict__ a, int64_t ld, const float* __restrict__ t, int64_t n,
                      ItemSums* out) {
  alignas(64) float dot[R][kLanes] = {}, aux_sq[R][kLanes] = {}, diff_sq[R][kLanes] = {};
  int64_t i = 0;
#if defined(__AVX512F__)
  static_assert(kLanes == 16, "one 16-float vector per quantity and row");
  __m512 d[R], q[R], e[R];
  for (int r = 0; r < R; ++r) d[r] = q[r] = e[r] = _mm512_setzero_ps();
  for (; i + kLanes <= n; i += kLanes) {
    const __m512 x = _mm512_loadu_ps(t + i);
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(a + r * ld + i + kPrefetch), _MM_HINT_T0);
      const __m512 y = _mm512_loadu_ps(a + r * ld + i);
      d[r] = _mm512_fmadd_ps(y, x, d[r]);
      q[r] = _mm512_fmadd_ps(y, y, q[r]);
      const __m512 z = _mm512_sub_ps(y, x);
      e[r] = _mm512_fmadd_ps(z, z, e[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_store_ps(dot[r], d[r]);
    _mm512_store_ps(aux_sq[r], q[r]);
    _mm512_store_ps(diff_sq[r], e[r]);
  }
#else
  for (; i + kLanes <= n; i += kLanes)
    for (int r = 0; r < R; ++r) {
      const float* y = a + r * ld + i;
      __builtin_prefetch(y + kPrefetch);
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) compare_accumulate(y[l], t[i + l], dot[r][l], aux_sq[r][l], diff_sq[r][l]);
    }
#endif
  for (int r = 0; r < R; ++r)
    for (int64_t k = i, l = 0; k < n; ++k, ++l)
      compare_accumulate(a[r * ld + k], t[k], dot[r][l], aux_sq[r][l], diff_sq[r][l]);
  for (int r = 0; r < R; ++r) out[r] = combine(dot[r], aux_sq[r], diff_sq[r]);
}

inline double item_target_sq(const float* __restrict__ t, int64_t n) {
  alignas(64) float sq[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) compare_accumulate_target(t[i + l], sq[l]);
  }
  for (int l = 0; i < n; ++i, ++l) compare_accumulate_target(t[i], sq[l]);
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += sq[l];
  return s;
}

}  // namespace

void compare_params(const float* target, const float* aux, int64_t n_aux, int64_t ld, const ComparePlan& plan,
                    SegmentStats* out, int threads) {
  const int64_t items = plan.items(), segments = plan.segments();
  if (n_aux <= 0 || items <= 0) return;
  // Pass 1: per item, ‖t‖² and, per aux vector, the other three sums.
  std::vector<double> target_part(static_cast<size_t>(items));
  std::vector<ItemSums> part(static_cast<size_t>(items * n_aux));
  const int64_t floats = (plan.cuts.back() - plan.cuts.front()) * (n_aux + 1);
  const int team = floats < 65536 ? 1 : std::max(1, threads);
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t lo = plan.cuts[static_cast<size_t>(it)], n = plan.cuts[static_cast<size_t>(it) + 1] - lo;
    const float* t = target + lo;
    target_part[static_cast<size_t>(it)] = item_target_sq(t, n);
    ItemSums* p = part.data() + it * n_aux;
    int64_t j = 0;
    for (; j + kRows <= n_aux; j += kRows) item_sums<kRows>(aux + j * ld + lo, ld, t, n, p + j);
    const int64_t rest = n_aux - j;
    if (rest == 3) item_sums<3>(aux + j * ld + lo, ld, t, n, p + j);
    if (rest == 2) item_sums<2>(aux + j * ld + lo, ld, t, n, p + j);
    if (rest == 1) item_sums<1>(aux + j * ld + lo, ld, t, n, p + j);
  }
  // Pass 2: each segment's items in order.
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t first = plan.seg_items[static_cast<size_t>(s)], last = plan.seg_items[static_cast<size_t>(s) + 1];
    double target_sq = 0;
    for (int64_t it = first; it < last; ++it) target_sq += target_part[static_cast<size_t>(it)];
    for (int64_t j = 0; j < n_aux; ++j) {
      SegmentStats r;
      r.target_sq = target_sq;
      for (int64_t it = first; it < last; ++it) {
        const ItemSums& p = part[static_cast<size_t>(it * n_aux + j)];
        r.dot += p.dot;
        r.aux_sq += p.aux_sq;
        r.diff_sq += p.diff_sq;
      }
      out[j * segments + s] = r;
    }
  }
}

}  // namespace lethe::kernels::cpu
