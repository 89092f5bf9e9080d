#pragma once
// Inversion-based label leakage (Zheng et al.; ../shared/research/attacks.md §A): synthesise one prototype image per
// class, show each to the unlearned target, and name the class whose prototype the target does not recognise.
//
//   1. prototypes, from the target itself or from the attacker's reference model (trained on D_aux):
//      - white-box: gradient ascent on log p_k(x) in pixel space with Adam, a TV + L2 prior and the [0, 1] box, all
//        K·R candidates (K classes × R restarts) as one batch per step; each class keeps its most confident restart;
//      - black-box: a genetic algorithm that reads only output probabilities, the K populations of P images evolving
//        together (one batched query of K·P images per generation; kernels/ga.h);
//   2. the target's prediction on each class's prototype: its confidence p_k, log-odds and the entropy of the whole
//      profile; calibrated (the default), each relative to the same search on the reference model, which cancels
//      every class's natural difficulty;
//   3. the criterion: `threshold`, the classes whose confidence stays below τ (else the largest log-odds deficit),
//      or `entropy`, the classes with the largest (excess) entropy (top m).
//
// The attack reads the target's weights (white-box from the target) or only its probabilities (black-box, or any
// reference-sourced run), never its metadata's forget spec or unlearning record.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attacks/work_cache.h"
#include "engine/data.h"
#include "engine/model.h"
#include "kernels/ga.h"

namespace lethe::attacks {

struct InversionConfig {
  std::string mode = "white";          // "white" | "black"
  std::string criterion = "entropy";    // "threshold" | "entropy" (the default by measured ASR)
  std::string source = "target";       // "target" | "reference" (trained on D_aux, then its prototypes shown to
                                       // the target)
  int64_t forget_count = 1;            // m; 0: unknown (threshold: the classes below tau; entropy: the top one)
  float tau = 0.5f;                    // threshold criterion: forgotten iff confidence < tau
  // "reference": rank classes by the target's view relative to the reference model's view of its own prototypes
  // (each class's natural difficulty cancels); "none": by the target's view alone.
  std::string calibrate = "reference";

  // White-box: Adam on the input.
  int64_t restarts = 8;
  int64_t steps = 200;
  float lr = 0.05f;
  float tv = 0.005f;   // weight of the squared total variation
  float l2 = 0.0005f;  // weight of ‖x‖²

  // Black-box: the genetic algorithm (sigma decays by sigma_decay per generation).
  int64_t population = 256;
  int64_t generations = 100;
  int64_t elites = 4;
  int64_t tournament = 3;
  kernels::Crossover crossover = kernels::Crossover::Blend;
  float blend_alpha = 0.3f;
  float mutation_rate = 0.05f;
  float sigma = 0.2f;
  float sigma_decay = 0.98f;

  // The reference model (source = reference, or calibrate = reference): lethe train's recipe on D_aux.
  int reference_epochs = 20;

  uint64_t seed = 0;
  nlohmann::json to_json() const;
};

const std::vector<std::string>& inversion_modes();       // {"white", "black"}
const std::vector<std::string>& inversion_criteria();    // {"threshold", "entropy"}
const std::vector<std::string>& inversion_sources();     // {"target", "reference"}
const std::vector<std::string>& inversion_calibrations();  // {"reference", "none"}
// Whether the attack needs the attacker's reference model (and so D_aux): as the source, or for the calibration.
bool needs_reference(const InversionConfig& cfg);

// A model's view of one prototype per class: p_k on class k's prototype, its log-odds log p_k - log(1 - p_k) (no
// saturation near 1) and the entropy (nats) of the whole prediction.
struct PrototypeView {
  std::vector<double> confidence, log_odds, entropy;
};

struct InversionResult : CacheCounts {
  std::vector<int64_t> predicted;   // sorted class ids
  // Per class, higher: more likely forgotten. Threshold: the log-odds deficit (baseline - target; uncalibrated:
  // -log-odds); entropy: the entropy (calibrated: minus the baseline's).
  std::vector<double> scores;
  PrototypeView target;             // the target's view of the prototypes
  PrototypeView baseline;           // calibrate = reference: the reference's view of its own prototypes (else empty)
  std::vector<double> source_confidence;  // p_k on the model the prototypes were optimised on
  Tensor prototypes;                // CPU [K, C, H, W] in [0, 1], class k's prototype in row k
  int64_t queries = 0;              // images the target was shown (black-box and reference runs)
  double seconds = 0;
};

// Applies cfg's criterion (criterion, tau, forget_count) to the target's view of the prototypes (confidence,
// entropy), filling scores and predicted. Criteria are cheap: one synthesis can be judged by each in turn.
void judge(InversionResult& result, const InversionConfig& cfg);

// The white-box search, one step at a time (run_inversion drives it; the bench times step()): K·R candidates from
// uniform noise, each step one batched forward and backward through `source` (-∇ log p_k of each candidate), the
// TV + L2 prior, Adam on the pixels, then the [0, 1] box.
class WhiteBoxSearch {
 public:
  WhiteBoxSearch(Model& source, const InversionConfig& cfg);
  void step();
  // Each class's most confident restart, [K, C, H, W] on the source's device; `confidence`: its p_k on the source.
  Tensor prototypes(std::vector<double>& confidence);
  int64_t queries() const;  // images the source processed

 private:
  Model& source_;
  InversionConfig cfg_;
  Tensor x_, labels_, dx_, m_, v_;
  int64_t steps_ = 0, evaluations_ = 0;
};

// The genetic algorithm, one generation at a time: K populations of P images evolve together, one batched query of
// K·P images per generation; each class keeps the fittest image it has ever seen.
class GeneticSearch {
 public:
  GeneticSearch(Model& source, const InversionConfig& cfg);
  // Queries the current generation, updates each class's best, then (if `breed`) breeds the next generation.
  void generation(bool breed = true);
  // Each class's fittest image so far, [K, C, H, W] on the source's device; `confidence`: its p_k on the source.
  Tensor prototypes(std::vector<double>& confidence) const;
  int64_t queries() const { return queries_; }

 private:
  Model& source_;
  InversionConfig cfg_;
  kernels::GaHyper hyper_;
  Tensor genomes_, next_, fitness_, parents_, logits_, best_images_;
  std::vector<double> best_fitness_;
  int64_t queries_ = 0;
};

// Per-step progress: done out of total steps (white) or generations (black).
using InversionProgressFn = std::function<void(int64_t done, int64_t total)>;

// The attack on `target`. `aux` (D_aux) is needed only for source = reference; `work_dir` caches the reference model
// (empty: nothing is cached).
InversionResult run_inversion(Model& target, const Dataset* aux, const InversionConfig& cfg,
                              const std::string& work_dir, const AttackLogFn& log = {},
                              const InversionProgressFn& progress = {});

}  // namespace lethe::attacks
