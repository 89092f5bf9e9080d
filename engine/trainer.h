#pragma once
// The training loop and evaluation, shared by the CLI, the unlearning methods and the benchmarks.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/augment.h"
#include "engine/data.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/schedule.h"

namespace lethe {

struct TrainConfig {
  int epochs = 1;
  int64_t batch = 128;
  OptimConfig optim;
  ScheduleConfig schedule;
  uint64_t seed = 0;           // shuffling
  bool shuffle = true;
  bool drop_last = false;
  bool freeze_bn = false;      // BatchNorm in eval mode while training (Hu et al.'s fine-tuning)
  AugmentConfig augment;       // random crop/flip of training batches, drawn from (seed, epoch, sample index)
  nlohmann::json to_json() const;
};

struct EpochReport {
  int epoch = 0;               // 0-based
  double loss = 0;             // mean over the epoch
  double accuracy = 0;         // training accuracy over the epoch
  float lr = 0;
  double seconds = 0;
  int64_t samples = 0;
};

// Progress within an epoch: samples done of total, running mean loss.
using ProgressFn = std::function<void(int epoch, int64_t done, int64_t total, double loss)>;
using EpochFn = std::function<void(const EpochReport&)>;

// Trains in place. Throws InputError if the data's shape or labels do not fit the model.
std::vector<EpochReport> train(Model& model, const Dataset& data, const TrainConfig& cfg,
                               const ProgressFn& progress = {}, const EpochFn& on_epoch = {});

// Throws InputError naming `role` and the dataset when its images or labels do not fit the model.
void check_fits(const Model& model, const Dataset& data, const std::string& role = "dataset");

// Eval-mode logits of every image of `data`, `chunk` at a time on the model's backend (the images are copied to
// its device first): visit(start, count, logits [count, K] on that device) for each chunk, in order.
using LogitsFn = std::function<void(int64_t start, int64_t count, const Tensor& logits)>;
void infer_in_chunks(Model& model, const Dataset& data, int64_t chunk, const LogitsFn& visit);

struct EvalReport {
  int64_t n = 0;
  double accuracy = 0;
  double loss = 0;                          // mean cross-entropy
  std::vector<double> per_class_accuracy;   // NaN-free: classes with no samples report 0 and count 0
  std::vector<int64_t> per_class_count;
};
// Progress of an evaluation: samples done of total, running accuracy.
using EvalProgressFn = std::function<void(int64_t done, int64_t total, double accuracy)>;
// Inference in chunks of `chunk` images; `progress` (optional) is called after each chunk.
EvalReport evaluate(Model& model, const Dataset& data, int64_t chunk = 1024, const EvalProgressFn& progress = {});

}  // namespace lethe
