#pragma once
// The CPU twins: every op on raw host pointers, parallelised with OpenMP over `threads`. Results are bit-identical
// for a given thread count: work is split statically and partial sums are combined in a fixed order.
// The CUDA kernels (kernels/cuda) implement the same signatures and are tested against these.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/compare.h"
#include "kernels/elementwise.h"
#include "kernels/ga.h"
#include "kernels/geometry.h"
#include "kernels/zoo.h"

namespace lethe::kernels::cpu {

// Per-thread scratch memory that lives across calls, so hot loops never hit the allocator.
class Workspace {
 public:
  explicit Workspace(int threads = 1) { resize_threads(threads); }
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  void resize_threads(int threads);
  // Scratch of at least `count` floats for thread `t` and slot `slot` (0..3), 64-byte aligned, contents undefined.
  float* get(int t, int slot, size_t count);

 private:
  static constexpr int kSlots = 4;
  struct Aligned {
    float* ptr = nullptr;
    size_t count = 0;
  };
  std::vector<std::vector<Aligned>> slots_;
};

// Single-threaded SGEMM, row-major: C[m×n] = alpha·op(A)·op(B) + beta·C (OpenBLAS underneath).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// Makes BLAS single-threaded: Lethe parallelises around GEMMs itself (deterministic splits, no oversubscription).
void init_blas_single_thread();

// Static split of [0, n) into `parts` contiguous ranges; range of part p.
inline void split_range(int64_t n, int parts, int p, int64_t& begin, int64_t& end) {
  const int64_t base = n / parts, extra = n % parts;
  begin = p * base + (p < extra ? p : extra);
  end = begin + base + (p < extra ? 1 : 0);
}

// ---- elementwise
void fill(float* y, int64_t n, float v, int threads);
void copy(const float* x, float* y, int64_t n, int threads);
void add(const float* a, const float* b, float* y, int64_t n, int threads);
void axpy(float alpha, const float* x, float* y, int64_t n, int threads);
void scale(float* y, int64_t n, float alpha, int threads);
// Deterministic for any thread count: fixed-size blocks summed in double, then combined in order.
double dot(const float* a, const float* b, int64_t n, int threads);
void clamp(float* y, int64_t n, float lo, float hi, int threads);
// dx[i] += image_prior_grad(x, i, ...) over n elements of H×W planes (x and dx never alias).
void add_image_prior_grad(const float* x, float* dx, int64_t n, int64_t height, int64_t width, float tv, float l2,
                          int threads);
// Magnitude pruning (kernels/prune.h): the k-th smallest |w| (0-based), and w[i] = 0 where |w[i]| <= threshold.
float magnitude_kth(const float* w, int64_t n, int64_t k, int threads);
void prune_magnitude(float* w, int64_t n, float threshold, int threads);
void relu_forward(const float* x, float* y, int64_t n, int threads);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n, int threads);
// Per-channel: y = (x - mean[c]) * inv_std[c]; dx = dy * inv_std[c]. x is [n, c, hw].
void normalize_forward(const float* x, const float* mean, const float* inv_std, float* y, int64_t n, int64_t c,
                       int64_t hw, int threads);
void normalize_backward(const float* dy, const float* inv_std, float* dx, int64_t n, int64_t c, int64_t hw,
                        int threads);

// ---- dense: x [n, in], w [out, in]
void linear_forward(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out,
                    bool relu, int threads);
void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, int64_t n,
                     int64_t in, int64_t out, int threads);

// ---- convolution (im2col + GEMM over groups of images)
// saved_columns (optional, conv2d_columns_size floats): forward stores the im2col columns there and backward
// reads them instead of rebuilding them. Backward must get the same threads as the forward that saved them.
int64_t conv2d_columns_size(const Conv2dGeom& g);
void conv2d_forward(const float* x, const float* w, const float* b, float* y, const Conv2dGeom& g, bool relu,
                    float* saved_columns, Workspace& ws, int threads);
void conv2d_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     const Conv2dGeom& g, const float* saved_columns, Workspace& ws, int threads);

