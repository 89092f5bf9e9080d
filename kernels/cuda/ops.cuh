#pragma once
// Launchers of the CUDA kernels, one family per .cu file (each kernel sits next to its launcher there). Pointers are
// device pointers; every launcher enqueues on `stream` and returns without waiting. Shapes follow the CPU twins in
// kernels/cpu/cpu_ops.h, which these kernels are tested against.
#include "kernels/device.h"

#include <cstdint>

#include "kernels/elementwise.h"
#include "kernels/ga.h"
#include "kernels/geometry.h"
#include "kernels/prune.h"
#include "kernels/zoo.h"

namespace lethe::LETHE_CUDA_NS {

// ---- elementwise.cu
void fill(float* y, int64_t n, float value, cudaStream_t stream);
void add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream);
void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream);
void scale(float* y, int64_t n, float alpha, cudaStream_t stream);
void clamp(float* y, int64_t n, float lo, float hi, cudaStream_t stream);
void add_image_prior_grad(const float* x, float* dx, int64_t n, int64_t height, int64_t width, float tv, float l2,
                          cudaStream_t stream);
void relu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n, cudaStream_t stream);
// x is [n, c, hw]: y = (x - mean[c]) * inv_std[c]; dx = dy * inv_std[c].
void normalize_forward(const float* x, const float* mean, const float* inv_std, float* y, int64_t n, int64_t c,
                       int64_t hw, cudaStream_t stream);
void normalize_backward(const float* dy, const float* inv_std, float* dx, int64_t n, int64_t c, int64_t hw,
                        cudaStream_t stream);
// y[i] = act(y[i] + bias[(i / inner) % channels]) over `count` elements; bias may be null (activation only).
// Linear outputs are inner = 1; NCHW conv outputs are inner = H·W.
void bias_activation(float* y, const float* bias, int64_t count, int64_t channels, int64_t inner, bool relu,
                     cudaStream_t stream);

// ---- prune.cu: magnitude pruning (kernels/prune.h)
// hist[0..256) = the counts, per bin of digit `pass`, of the |w| that share `prefix` (zeroed first).
void magnitude_histogram(const float* w, int64_t n, uint32_t prefix, int pass, uint32_t* hist, cudaStream_t stream);
// w[i] = 0 where |w[i]| <= threshold.
void prune_magnitude(float* w, int64_t n, float threshold, cudaStream_t stream);

// ---- reduce.cu: deterministic sums in double (two passes: per-block partials, then one block)
// Scratch doubles the partials of a length-n reduction need.
int64_t reduce_partials(int64_t n);
// *out (device) = Σ a[i]·b[i]; `partials` holds reduce_partials(n) doubles.
void dot(const float* a, const float* b, int64_t n, double* partials, double* out, cudaStream_t stream);
// *out = Σ in[i] in one block, in a fixed order.
void sum_f64(const double* in, int64_t n, double* out, cudaStream_t stream);
// Gradient clipping without a host round trip: g *= max_norm / (sqrt(*sum_squares) + 1e-6) when the norm exceeds
// max_norm (torch.nn.utils.clip_grad_norm_'s formula).
void clip_by_norm(float* g, int64_t n, const double* sum_squares, float max_norm, cudaStream_t stream);

// ---- channel sums over x [n, c, hw] (BatchNorm statistics, bias gradients), deterministic
enum class ChannelSum : int {
  X = 0,              // Σ x
  CenteredSquare = 1,  // Σ (x - mean[c])², mean in double
  DyAndDyXhat = 2,     // Σ dy and Σ dy·x̂ with x̂ = (x - mean[c])·invstd[c] in float, as the CPU computes it
};
// Splits of one channel's n·hw elements the first pass uses.
int channel_splits(int64_t n, int64_t hw);
// partials: 2·c·channel_splits(n, hw) doubles. Writes sums[2·ch + {0, 1}] (device doubles).
void channel_sums(ChannelSum what, const float* x, const float* dy, const double* mean_f64, const float* mean_f32,
                  const float* invstd, int64_t n, int64_t c, int64_t hw, double* partials, double* sums,
                  cudaStream_t stream);
// dst[ch] += (float)sums[2·ch + which]
void accumulate_channel_sums(const double* sums, int which, float* dst, int64_t c, cudaStream_t stream);

// ---- batchnorm.cu
// Train mode, after channel_sums: from Σx and Σ(x-μ)² (sums_x, sums_sq: 2·c doubles each, first slot used) update
// running statistics and write save_mean/save_invstd. mean_f64 receives μ for the second pass.
void batchnorm_mean(const double* sums_x, int64_t count, double* mean_f64, int64_t c, cudaStream_t stream);
void batchnorm_finish_stats(const double* mean_f64, const double* sums_sq, int64_t count, float momentum, float eps,
                            float* running_mean, float* running_var, float* save_mean, float* save_invstd, int64_t c,
                            cudaStream_t stream);
// Eval mode statistics: save_mean = running_mean, save_invstd = 1/sqrt(running_var + eps).
void batchnorm_eval_stats(const float* running_mean, const float* running_var, float eps, float* save_mean,
                          float* save_invstd, int64_t c, cudaStream_t stream);
void batchnorm_apply(const float* x, const float* gamma, const float* beta, const float* save_mean,
                     const float* save_invstd, float* y, int64_t n, int64_t c, int64_t hw, bool relu,
                     cudaStream_t stream);
// dx from the per-channel sums (train mode) or gamma·invstd alone (eval mode).
void batchnorm_backward_dx(const float* x, const float* gamma, const float* save_mean, const float* save_invstd,
                           const float* dy, const double* sums, bool batch_stats, float* dx, int64_t n, int64_t c,
                           int64_t hw, cudaStream_t stream);

