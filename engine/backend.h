#pragma once
// The backend interface: every op the layers, losses and optimizers need, on tensors of one device.
// Nets and attacks only talk to this interface, so the CUDA backend slots in without changing them.
//
// Conventions:
// - Activations are NCHW f32, contiguous. Linear weights are [out, in]; conv weights are OIHW.
// - Parameter gradients ACCUMULATE (+=) into their destination, like PyTorch's .grad; zero them first.
// - Input gradients (dx) OVERWRITE their destination. A null pointer means "not needed" and is skipped.
// - Outputs never alias inputs unless an op says so.
// - `relu` on a producing op (conv, linear, batch norm) applies ReLU to its output in the same pass, saving a trip
//   through memory; Sequential fuses a ReLU layer into the layer before it this way.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/compare.h"
#include "kernels/elementwise.h"
#include "kernels/ga.h"
#include "kernels/geometry.h"
#include "kernels/zoo.h"

namespace lethe {

using kernels::Conv2dGeom;
using kernels::Pool2dGeom;

// State a backend may keep for one layer between its forward and backward passes (the CPU keeps a convolution's
// im2col columns so backward need not rebuild them; a cuDNN backend could keep its chosen algorithms). The layer owns
// it without looking inside; a backend must treat state it did not write, or that no longer matches, as absent.
struct LayerState {
  virtual ~LayerState() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  virtual int threads() const = 0;

  // --- memory and elementwise
  virtual void fill(Tensor& t, float value) = 0;
  virtual void copy(const Tensor& src, Tensor& dst) = 0;          // same numel and dtype
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;  // y = a + b; y may alias a or b
  virtual void axpy(float alpha, const Tensor& x, Tensor& y) = 0;    // y += alpha * x
  virtual void scale(Tensor& y, float alpha) = 0;                     // y *= alpha
  virtual double dot(const Tensor& a, const Tensor& b) = 0;           // Σ a·b in double, deterministic order
  virtual double sum_squares(const Tensor& a) = 0;

  virtual void clamp(Tensor& y, float lo, float hi) = 0;              // y = min(max(y, lo), hi); NaN stays NaN
  // The inversion attack's image prior: dx += ∇(tv·TV(x) + l2·‖x‖²), x [N, C, H, W] (kernels::image_prior_grad).
  virtual void add_image_prior_grad(const Tensor& x, Tensor& dx, float tv, float l2) = 0;

  // Magnitude pruning (kernels/prune.h): the k-th smallest |w| over all of w (0 <= k < numel; the same element's value
  // on every backend), and w[i] = 0 where |w[i]| <= threshold.
  virtual float magnitude_kth(const Tensor& w, int64_t k) = 0;
  virtual void prune_magnitude(Tensor& w, float threshold) = 0;

  // --- fixed per-channel input normalisation: y = (x - mean[c]) / std[c]; backward dx = dy / std[c]
  virtual void normalize_forward(const Tensor& x, const Tensor& mean, const Tensor& inv_std, Tensor& y) = 0;
  virtual void normalize_backward(const Tensor& dy, const Tensor& inv_std, Tensor& dx) = 0;

