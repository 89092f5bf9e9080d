#pragma once
// Hu et al.'s feature recovery (../shared/research/attacks.md §B; docs/attacks/hu-and-defenses.md): a white-box server
// that holds the model before and after one sample X was unlearned rebuilds X's image from the weights alone.
//
//   1. the gradient estimate g* from the weights (gradient_estimate): the unlearning update is (a multiple of) X's
//      loss gradient, so g* points where ∇_θ L(X) points;
//   2. the search: images x (R restarts, pixels in [0, 1], X's label y known to the server) minimising
//        f(x) = 1 - cos(∇_θ L(x, y), g*) + α·TV(x)
//      with the cosine over all parameters together and TV anisotropic (mean |horizontal differences| + mean
//      |vertical differences|); the x-gradient is replaced by its sign, AdamW steps on the pixels (rate halved at 3/8,
//      5/8 and 7/8 of the iterations), the box [0, 1] after each step; the restart of lowest final cost is kept.
//
// The engine has no autograd, so the mixed second derivative in ∇_x cos is taken by central differences in parameter
// space (RecoveryObjective). The attack never reads the original image: the metrics (attacks/image_metrics.h) are the
// caller's business.
#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "engine/trainer.h"

namespace lethe::attacks {

// Throws InputError naming both files unless `a` and `b` are the same architecture (arch, input shape, classes,
// normalisation and every parameter's name and shape), so their flat parameter vectors line up element by element.
void check_same_architecture(const Model& a, const std::string& a_name, const Model& b, const std::string& b_name);

// The gradient estimate g*, flat [P] on the models' device, signed so that X's own loss gradient at the attacked
// model has cosine +1 with it (attacks.md writes θ_o - θ_u, the opposite sign; minimising 1 - cos needs this one):
//   - approximate unlearning (pretrained == nullptr): θ_u = θ_o + lr·∇L(X; θ_o), one ascent step, so
//       g* = θ_u - θ_o = +lr·∇_θ L(X; θ_o),  and the attack runs against θ_o;
//   - exact unlearning: θ_o and θ_u are θ_0 fine-tuned on D_u and on D_u \ X (N = |D_u| = user_count samples,
//     k = |X| = forget_count). For one full-batch SGD step N(θ_o - θ_0) - (N - k)(θ_u - θ_0) = -lr·Σ_X ∇L(θ_0), so
//       g* = -(N·(θ_o - θ_0) - (N - k)·(θ_u - θ_0)) = +lr·Σ_X ∇_θ L(X; θ_0),  and the attack runs against θ_0.
// Differences are formed before they are scaled (θ_o - θ_0 is small beside θ_o). Throws InputError for an
// architecture mismatch, a non-finite or all-zero g*, and UsageError unless 0 < k < N (exact only).
Tensor gradient_estimate(const Model& original, const std::string& original_name, const Model& unlearned,
                         const std::string& unlearned_name, const Model* pretrained = nullptr,
                         const std::string& pretrained_name = {}, int64_t user_count = 0, int64_t forget_count = 1);

struct RecoveryConfig {
  int64_t restarts = 5;
  int64_t iterations = 10000;
  float lr = 0.04f;            // AdamW on the pixels; halved at 3/8, 5/8 and 7/8 of the iterations
  float weight_decay = 0.01f;  // AdamW's default, as Hu's code leaves it
  float tv = 1e-2f;            // α, the weight of the anisotropic TV
  // The central differences' step, relative: ε = epsilon·‖θ‖ along a unit direction (see RecoveryObjective).
  float epsilon = 1e-5f;
  uint64_t seed = 0;           // the restarts' starts: Philox normal(0, 1) clamped to [0, 1], as Hu's randn + box
  nlohmann::json to_json() const;
};

// Anisotropic total variation of each image of a CPU [N, C, H, W] tensor: mean |x[.., w+1] - x[.., w]| over the
// C·H·(W-1) horizontal pairs plus mean |x[.., h+1, .] - x[.., h, .]| over the C·(H-1)·W vertical ones.
std::vector<double> total_variation(const Tensor& images);
// grad += weight·∂TV/∂x, the subgradient sign(Δ)/count of every pair (sign(0) = 0); CPU tensors of one shape.
void add_total_variation_subgradient(const Tensor& images, float weight, Tensor& grad);

// The objective f and its x-gradient for R images of one label, on `model` (eval mode: BatchNorm frozen, as Hu
// freezes it). Let u1 = g*/‖g*‖, g = ∇_θ L(x, y), u2 = g/‖g‖, c = cos(g, g*), and J^T v := ∇_x⟨∇_θ L(x, y), v⟩. Then
//   ∇_x cos = (J^T u1 - c·J^T u2) / ‖g‖,   J^T v ≈ (∇_x L(x; θ + εv) - ∇_x L(x; θ - εv)) / 2ε  (unit v).
// Central differences rather than an R-op (forward-mode through every layer's backward): they need only the passes
// the engine has, on every backend, at the price of two extra input-gradient passes per direction and an O(ε²)
// truncation error. ε is relative to ‖θ‖ (the direction is a unit vector over all P parameters). Its two limits:
// ReLU and max-pool switch where a unit's input crosses a kink, and a step across a switch turns the difference into
// a jump over 2ε; float32 rounds θ_i + εv_i to ~6e-8·|θ_i|, so a tiny step drowns in rounding. On LeNet-5 (random
// and trained) the estimate agrees with finite differences in x for ε/‖θ‖ from 3e-6 to 1e-5, crosses switches from
// 3e-5 up (1e-4 on the trained net) and turns noisy below 1e-6: ε = 1e-5·‖θ‖, the test checks it.
// Batching: the J^T u1 passes (θ ± εu1) take all R images as one batch (input_gradient's mean loss times R gives each
// image's own gradient). ∇_θ L(x_r) and the J^T u2_r passes cannot share a batch: the engine sums parameter gradients
// over a batch, and each restart has its own direction u2_r; they run per restart. One gradient() is R + 2 + 2R
// passes. The model's parameters are perturbed in place and restored exactly (copied back from a saved copy).
class RecoveryObjective {
 public:
  RecoveryObjective(Model& model, const Tensor& target_gradient, int64_t label, float tv, float epsilon);

