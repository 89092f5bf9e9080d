#pragma once
// Hu et al.'s label inference (../shared/research/attacks.md §B): a user with black-box access to the model's
// probabilities before (θ_o) and after (θ_u) unlearning names the class that was unlearned.
//   1. probes: for every class y, images that θ_o assigns to y with confidence >= 0.9995, made by zeroth-order
//      optimisation (ZOO, kernels/zoo.h) from clip(N(0, 1), 0, 1): each step moves S random pixels by ±h, reads the
//      2S query images' probabilities in one batched forward, and takes a coordinate-Adam step on -log p_y. All
//      classes' probes advance together, a probe stops once accepted, and a probe not accepted after `iterations`
//      steps starts again from a fresh draw (up to `tries` times);
//   2. decision: Δ_k = the mean over class k's probes of p_u(x)_k - p_o(x)_k. Unlearning class k's samples lowers
//      the model's confidence on images it was sure were k, so the unlearned class is argmin Δ (the m most negative
//      for m classes). Hu's Δ compares probabilities, which barely move on probes already near 1 (dp = p(1-p)·dz),
//      so a class the model separates easily hides behind a confusable one; the `log-odds` decision averages the
//      change of log(p / (1 - p)) instead, the same comparison on the logit scale.
// The attack reads only the two models' output probabilities on images it makes; it never reads the models'
// metadata (forget spec, unlearning record) or any dataset.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attacks/work_cache.h"
#include "engine/model.h"
#include "kernels/zoo.h"

namespace lethe::attacks {

struct ZooProbeConfig {
  int64_t probes_per_class = 10;
  int64_t iterations = 20;       // ZOO steps per try
  int64_t tries = 10;            // fresh starts for a probe not yet accepted
  int64_t coordinates = 1024;    // pixels per step (2 queries each); every pixel when the image has fewer
  kernels::ZooHyper zoo;         // h = 1e-4 and Adam's constants
  float lr = 0.1f;
  float lr_confident = 0.02f;    // the rate once a probe's confidence exceeds confident_at
  float confident_at = 0.9f;
  float accept = 0.9995f;        // a probe is kept once its confidence reaches this
  int64_t max_batch = 65536;     // query images per forward at most (whole probes; bounds memory)
  uint64_t seed = 0;
  nlohmann::json to_json() const;
};

// Probes for every class: images [K·P, C, H, W] on the CPU, probe m targeting class m / P.
struct Probes {
  Tensor images;
  std::vector<int64_t> labels;
  std::vector<double> confidence;  // θ_o's p_label on each final probe
  std::vector<int64_t> tries;      // starts each probe took
  std::vector<bool> accepted;
  int64_t queries = 0;             // images shown to θ_o while making them
  double seconds = 0;
  int64_t accepted_count() const;
  nlohmann::json to_json() const;  // round-trips through probes_from_json (the work-directory cache)
};
Probes probes_from_json(const nlohmann::json& j);

// Progress of probe making: ZOO steps done of at most `total`, probes accepted, queries so far.
using ZooProgressFn = std::function<void(int64_t step, int64_t total, int64_t accepted, int64_t queries)>;

// The pixels one ZOO step moves: S = count distinct pixels of D = pixels for one probe and step, by a partial
// Fisher-Yates shuffle on Philox draws (seed, step, probe); every pixel, in order, when S = D. Writes out[0..S).
void draw_coordinates(int64_t pixels, int64_t count, uint64_t seed, uint64_t step, int64_t probe, int64_t* out,
                      std::vector<int64_t>& scratch);

// Makes the probes against `original` (output probabilities only). Deterministic for a seed and backend.
Probes make_probes(Model& original, const ZooProbeConfig& cfg, const ZooProgressFn& progress = {});

const std::vector<std::string>& label_decisions();  // {"probability" (Hu's), "log-odds"}

struct LabelInferenceResult {
  std::vector<double> delta;            // Δ_k per class: mean change of p_k (Hu's)
  std::vector<double> delta_log_odds;   // mean change of log(p_k / (1 - p_k))
  std::vector<int64_t> predicted;       // the forget_count most negative of the decision's Δ, most negative first
  int64_t queries = 0;              // probe making (cached or not) plus the 2·K·P decision queries
  int64_t decision_queries = 0;
  nlohmann::json to_json() const;
};

// Δ from the probes' probabilities under both models, and the forget_count (>= 1, < K) most negative classes by
// `decision` ("probability" or "log-odds").
LabelInferenceResult infer_unlearned_labels(Model& original, Model& unlearned, const Probes& probes,
                                            int64_t forget_count, const std::string& decision = "probability");

// The probes for `original` from the work directory's cache, or made and stored (keyed by the model's state and the
// configuration, so a different model or setting never reuses them). Sets *cached to whether they were found.
Probes cached_probes(Model& original, const ZooProbeConfig& cfg, WorkCache& cache, bool* cached,
                     const ZooProgressFn& progress = {});

}  // namespace lethe::attacks
