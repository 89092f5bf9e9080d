// Elementwise ops, reductions, Philox fills, optimizer and unlearning updates on the CPU.
#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/philox.h"

namespace lethe::kernels::cpu {

Workspace::~Workspace() {
  for (auto& per_thread : slots_)
    for (auto& a : per_thread) std::free(a.ptr);
}

void Workspace::resize_threads(int threads) {
  if (threads < 1) threads = 1;
  while (static_cast<int>(slots_.size()) < threads) slots_.emplace_back(kSlots);
}

float* Workspace::get(int t, int slot, size_t count) {
  Aligned& a = slots_.at(static_cast<size_t>(t)).at(static_cast<size_t>(slot));
  if (a.count < count) {
    std::free(a.ptr);
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    a.ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!a.ptr) throw std::bad_alloc();
    a.count = count;
  }
  return a.ptr;
}

void init_blas_single_thread() { openblas_set_num_threads(1); }

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Small arrays are not worth waking the thread team for.
static int team(int64_t n, int threads) { return n < 16384 ? 1 : threads; }

void fill(float* y, int64_t n, float v, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = v;
}

void copy(const float* x, float* y, int64_t n, int threads) {
  if (x == y) return;
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

void add(const float* a, const float* b, float* y, int64_t n, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void axpy(float alpha, const float* x, float* y, int64_t n, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void scale(float* y, int64_t n, float alpha, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

double dot(const float* a, const float* b, int64_t n, int threads) {
  // Two passes over fixed 4096-element blocks: the block boundaries do not depend on the thread count, so the
  // result is the same for any number of threads.
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t lo = blk * kBlock, hi = lo + kBlock < n ? lo + kBlock : n;
    double s = 0;
    for (int64_t i = lo; i < hi; ++i) s += static_cast<double>(a[i]) * b[i];
    partial[static_cast<size_t>(blk)] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void clamp(float* y, int64_t n, float lo, float hi, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = clamp_value(y[i], lo, hi);
}

void add_image_prior_grad(const float* x, float* dx, int64_t n, int64_t height, int64_t width, float tv, float l2,
                          int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] += image_prior_grad(x, i, height, width, tv, l2);
}

void relu_forward(const float* x, float* y, int64_t n, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = relu(x[i]);
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = kernels::relu_backward(y[i], dy[i]);
}

void normalize_forward(const float* x, const float* mean, const float* inv_std, float* y, int64_t n, int64_t c,
                       int64_t hw, int threads) {
#pragma omp parallel for num_threads(team(n * c * hw, threads)) schedule(static)
  for (int64_t nc = 0; nc < n * c; ++nc) {
    const int64_t ch = nc % c;
    const float m = mean[ch], s = inv_std[ch];
    const float* xs = x + nc * hw;
    float* ys = y + nc * hw;
    for (int64_t i = 0; i < hw; ++i) ys[i] = normalize(xs[i], m, s);
  }
}

void normalize_backward(const float* dy, const float* inv_std, float* dx, int64_t n, int64_t c, int64_t hw,
                        int threads) {
#pragma omp parallel for num_threads(team(n * c * hw, threads)) schedule(static)
  for (int64_t nc = 0; nc < n * c; ++nc) {
    const float s = inv_std[nc % c];
    for (int64_t i = 0; i < hw; ++i) dx[nc * hw + i] = dy[nc * hw + i] * s;
  }
}

// The hyper-parameters are copied to locals: through the reference, every store to a parameter could alias them,
// which blocks vectorisation and forces reloads.
void sgd_step(float* params, const float* grads, float* momentum_buf, int64_t n, const SgdHyper& hyper, int threads) {
  const SgdHyper h = hyper;
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) sgd_update(params[i], grads[i], momentum_buf[i], h);
}

void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamHyper& hyper,
               int threads) {
  const AdamHyper h = hyper;
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) adam_update(params[i], grads[i], m[i], v[i], h);
}

double ascent_step(float* params, const float* grads, int64_t n, const AscentHyper& hyper, int threads) {
  const AscentHyper h = hyper;
  const double sum_squares = dot(grads, grads, n, threads);
  const float coef = ascent_clip_coefficient(sum_squares, h.max_norm);
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) ascent_update(params[i], grads[i], coef, static_cast<uint64_t>(i), h);
  return std::sqrt(sum_squares);
}

void fill_uniform(float* y, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    y[i] = lo + (hi - lo) * philox_uniform(seed, stream, static_cast<uint64_t>(i));
}

void fill_normal(float* y, int64_t n, float mean, float stddev, uint64_t seed, uint64_t stream, int threads) {
#pragma omp parallel for num_threads(team(n, threads)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = mean + stddev * philox_normal(seed, stream, static_cast<uint64_t>(i));
}

}  // namespace lethe::kernels::cpu