  // --- dense: x [N, in], w [out, in], b [out] or null, y [N, out]
  virtual void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, bool relu = false) = 0;
  virtual void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                               Tensor* db) = 0;

  // --- convolution: x [N,C,H,W], w [O,C,KH,KW], b [O] or null, y [N,O,HO,WO]
  // `state` (optional) carries what forward saves for backward; pass the same one to both.
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, const Conv2dGeom&,
                              bool relu = false, std::unique_ptr<LayerState>* state = nullptr) = 0;
  virtual void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                               Tensor* db, const Conv2dGeom&, std::unique_ptr<LayerState>* state = nullptr) = 0;

  // --- pooling. Max pool records, when `argmax` is given, the in-plane index (ih·W + iw) of each window's first
  // maximum (NaN wins), as PyTorch's indices; backward scatters dy through them. argmax: I64 [N,C,HO,WO].
  virtual void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor* argmax, const Pool2dGeom&) = 0;
  virtual void maxpool2d_backward(const Tensor& argmax, const Tensor& dy, Tensor& dx, const Pool2dGeom&) = 0;
  // count_include_pad = true, PyTorch's default; AdaptiveAvgPool2d(1) is the kernel = H×W case.
  virtual void avgpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeom&) = 0;
  virtual void avgpool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeom&) = 0;

  // --- BatchNorm2d. Train mode normalises with batch statistics, updates the running ones in place
  // (unbiased variance, PyTorch momentum), and saves mean and 1/sqrt(var+eps) for backward. Eval mode uses the
  // running statistics and also fills save_mean/save_invstd from them.
  virtual void batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                                   Tensor& running_var, bool batch_stats, float momentum, float eps, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd, bool relu = false) = 0;
  // batch_stats selects the train-mode gradient (through the batch statistics) or the eval-mode one.
  virtual void batchnorm2d_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                    const Tensor& save_invstd, const Tensor& dy, bool batch_stats, Tensor* dx,
                                    Tensor* dgamma, Tensor* dbeta) = 0;

  // --- activations
  virtual void relu_forward(const Tensor& x, Tensor& y) = 0;                     // y may alias x
  virtual void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) = 0;  // dx may alias dy

  // --- losses and outputs over logits [N, K]
  // Fused softmax cross-entropy, mean over the batch. Writes the probabilities (needed by backward) and returns
  // the mean loss. Labels are i64 [N] in [0, K).
  virtual double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) = 0;
  // dlogits = (probs - onehot(labels)) * scale; scale is 1/N for the mean loss.
  virtual void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale, Tensor& dlogits) = 0;
  virtual void softmax(const Tensor& logits, Tensor& probs) = 0;
  virtual void log_softmax(const Tensor& logits, Tensor& out) = 0;
  virtual void argmax_rows(const Tensor& logits, Tensor& out_i64) = 0;

  // --- optimizers: one fused pass over the flat parameter arena
  virtual void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const kernels::SgdHyper&) = 0;
  virtual void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const kernels::AdamHyper&) = 0;

  // --- unlearning update: one fused pass over the flat parameter arena (gradient ascent / descent, clipping, noise)
  //   c = max_norm > 0 ? min(1, max_norm / (||grads|| + 1e-6)) : 1     (torch.nn.utils.clip_grad_norm_'s rule)
  //   params[i] += sign * lr * c * grads[i] + noise_std * N_i            N_i = element i of Philox normal (seed, stream)
  // sign = +1 ascends the loss (NegGrad, Hu's approximate unlearning), -1 descends. Returns ||grads|| before clipping
  // (double, deterministic). noise_std = 0 draws nothing. A NaN norm leaves c = 1 (only a coefficient below 1 clips,
  // as clip_grad_norm does), so non-finite gradients reach the parameters rather than being masked. sign must be
  // ±1 and noise_std >= 0.
  virtual double ascent_step(Tensor& params, const Tensor& grads, const kernels::AscentHyper&) = 0;

  // --- parameter comparison (the parameter attacks): target [P] f32; aux [N, ld] f32, ld = compare_row_stride(P)
  // or more, row j's first P values being auxiliary vector j. `bounds` (host; at least 2 values, strictly increasing,
  // bounds.back() <= P) cut [bounds.front(), bounds.back()) into consecutive segments; nothing outside is read.
  // Returns N × S stats, out[j * S + s] for aux j and segment s. Deterministic: the same bits for any thread count.
  virtual std::vector<kernels::SegmentStats> compare_params(const Tensor& target, const Tensor& aux,
                                                            const std::vector<int64_t>& bounds) = 0;

  // --- genetic algorithm (the black-box inversion; kernels/ga.h). K populations of P genomes, [K·P, G] row-major.
  // fitness [K·P] = log p_k of each member's logits row (logits [K·P, K], k = row / population).
  virtual void ga_fitness(const Tensor& logits, int64_t population, Tensor& fitness) = 0;
  // One generation: selection (elitism, tournaments), crossover and mutation. parents: I64 [K·P, 2], the parents'
  // indices within their population (an elite slot names its member twice); next: [K·P, G], never aliasing genomes.
  // The same genomes, fitness and hyperparameters give the same bits on every backend.
  virtual void ga_next_generation(const Tensor& genomes, const Tensor& fitness, Tensor& parents, Tensor& next,
                                  const kernels::GaHyper& h) = 0;

  // --- ZOO (Hu et al.'s label-inference probes; kernels/zoo.h). x [M, D] holds every probe; a step works on the A
  // probes named by `rows` (I64 [A], distinct), coords I64 [A, S] their S distinct pixels each (< D).
  // queries [A·2S, D]: row 2S·a + 2j + s is x[rows[a]] with pixel coords[a, j] moved by +h (s = 0) or -h (s = 1).
  virtual void zoo_queries(const Tensor& x, const Tensor& rows, const Tensor& coords, float h, Tensor& queries) = 0;
  // One coordinate-Adam step of those pixels from the queries' logits [A·2S, K]: labels I64 [M] and lr F32 [M] per
  // probe, state F32 [4, M, D] (kernels::ZooState planes: moments, then bias-correction powers starting at 1).
  virtual void zoo_step(Tensor& x, const Tensor& rows, const Tensor& coords, const Tensor& logits,
                        const Tensor& labels, const Tensor& lr, Tensor& state, const kernels::ZooHyper& hp) = 0;

  // --- random fills (Philox: element i of (seed, stream) is the same on every backend)
  virtual void fill_uniform(Tensor& t, float lo, float hi, uint64_t seed, uint64_t stream) = 0;
  virtual void fill_normal(Tensor& t, float mean, float stddev, uint64_t seed, uint64_t stream) = 0;
};

