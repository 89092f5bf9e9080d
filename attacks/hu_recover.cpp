#include "attacks/hu_recover.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "engine/trainer.h"

namespace lethe::attacks {
namespace {

// Philox stream of the restarts' starting images.
constexpr uint64_t kStartStream = 0x48555253;  // "HURS"

std::string describe(const Model& m) {
  const ModelSpec& s = m.spec();
  return "a " + s.arch + " [" + std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
         std::to_string(s.width) + " -> " + std::to_string(s.num_classes) + "] with " +
         std::to_string(m.arena().size()) + " parameters";
}

bool same_parameters(const ParamArena& a, const ParamArena& b) {
  if (a.size() != b.size() || a.entries().size() != b.entries().size()) return false;
  for (size_t i = 0; i < a.entries().size(); ++i)
    if (a.entries()[i].name != b.entries()[i].name || a.entries()[i].shape != b.entries()[i].shape) return false;
  return true;
}

// Replaces every element by its sign (0 stays 0), as Hu's code does to the x-gradient. The images are small, so it
// runs on the host.
void take_sign(Tensor& t) {
  Tensor host = t.to_cpu();
  float* p = host.f32();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = static_cast<float>((p[i] > 0.0f) - (p[i] < 0.0f));
  copy_bytes(t.raw(), t.device(), host.raw(), Device::CPU, host.nbytes());
}

// The iterations at which the rate halves: 3/8, 5/8 and 7/8 of them (MultiStepLR, gamma 0.5, stepped per
// iteration), dropping any that coincide for very short runs.
ScheduleConfig halving_schedule(int64_t iterations) {
  ScheduleConfig s;
  s.kind = "multistep";
  s.gamma = 0.5f;
  for (const int64_t eighths : {3, 5, 7}) {
    const int m = static_cast<int>(iterations * eighths / 8);
    if (m > 0 && (s.milestones.empty() || m > s.milestones.back())) s.milestones.push_back(m);
  }
  return s;
}

void check_config(const RecoveryConfig& cfg) {
  if (cfg.restarts < 1 || cfg.iterations < 1) throw UsageError("--restarts and --iterations must be >= 1");
  if (cfg.iterations > std::numeric_limits<int>::max()) throw UsageError("--iterations is too large");
  if (!(cfg.lr > 0.0f) || !(cfg.weight_decay >= 0.0f)) throw UsageError("--lr must be > 0 and the weight decay >= 0");
  if (!(cfg.tv >= 0.0f)) throw UsageError("--tv must be >= 0");
  if (!(cfg.epsilon > 0.0f && cfg.epsilon < 1.0f)) throw UsageError("--epsilon must be in (0, 1)");
}

}  // namespace

void check_same_architecture(const Model& a, const std::string& a_name, const Model& b, const std::string& b_name) {
  const ModelSpec& sa = a.spec();
  const ModelSpec& sb = b.spec();
  const bool same = sa.arch == sb.arch && sa.channels == sb.channels && sa.height == sb.height &&
                    sa.width == sb.width && sa.num_classes == sb.num_classes && sa.hidden == sb.hidden &&
                    sa.base_channels == sb.base_channels && sa.mean == sb.mean && sa.std == sb.std &&
                    same_parameters(a.arena(), b.arena());
  if (!same)
    throw InputError(a_name + " is " + describe(a) + " and " + b_name + " is " + describe(b) +
                     ": the attack compares two models of one architecture (same layers, shapes and input "
                     "normalisation)");
}

Tensor gradient_estimate(const Model& original, const std::string& original_name, const Model& unlearned,
                         const std::string& unlearned_name, const Model* pretrained, const std::string& pretrained_name,
                         int64_t user_count, int64_t forget_count) {
  check_same_architecture(original, original_name, unlearned, unlearned_name);
  Backend& be = original.backend();
  Tensor g = unlearned.arena().params().to(be.device());
  if (!pretrained) {
    be.axpy(-1.0f, original.arena().params(), g);  // θ_u - θ_o
  } else {
    check_same_architecture(*pretrained, pretrained_name, original, original_name);
    if (!(forget_count > 0 && forget_count < user_count))
      throw UsageError("exact unlearning needs 0 < k < N (k = " + std::to_string(forget_count) +
                       " unlearned samples, N = " + std::to_string(user_count) + " user samples)");
    const Tensor& theta0 = pretrained->arena().params();
    Tensor original_step = original.arena().params().to(be.device());
    be.axpy(-1.0f, theta0, original_step);  // θ_o - θ_0
    be.axpy(-1.0f, theta0, g);              // θ_u - θ_0
    be.scale(g, static_cast<float>(user_count - forget_count));
    be.axpy(-static_cast<float>(user_count), original_step, g);  // (N - k)(θ_u - θ_0) - N(θ_o - θ_0)
  }
  const double norm2 = be.sum_squares(g);
  const std::string models = unlearned_name + " and " + original_name + (pretrained ? " and " + pretrained_name : "");
  if (!std::isfinite(norm2))
    throw InputError("the gradient estimate g* from " + models + " is not finite (a model holds NaN or Inf)");
  if (norm2 == 0)
    throw InputError("the gradient estimate g* from " + models + " is zero: the unlearning changed no weight");
  return g;
}

nlohmann::json RecoveryConfig::to_json() const {
  return {{"restarts", restarts},     {"iterations", iterations}, {"lr", lr}, {"weight_decay", weight_decay},
          {"tv", tv},                 {"epsilon", epsilon},       {"seed", seed}};
}

std::vector<double> total_variation(const Tensor& images) {
  LETHE_CHECK(images.ndim() == 4 && images.device() == Device::CPU && images.dtype() == DType::F32,
              "total_variation takes CPU f32 [N, C, H, W]");
  const int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
  const double across = static_cast<double>(c * h * (w - 1)), down = static_cast<double>(c * (h - 1) * w);
  std::vector<double> tv(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double sum_across = 0, sum_down = 0;
    for (int64_t p = 0; p < c * h; ++p) {
      const float* row = images.f32() + (i * c * h + p) * w;
      for (int64_t x = 0; x + 1 < w; ++x) sum_across += std::fabs(static_cast<double>(row[x + 1]) - row[x]);
      if (p % h + 1 < h)
        for (int64_t x = 0; x < w; ++x) sum_down += std::fabs(static_cast<double>(row[x + w]) - row[x]);
    }
    tv[static_cast<size_t>(i)] = (across > 0 ? sum_across / across : 0) + (down > 0 ? sum_down / down : 0);
  }
  return tv;
}

void add_total_variation_subgradient(const Tensor& images, float weight, Tensor& grad) {
  LETHE_CHECK(images.ndim() == 4 && images.device() == Device::CPU && grad.device() == Device::CPU &&
                  grad.shape() == images.shape(),
              "add_total_variation_subgradient takes CPU f32 [N, C, H, W] images and gradient");
  const int64_t c = images.dim(1), h = images.dim(2), w = images.dim(3);
  const float across = w > 1 ? weight / static_cast<float>(c * h * (w - 1)) : 0.0f;
  const float down = h > 1 ? weight / static_cast<float>(c * (h - 1) * w) : 0.0f;
  const auto sign = [](float d) { return static_cast<float>((d > 0.0f) - (d < 0.0f)); };
  const float* x = images.f32();
  float* g = grad.f32();
  for (int64_t p = 0; p < images.dim(0) * c * h; ++p) {  // every row of every plane
    const int64_t r = p * w;
    for (int64_t i = 0; i + 1 < w; ++i) {  // |x[i+1] - x[i]|
      const float s = across * sign(x[r + i + 1] - x[r + i]);
      g[r + i + 1] += s;
      g[r + i] -= s;
    }
    if (p % h + 1 < h)
      for (int64_t i = 0; i < w; ++i) {
        const float s = down * sign(x[r + w + i] - x[r + i]);
        g[r + w + i] += s;
        g[r + i] -= s;
      }
  }
}

RecoveryObjective::RecoveryObjective(Model& model, const Tensor& target_gradient, int64_t label, float tv,
                                     float epsilon)
    : model_(model), gradients_(model), label_(label), tv_(tv) {
  Backend& be = model.backend();
  const int64_t k = model.spec().num_classes;
  if (label < 0 || label >= k)
    throw UsageError("the label " + std::to_string(label) + " is outside the model's classes 0.." +
                     std::to_string(k - 1));
  LETHE_CHECK(target_gradient.numel() == model.arena().size(), "g* must have one entry per parameter");
  const double params2 = be.sum_squares(model.arena().params());
  if (!std::isfinite(params2)) throw InputError("the attacked model's parameters are not finite");
  const double target2 = be.sum_squares(target_gradient);
  if (!std::isfinite(target2) || target2 == 0) throw InputError("g* must be finite and nonzero");
  // Relative to the parameters' scale (a model of all-zero weights gets the bare epsilon).
  epsilon_ = static_cast<float>(epsilon * (params2 > 0 ? std::sqrt(params2) : 1.0));
  u1_ = target_gradient.reshape({model.arena().size()}).to(be.device());
  be.scale(u1_, static_cast<float>(1.0 / std::sqrt(target2)));
  saved_params_ = model.arena().params().to(be.device());
  label_one_ = Tensor::from_labels({label}).to(be.device());
}

double RecoveryObjective::parameter_gradient(const Tensor& image, double& cos) {
  Backend& be = model_.backend();
  gradients_.compute(image, label_one_, /*train_mode=*/false, "feature recovery");
  ++passes_;
  const Tensor& g = model_.arena().grads();
  const double norm = std::sqrt(be.sum_squares(g));
  cos = norm > 0 ? be.dot(g, u1_) / norm : 0.0;
  return norm;
}

void RecoveryObjective::restore() {
  Tensor params = model_.arena().params();  // a view: the copy writes into the arena
  model_.backend().copy(saved_params_, params);
}

void RecoveryObjective::perturbed_input_gradients(const Tensor& x, const Tensor& labels, const Tensor& dir,
                                                  float step, Tensor& plus, Tensor& minus) {
  Backend& be = model_.backend();
  struct Restore {  // θ comes back even if a pass throws
    RecoveryObjective& o;
    ~Restore() { o.restore(); }
  } restore_on_exit{*this};
  Tensor params = model_.arena().params();
  be.axpy(step, dir, params);
  model_.input_gradient(x, labels, plus);
  restore();  // a fresh copy, not θ + εv - 2εv: the perturbations do not accumulate rounding
  be.axpy(-step, dir, params);
  model_.input_gradient(x, labels, minus);
  passes_ += 2;
}

void RecoveryObjective::cross_gradient_target(const Tensor& x, Tensor& out) {
  Backend& be = model_.backend();
  const int64_t r = x.dim(0);
  if (!labels_batch_.defined() || labels_batch_.numel() != r)
    labels_batch_ = Tensor::from_labels(std::vector<int64_t>(static_cast<size_t>(r), label_)).to(be.device());
  perturbed_input_gradients(x, labels_batch_, u1_, epsilon_, plus_batch_, minus_batch_);
  Tensor::ensure(out, x.shape(), DType::F32, be.device());
  be.copy(plus_batch_, out);
  be.axpy(-1.0f, minus_batch_, out);
  // input_gradient differentiates the batch's mean loss: times R, each image's own gradient.
  be.scale(out, static_cast<float>(static_cast<double>(r) / (2.0 * epsilon_)));
}

std::vector<double> RecoveryObjective::costs(const Tensor& x) {
  const std::vector<double> tv = total_variation(x.to_cpu());
  std::vector<double> f(tv.size());
  for (int64_t i = 0; i < x.dim(0); ++i) {
    double cos = 0;
    parameter_gradient(x.rows(i, 1), cos);
    f[static_cast<size_t>(i)] = 1.0 - cos + tv_ * tv[static_cast<size_t>(i)];
  }
  return f;
}

std::vector<double> RecoveryObjective::gradient(const Tensor& x, Tensor& dx) {
  Backend& be = model_.backend();
  cross_gradient_target(x, dx);  // J^T u1 of every image
  const Tensor host_x = x.to_cpu();
  const std::vector<double> tv = total_variation(host_x);
  std::vector<double> f(tv.size());
  for (int64_t i = 0; i < x.dim(0); ++i) {
    const Tensor image = x.rows(i, 1);
    Tensor d = dx.rows(i, 1);
    double cos = 0;
    const double norm = parameter_gradient(image, cos);
    f[static_cast<size_t>(i)] = 1.0 - cos + tv_ * tv[static_cast<size_t>(i)];
    if (norm == 0) {  // a saturated softmax: no parameter gradient, and no direction for the cosine to improve in
      be.fill(d, 0.0f);
      continue;
    }
    // ∇_x f = -(J^T u1 - c·J^T u2) / ‖g‖, with J^T u2 from θ ± (ε/‖g‖)·g (the arena's grads, which input_gradient
    // leaves alone).
    perturbed_input_gradients(image, label_one_, model_.arena().grads(), static_cast<float>(epsilon_ / norm),
                              plus_one_, minus_one_);
    be.scale(d, static_cast<float>(-1.0 / norm));
    const float w = static_cast<float>(cos / (norm * 2.0 * epsilon_));
    be.axpy(w, plus_one_, d);
    be.axpy(-w, minus_one_, d);
  }
  if (tv_ > 0) {
    Tensor host_dx = dx.to_cpu();
    add_total_variation_subgradient(host_x, tv_, host_dx);
    copy_bytes(dx.raw(), dx.device(), host_dx.raw(), Device::CPU, host_dx.nbytes());
  }
  return f;
}

RecoveryResult run_recovery(Model& model, const Tensor& target_gradient, int64_t label, const RecoveryConfig& cfg,
                            const RecoveryProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  check_config(cfg);
  RecoveryObjective objective(model, target_gradient, label, cfg.tv, cfg.epsilon);
  Backend& be = model.backend();
  Tensor x = Tensor::empty(model.spec().input_shape(cfg.restarts), DType::F32, be.device());
  be.fill_normal(x, 0.0f, 1.0f, cfg.seed, kStartStream);
  be.clamp(x, 0.0f, 1.0f);
  Tensor dx;
  Tensor m = Tensor::zeros(x.shape(), DType::F32, be.device()), v = Tensor::zeros(x.shape(), DType::F32, be.device());
  const ScheduleConfig schedule = halving_schedule(cfg.iterations);
  for (int64_t it = 0; it < cfg.iterations; ++it) {
    const std::vector<double> f = objective.gradient(x, dx);
    take_sign(dx);
    be.adam_step(x, dx, m, v,
                 adam_hyper(lr_at(schedule, cfg.lr, static_cast<int>(it)), 0.9f, 0.999f, 1e-8f, cfg.weight_decay,
                            /*decoupled=*/true, it + 1));
    be.clamp(x, 0.0f, 1.0f);
    if (progress) {
      double best = std::numeric_limits<double>::infinity();
      for (const double c : f) best = std::isnan(c) ? best : std::min(best, c);
      progress(it + 1, cfg.iterations, best);
    }
  }

  RecoveryResult r;
  r.costs = objective.costs(x);
  r.best_restart = -1;
  for (size_t i = 0; i < r.costs.size(); ++i)
    if (std::isfinite(r.costs[i]) &&
        (r.best_restart < 0 || r.costs[i] < r.costs[static_cast<size_t>(r.best_restart)]))
      r.best_restart = static_cast<int64_t>(i);
  if (r.best_restart < 0) throw InputError("feature recovery: no restart ended with a finite cost");
  r.cost = r.costs[static_cast<size_t>(r.best_restart)];
  r.restarts = x.to_cpu();
  r.image = r.restarts.rows(r.best_restart, 1).to_cpu();
  r.queries = objective.passes();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lethe::attacks
