#pragma once
// The unlearning methods that Zheng et al. and Hu et al. attack (../shared/research/attacks.md; defaults and their
// reasons in docs/unlearning.md). Every method is one of two loops over the shared training machinery of
// engine/trainer.h:
//   - descent (train()): retrain, finetune, randlabel, amnesiac, hu-exact. They differ only in the data (D_r, or
//     D_f relabelled plus D_r) and in the starting point, which the caller supplies: a fresh initialisation from the
//     original's seed (retrain), θ_o (finetune, randlabel, amnesiac) or θ_0 (hu-exact);
//   - ascent (ascend()): neggrad and hu-approx, gradient ascent on D_f through Backend::ascent_step (clipping and the
//     parameter-noise defence fused into the update), neggrad optionally interleaved with descent on D_r and
//     stopped by the forget accuracy.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"
#include "engine/model.h"
#include "engine/trainer.h"

namespace lethe::unlearn {

// "retrain", "finetune", "randlabel", "amnesiac", "neggrad", "hu-exact", "hu-approx"
const std::vector<std::string>& method_names();
bool is_ascent_method(const std::string& method);  // neggrad, hu-approx

struct AscentConfig {
  float lr = 0.002f;
  int64_t batch = 128;             // 0: all of D_f in one step (Hu's feature-recovery setting)
  int epochs = 0;                  // > 0: exactly this many passes over D_f (hu-approx); 0: until the stopping rule
  int64_t max_steps = 2000;        // ascent steps at most when epochs is 0
  double stop_forget_accuracy = 0.01;  // stop once accuracy on D_f is at or below this (checked every check_every
                                       // ascent steps, and before the first); < 0: no accuracy rule
  int64_t check_every = 1;
  int64_t check_samples = 2048;    // the rule measures a seeded sample of at most this many D_f images (0: all of
                                   // D_f), so checking every step stays cheap for whole classes
  bool interleave_retain = true;   // a descent step on a D_r batch after every ascent step
  float retain_lr = 0.05f;         // the rate of those descent steps
  float max_norm = 0;              // > 0: clip each step's gradient to this L2 norm (torch's clip_grad_norm_)
  float noise_std = 0;             // parameter-obfuscation defence: N(0, noise_std²) added to every ascent update
  bool freeze_bn = false;          // BatchNorm in eval mode during the steps (Hu et al. freeze it)
  nlohmann::json to_json() const;
};

struct UnlearnConfig {
  std::string method;
  TrainConfig train;    // the descent methods' recipe (epochs, batch, optimizer, schedule, shuffling seed)
  AscentConfig ascent;  // the ascent methods'
  uint64_t seed = 0;    // relabelling draws, ascent batch order, noise
  // amnesiac: the stored-update variant instead of relabelling. The update log written by `lethe train --log-updates`
  // (engine/unlearn/update_log.h): the logged updates of the batches that held D_f are subtracted, then the model
  // is repaired by `train` on D_r.
  std::string update_log;
  // {"method", "seed", and "train" or "ascent", whichever the method uses}
  nlohmann::json to_json() const;
};

// The method's defaults. retrain takes the original's recorded recipe (`original`) unchanged; the others' are in
// docs/unlearning.md with their reasons. Throws UsageError for an unknown method.
UnlearnConfig default_config(const std::string& method, const TrainConfig& original);

struct UnlearnResult {
  int64_t steps = 0;               // gradient steps (ascent and descent)
  int64_t ascent_steps = 0;
  double seconds = 0;
  std::vector<EpochReport> epochs; // descent methods
  double forget_accuracy = -1;     // neggrad: accuracy on D_f (its check sample) when it stopped; -1: not measured
  std::string stopped_by;          // "epochs", "forget accuracy" or "max steps"
  int64_t undone_updates = 0;      // amnesiac's stored-update variant: logged updates subtracted
  nlohmann::json to_json() const;
};

// How randlabel and Amnesiac relabel D_f, which sits in rows [0, n_forget) of the data they train on (rows past it
// keep their labels): randlabel draws uniformly over all k classes afresh every epoch; Amnesiac draws once per sample
// a class other than the sample's own and outside `forgotten_classes`. Draws come from Philox (seed, epoch, row).
// Empty for the other methods.
RelabelFn forget_relabelling(const std::string& method, int64_t n_forget, int64_t k,
                             const std::vector<int64_t>& forgotten_classes, uint64_t seed);

// Progress of the ascent loop: steps done of at most `total`, current accuracy on D_f (-1 before it is measured).
using AscentProgressFn = std::function<void(int64_t step, int64_t total, double forget_accuracy)>;

// The data of one unlearning run.
struct UnlearnSets {
  const Dataset& forget;                   // D_f
  const Dataset& retain;                   // D_r
  std::vector<int64_t> forgotten_classes;  // whole classes forgotten (Amnesiac relabels outside them); empty for samples
  std::vector<int64_t> forget_positions;   // D_f's positions in the training split (Amnesiac's stored updates)
};

struct UnlearnHooks {
  ProgressFn progress;        // training methods, within an epoch
  EpochFn on_epoch;           // training methods
  AscentProgressFn ascent;    // ascent methods
};

// Runs cfg.method on `model` in place. `model` must already hold the method's starting point (see above).
// Throws UsageError for an empty forget set, an empty retain set where the method trains on it, or every class
// forgotten.
UnlearnResult run_unlearning(Model& model, const UnlearnConfig& cfg, const UnlearnSets& sets,
                             const UnlearnHooks& hooks = {});

}  // namespace lethe::unlearn