// The rules Backend::ascent_step's hyperparameters must follow (sign ±1, noise_std >= 0); every backend checks them.
inline void check_ascent_hyper(const kernels::AscentHyper& h) {
  LETHE_CHECK(h.sign == 1.0f || h.sign == -1.0f, "ascent sign must be +1 or -1");
  LETHE_CHECK(h.noise_std >= 0.0f, "ascent noise_std must be >= 0");
}

// The shapes and hyperparameters Backend::ga_next_generation takes; every backend checks them.
inline void check_ga_generation(const Tensor& genomes, const Tensor& fitness, const Tensor& parents,
                                const Tensor& next, const kernels::GaHyper& h) {
  LETHE_CHECK(h.classes >= 1 && h.population >= 1 && h.genes >= 1, "GA: classes, population and genes must be >= 1");
  LETHE_CHECK(h.elites >= 0 && h.elites <= h.population, "GA: elites must be in [0, population]");
  LETHE_CHECK(h.tournament >= 1, "GA: the tournament size must be >= 1");
  LETHE_CHECK(h.mutation_rate >= 0.0f && h.mutation_rate <= 1.0f, "GA: the mutation rate must be in [0, 1]");
  LETHE_CHECK(h.sigma >= 0.0f && std::isfinite(h.sigma), "GA: sigma must be finite and >= 0");
  LETHE_CHECK(h.blend_alpha >= 0.0f && std::isfinite(h.blend_alpha), "GA: blend alpha must be finite and >= 0");
  const int64_t members = h.classes * h.population;
  LETHE_CHECK(genomes.dtype() == DType::F32 && genomes.shape() == Shape({members, h.genes}),
              "GA genomes must be F32 [classes * population, genes]");
  LETHE_CHECK(next.dtype() == DType::F32 && next.shape() == genomes.shape(), "GA next generation: genomes' shape");
  LETHE_CHECK(next.raw() != genomes.raw(), "GA next generation must not alias the genomes");
  LETHE_CHECK(fitness.dtype() == DType::F32 && fitness.numel() == members,
              "GA fitness must be F32 [classes * population]");
  LETHE_CHECK(parents.dtype() == DType::I64 && parents.shape() == Shape({members, 2}),
              "GA parents must be I64 [classes * population, 2]");
}

// The shapes Backend::zoo_queries and zoo_step take; every backend checks them (queries or logits: whichever is given).
inline void check_zoo_shapes(const Tensor& x, const Tensor& rows, const Tensor& coords, const Tensor* queries,
                             const Tensor* logits) {
  LETHE_CHECK(x.dtype() == DType::F32 && x.ndim() == 2, "ZOO probes must be F32 [M, D]");
  LETHE_CHECK(rows.dtype() == DType::I64 && rows.ndim() == 1 && rows.numel() <= x.dim(0),
              "ZOO rows must be I64 [A], A <= M");
  LETHE_CHECK(coords.dtype() == DType::I64 && coords.ndim() == 2 && coords.dim(0) == rows.numel() &&
                  coords.dim(1) <= x.dim(1),
              "ZOO coords must be I64 [A, S], S <= D");
  const int64_t query_rows = rows.numel() * 2 * coords.dim(1);
  if (queries)
    LETHE_CHECK(queries->dtype() == DType::F32 && queries->shape() == Shape({query_rows, x.dim(1)}),
                "ZOO queries must be F32 [A·2S, D]");
  if (logits)
    LETHE_CHECK(logits->dtype() == DType::F32 && logits->ndim() == 2 && logits->dim(0) == query_rows,
                "ZOO logits must be F32 [A·2S, K]");
}

inline void check_zoo_step(const Tensor& x, const Tensor& logits, const Tensor& labels, const Tensor& lr,
                           const Tensor& state) {
  LETHE_CHECK(labels.dtype() == DType::I64 && labels.numel() == x.dim(0), "ZOO labels must be I64 [M]");
  LETHE_CHECK(lr.dtype() == DType::F32 && lr.numel() == x.dim(0), "ZOO rates must be F32 [M]");
  LETHE_CHECK(state.dtype() == DType::F32 && state.shape() == Shape({kernels::kZooStatePlanes, x.dim(0), x.dim(1)}),
              "ZOO state must be F32 [4, M, D]");
  LETHE_CHECK(logits.dim(1) >= 1, "ZOO logits need at least one class");
}

// Creates the backend for "cpu", "cuda" (device 0), "cuda:K" or "auto". threads <= 0 means the machine's core count.
// Throws a UsageError naming the problem if the device is unavailable (e.g. cuda in a CPU-only build).
std::unique_ptr<Backend> make_backend(const std::string& device, int threads);
std::unique_ptr<Backend> make_cpu_backend(int threads);
bool cuda_built();      // this binary contains the nvcc-built CUDA backend
bool cuda_available();  // built with CUDA and a device is present (false without a driver, never throws)

}  // namespace lethe
