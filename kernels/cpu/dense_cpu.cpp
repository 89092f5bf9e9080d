// Linear layers and the row-wise ops on logits.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace lethe::kernels::cpu {

// Work below this many multiply-adds runs on one thread: waking the team costs more than it saves.
static int gemm_team(int64_t macs, int threads) { return macs < 200000 ? 1 : threads; }

void linear_forward(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out,
                    bool relu, int threads) {
  const int parts = gemm_team(n * in * out, threads);
#pragma omp parallel num_threads(parts)
  {
    int64_t r0, r1;
    split_range(n, omp_get_num_threads(), omp_get_thread_num(), r0, r1);
    if (r1 > r0) {
      if (b) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t o = 0; o < out; ++o) y[r * out + o] = b[o];
      }
      sgemm(false, true, r1 - r0, out, in, 1.0f, x + r0 * in, in, w, in, b ? 1.0f : 0.0f, y + r0 * out, out);
      if (relu)
        for (int64_t i = r0 * out; i < r1 * out; ++i) y[i] = kernels::relu(y[i]);
    }
  }
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, int64_t n,
                     int64_t in, int64_t out, int threads) {
  const int parts = gemm_team(n * in * out, threads);
#pragma omp parallel num_threads(parts)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    if (dx) {  // dx = dy · W, split over batch rows
      int64_t r0, r1;
      split_range(n, nt, t, r0, r1);
      if (r1 > r0) sgemm(false, false, r1 - r0, in, out, 1.0f, dy + r0 * out, out, w, in, 0.0f, dx + r0 * in, in);
    }
    if (dw || db) {  // dW += dyᵀ · x, split over output rows so no reduction across threads is needed
      int64_t o0, o1;
      split_range(out, nt, t, o0, o1);
      if (o1 > o0) {
        if (dw) sgemm(true, false, o1 - o0, in, n, 1.0f, dy + o0, out, x, in, 1.0f, dw + o0 * in, in);
        if (db) {
          for (int64_t o = o0; o < o1; ++o) {
            float s = 0;
            for (int64_t r = 0; r < n; ++r) s += dy[r * out + o];
            db[o] += s;
          }
        }
      }
    }
  }
}

// One row of log-sum-exp with the max subtracted, as every stable softmax does.
static inline float row_max(const float* z, int64_t k) {
  float m = z[0];
  for (int64_t j = 1; j < k; ++j) m = z[j] > m ? z[j] : m;
  return m;
}

// p = softmax(z) for one row; returns Σ exp(z - max) and the max, which the loss needs too.
static inline double softmax_row(const float* z, float* p, int64_t k, float& max_out) {
  const float m = row_max(z, k);
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    p[j] = std::exp(z[j] - m);
    sum += p[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < k; ++j) p[j] *= inv;
  max_out = m;
  return sum;
}

double softmax_xent_forward(const float* logits, const int64_t* labels, float* probs, int64_t n, int64_t k,
                            int threads) {
  std::vector<double> row_loss(static_cast<size_t>(n));
#pragma omp parallel for num_threads(n * k < 65536 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* z = logits + r * k;
    float m;
    const double sum = softmax_row(z, probs + r * k, k, m);
    // -log softmax_y = log Σ exp(z - m) - (z_y - m), computed from the logits rather than log(p) so a tiny
    // probability cannot underflow to -inf.
    row_loss[static_cast<size_t>(r)] = std::log(sum) - static_cast<double>(z[labels[r]] - m);
  }
  double total = 0;
  for (double l : row_loss) total += l;
  return total;
}

void softmax_xent_backward(const float* probs, const int64_t* labels, float scale, float* dlogits, int64_t n,
                           int64_t k, int threads) {
#pragma omp parallel for num_threads(n * k < 65536 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) dlogits[r * k + j] = probs[r * k + j] * scale;
    dlogits[r * k + labels[r]] -= scale;
  }
}

void softmax(const float* logits, float* probs, int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(n * k < 65536 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    float m;
    softmax_row(logits + r * k, probs + r * k, k, m);
  }
}

void log_softmax(const float* logits, float* out, int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(n * k < 65536 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* z = logits + r * k;
    const float m = row_max(z, k);
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j] - m));
    const float lse = static_cast<float>(std::log(sum)) + m;
    for (int64_t j = 0; j < k; ++j) out[r * k + j] = z[j] - lse;
  }
}

void argmax_rows(const float* logits, int64_t* out, int64_t n, int64_t k, int threads) {
#pragma omp parallel for num_threads(n * k < 65536 ? 1 : threads) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* z = logits + r * k;
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j)
      if (z[j] > z[best]) best = j;  // first maximum wins, like torch.argmax
    out[r] = best;
  }
}

}  // namespace lethe::kernels::cpu