  // f of each image of x [R, C, H, W] (R parameter-gradient passes).
  std::vector<double> costs(const Tensor& x);
  // f of each image, and ∇_x f into dx [R, C, H, W] (the same device as x; resized as needed).
  std::vector<double> gradient(const Tensor& x, Tensor& dx);
  // J^T u1 of each image, from the batched pair of passes; exposed for the batched-vs-single test.
  void cross_gradient_target(const Tensor& x, Tensor& out);

  float epsilon() const { return epsilon_; }  // the absolute step ε
  int64_t passes() const { return passes_; }  // forward+backward passes so far (a batched pass counts once)

 private:
  // ∇_θ L(x_r, y) into the arena's grads; returns ‖g‖ and sets `cos` (cos(g, g*)).
  double parameter_gradient(const Tensor& image, double& cos);
  // (∇_x L(x; θ + s·dir) , θ - s·dir) into plus/minus, θ restored afterwards.
  void perturbed_input_gradients(const Tensor& x, const Tensor& labels, const Tensor& dir, float step, Tensor& plus,
                                 Tensor& minus);
  void restore();  // θ from the saved copy

  Model& model_;
  BatchGradients gradients_;
  Tensor u1_, saved_params_, label_one_, labels_batch_;
  Tensor plus_batch_, minus_batch_, plus_one_, minus_one_;  // the central differences' two sides
  int64_t label_;
  float tv_, epsilon_ = 0;
  int64_t passes_ = 0;
};

// Per iteration: done of total, the lowest cost among the restarts at that iteration.
using RecoveryProgressFn = std::function<void(int64_t iteration, int64_t total, double best_cost)>;

struct RecoveryResult {
  Tensor image;                 // CPU [1, C, H, W], the restart of lowest final cost
  Tensor restarts;              // CPU [R, C, H, W], every restart's final image
  std::vector<double> costs;    // every restart's final cost
  int64_t best_restart = 0;
  double cost = 0;              // costs[best_restart]
  int64_t queries = 0;          // forward+backward passes (RecoveryObjective::passes)
  double seconds = 0;
};

// The search on `model` (θ_o, or θ_0 for exact unlearning) for X's image with label `label`, given g*
// (gradient_estimate). The model's parameters are perturbed during the search and restored exactly. Throws UsageError
// for a bad configuration or label, InputError if the model holds non-finite parameters or every restart's cost is
// not finite.
RecoveryResult run_recovery(Model& model, const Tensor& target_gradient, int64_t label, const RecoveryConfig& cfg,
                            const RecoveryProgressFn& progress = {});

}  // namespace lethe::attacks