// ---- pooling
// argmax may be null (inference); otherwise it receives each window's in-plane index of its first maximum.
void maxpool2d_forward(const float* x, float* y, int64_t* argmax, const Pool2dGeom& g, int threads);
void maxpool2d_backward(const int64_t* argmax, const float* dy, float* dx, const Pool2dGeom& g, int threads);
void avgpool2d_forward(const float* x, float* y, const Pool2dGeom& g, int threads);
void avgpool2d_backward(const float* dy, float* dx, const Pool2dGeom& g, int threads);

// ---- batch norm over x [n, c, hw]
void batchnorm_forward(const float* x, const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool batch_stats, float momentum, float eps, float* y, float* save_mean,
                       float* save_invstd, int64_t n, int64_t c, int64_t hw, bool relu, int threads);
void batchnorm_backward(const float* x, const float* gamma, const float* save_mean, const float* save_invstd,
                        const float* dy, bool batch_stats, float* dx, float* dgamma, float* dbeta, int64_t n,
                        int64_t c, int64_t hw, int threads);

// ---- rows of logits [n, k]
// Returns the summed (not mean) loss; per-row terms are combined in row order.
double softmax_xent_forward(const float* logits, const int64_t* labels, float* probs, int64_t n, int64_t k,
                            int threads);
void softmax_xent_backward(const float* probs, const int64_t* labels, float scale, float* dlogits, int64_t n,
                           int64_t k, int threads);
void softmax(const float* logits, float* probs, int64_t n, int64_t k, int threads);
void log_softmax(const float* logits, float* out, int64_t n, int64_t k, int threads);
void argmax_rows(const float* logits, int64_t* out, int64_t n, int64_t k, int threads);

// ---- optimizers over a flat arena
void sgd_step(float* params, const float* grads, float* momentum_buf, int64_t n, const SgdHyper& h, int threads);
void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamHyper& h, int threads);
// The unlearning update (kernels::ascent_update) with the coefficient from the deterministic dot; returns ||grads||.
double ascent_step(float* params, const float* grads, int64_t n, const AscentHyper& h, int threads);

// ---- fused parameter comparison (Backend::compare_params): target [P], aux rows j at aux + j·ld, the work items of
// `plan` (kernels/compare.h; valid bounds). Writes out[j·S + s] for S = plan.segments(). Bit-identical for any
// thread count: items are summed in a fixed structure (see kernels/compare.h).
void compare_params(const float* target, const float* aux, int64_t n_aux, int64_t ld, const ComparePlan& plan,
                    SegmentStats* out, int threads);

// ---- genetic algorithm (kernels/ga.h): fitness[r] = log p_{r / population} of logits row r ([rows, num_logits]);
// the next generation from genomes [K·P, G] and fitness [K·P]: parents [K·P, 2] (indices within the population; an
// elite slot names its member twice) and next [K·P, G].
void ga_fitness(const float* logits, float* fitness, int64_t rows, int64_t num_logits, int64_t population,
                int threads);
void ga_next_generation(const float* genomes, const float* fitness, int64_t* parents, float* next,
                        const GaHyper& h, int threads);

// ---- ZOO (kernels/zoo.h): x [M, D] every probe; rows [A] the active ones; coords [A, S] (distinct per probe).
// queries [A·2S, D]: row 2S·a + 2j + s is x[rows[a]] with pixel coords[a, j] moved by +h (s = 0) or -h (s = 1).
void zoo_queries(const float* x, const int64_t* rows, const int64_t* coords, int64_t active, int64_t coords_per_probe,
                 int64_t pixels, float h, float* queries, int threads);
// One coordinate-Adam step of the drawn coordinates from the queries' logits [A·2S, K]; labels [M] and lr [M] per
// probe; state [4, M, D] (kernels::ZooState planes).
void zoo_step(float* x, const int64_t* rows, const int64_t* coords, const float* logits, const int64_t* labels,
              const float* lr, float* state, int64_t probes, int64_t active, int64_t coords_per_probe, int64_t pixels,
              int64_t num_logits, const ZooHyper& hp, int threads);

// ---- Philox fills
void fill_uniform(float* y, int64_t n, float lo, float hi, uint64_t seed, uint64_t stream, int threads);
void fill_normal(float* y, int64_t n, float mean, float stddev, uint64_t seed, uint64_t stream, int threads);

}  // namespace lethe::kernels::cpu
