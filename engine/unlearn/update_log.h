#pragma once
// Amnesiac unlearning's stored-update variant (Graves et al., "Amnesiac Machine Learning", AAAI 2021). While the
// original model trains, the parameter update of every step whose batch held a *sensitive* sample is kept, together
// with the sensitive samples of that batch. Forgetting samples later subtracts the updates of every batch that held
// any of them: θ_u = θ_o − Σ Δθ_b. Only samples declared sensitive before training can be forgotten this way.
//
// The log holds one full parameter vector per logged step, in memory while training and in the file: a LeNet-5 step is
// 247 kB, so a sensitive set of a few hundred samples costs tens of MB, but a whole Fashion-MNIST class touches nearly
// every batch (2,345 steps in 5 epochs, 580 MB). It is meant for sample-level forgetting, as in the paper.
//
// File: safetensors with "updates" F32 [M, P] and __metadata__ "lethe_update_log" = {"arch", "parameters",
// "model_hash" (of the weights at the end of training, so a log is never applied to another model), "sensitive"
// (sorted positions in the training split), "steps": [{"epoch", "step", "samples": [positions]}, ...]}.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/trainer.h"

namespace lethe::unlearn {

// 16 hex digits over the model's parameters (host copy), so a log names the exact weights it belongs to.
std::string params_hash(const Model& model);

class UpdateRecorder {
 public:
  // `row_positions[r]`: the training-split position of row r of the data being trained on; `sensitive`: the
  // positions whose batches are logged. The model's current weights are the starting point of the first update.
  UpdateRecorder(const Model& model, std::vector<int64_t> row_positions, std::vector<int64_t> sensitive);
  // For TrainHooks::after_step.
  StepFn hook();
  int64_t logged_steps() const { return static_cast<int64_t>(steps_.size()); }
  // Writes the log atomically; the model must be the one trained (its final weights are hashed).
  void save(const std::string& path) const;

 private:
  struct Step {
    int epoch = 0;
    int64_t step = 0;
    std::vector<int64_t> samples;
  };
  void after_step(int epoch, int64_t step, const int64_t* rows, int64_t count);

  const Model& model_;
  std::vector<int64_t> row_positions_, sensitive_;
  std::vector<float> previous_;  // the weights before the current step
  std::vector<float> updates_;   // logged_steps() x P
  std::vector<Step> steps_;
};

struct UndoReport {
  int64_t undone_steps = 0;   // updates subtracted
  int64_t logged_steps = 0;   // in the log
};

// Subtracts from `model` the logged updates of every batch that held a sample of `forget` (training-split positions).
// Throws InputError if the file is not an update log of this model (arch, size, weights hash), and UsageError if some
// sample to forget was not declared sensitive when the model was trained.
UndoReport undo_logged_updates(Model& model, const std::string& log_path, const std::vector<int64_t>& forget);

}  // namespace lethe::unlearn