// ---- pool.cu
void maxpool2d_forward(const float* x, float* y, int64_t* argmax, const kernels::Pool2dGeom& g, cudaStream_t stream);
void maxpool2d_backward(const int64_t* argmax, const float* dy, float* dx, const kernels::Pool2dGeom& g,
                        cudaStream_t stream);
void avgpool2d_forward(const float* x, float* y, const kernels::Pool2dGeom& g, cudaStream_t stream);
void avgpool2d_backward(const float* dy, float* dx, const kernels::Pool2dGeom& g, cudaStream_t stream);

// ---- softmax.cu: rows of logits [n, k], one warp per row
// Per-row losses go to row_loss (n doubles); a label outside [0, k) sets *bad_label = 1 and that row is skipped.
void softmax_xent_forward(const float* logits, const int64_t* labels, float* probs, double* row_loss, int* bad_label,
                          int64_t n, int64_t k, cudaStream_t stream);
void softmax_xent_backward(const float* probs, const int64_t* labels, float scale, float* dlogits, int* bad_label,
                           int64_t n, int64_t k, cudaStream_t stream);
void softmax(const float* logits, float* probs, int64_t n, int64_t k, cudaStream_t stream);
void log_softmax(const float* logits, float* out, int64_t n, int64_t k, cudaStream_t stream);
void argmax_rows(const float* logits, int64_t* out, int64_t n, int64_t k, cudaStream_t stream);

// ---- optim.cu: the whole flat arena in one launch
void sgd_step(float* params, const float* grads, float* momentum_buf, int64_t n, const kernels::SgdHyper& h,
              cudaStream_t stream);
void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const kernels::AdamHyper& h,
               cudaStream_t stream);
// The unlearning update (kernels::ascent_update) with the clip coefficient computed in the kernel from
// *sum_squares (device, e.g. from dot): no host round trip between the norm and the update.
void ascent_step(float* params, const float* grads, int64_t n, const double* sum_squares, const kernels::AscentHyper& h,
                 cudaStream_t stream);

// ---- random.cu: Philox, element i of (seed, stream) as on the CPU
void fill_uniform(float* y, int64_t n, float lo, float hi, uint64_t seed, uint64_t philox_stream,
                  cudaStream_t stream);
void fill_normal(float* y, int64_t n, float mean, float stddev, uint64_t seed, uint64_t philox_stream,
                 cudaStream_t stream);

// ---- im2col.cu: the GEMM convolution path
// Columns of images [n0, n0 + count) side by side: col is [C·KH·KW, count·HO·WO].
void im2col(const float* x, float* col, const kernels::Conv2dGeom& g, int64_t n0, int64_t count, cudaStream_t stream);
// dx of images [n0, n0 + count) = Σ over the columns that read each input pixel (a gather: no atomics).
void col2im(const float* col, float* dx, const kernels::Conv2dGeom& g, int64_t n0, int64_t count,
            cudaStream_t stream);
// [O, count·P] <-> NCHW of images [n0, n0 + count); the forward direction adds the bias and activation.
void columns_to_nchw(const float* out, const float* bias, float* y, const kernels::Conv2dGeom& g, int64_t n0,
                     int64_t count, bool relu, cudaStream_t stream);
void nchw_to_columns(const float* dy, float* out, const kernels::Conv2dGeom& g, int64_t n0, int64_t count,
                     cudaStream_t stream);

// ---- compare.cu: the fused parameter comparison (Backend::compare_params), deterministic in two passes
// Over the work items of a kernels::ComparePlan: cuts (items + 1 offsets) and seg_items (segments + 1) are device
// copies of its vectors. target [P], aux rows j at aux + j·ld; float4 loads when target, aux and ld are 16-byte
// aligned, scalar loads otherwise. partials: items·n_aux·4 doubles of scratch; out: n_aux·segments·4 doubles, the
// kernels::SegmentStats of aux j and segment s at out[(j·segments + s)·4].
void compare_params(const float* target, const float* aux, int64_t n_aux, int64_t ld, const int64_t* cuts,
                    int64_t items, const int64_t* seg_items, int64_t segments, double* partials, double* out,
                    cudaStream_t stream);

// ---- labels
// *bad = 1 if any label lies outside [0, k).
void check_labels(const int64_t* labels, int64_t n, int64_t k, int* bad, cudaStream_t stream);

// ---- ga.cu: the genetic algorithm's operators (kernels/ga.h), shapes as the CPU twins in kernels/cpu/cpu_ops.h
void ga_fitness(const float* logits, float* fitness, int64_t rows, int64_t num_logits, int64_t population,
                cudaStream_t stream);
void ga_next_generation(const float* genomes, const float* fitness, int64_t* parents, float* next,
                        const kernels::GaHyper& h, cudaStream_t stream);

// ---- zoo.cu: ZOO's query images and coordinate-Adam step (kernels/zoo.h), shapes as the CPU twins
void zoo_queries(const float* x, const int64_t* rows, const int64_t* coords, int64_t active, int64_t coords_per_probe,
                 int64_t pixels, float h, float* queries, cudaStream_t stream);
void zoo_step(float* x, const int64_t* rows, const int64_t* coords, const float* logits, const int64_t* labels,
              const float* lr, float* state, int64_t probes, int64_t active, int64_t coords_per_probe, int64_t pixels,
              int64_t num_logits, const kernels::ZooHyper& hp, cudaStream_t stream);

}  // namespace lethe::LETHE_CUDA_NS
