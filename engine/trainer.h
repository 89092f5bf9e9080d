#pragma once
// The training loop and evaluation, shared by the CLI, the unlearning methods and the benchmarks.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/augment.h"
#include "engine/data.h"
#include "engine/loss.h"
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
  // The inverse of to_json, for re-running a recorded recipe (retraining). Missing keys keep their defaults;
  // ill-typed values are InputErrors naming `source`.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source);
};

// `lethe train`'s default recipe: SGD with momentum 0.9 at lr 0.05, batch 128, cosine-annealed over `epochs`,
// shuffled by `seed`, no augmentation. Models an attack or an audit trains for itself use it.
TrainConfig standard_recipe(int epochs, uint64_t seed);

struct EpochReport {
  int epoch = 0;               // 0-based
  double loss = 0;             // mean over the epoch
  double accuracy = 0;         // training accuracy over the epoch
  float lr = 0;
  double seconds = 0;
  int64_t samples = 0;
};

// The label row `row` of the training data is trained on in `epoch`, given its true `label` (random-label and
// Amnesiac unlearning relabel the forget set this way). Empty: the dataset's labels.
using RelabelFn = std::function<int64_t(int epoch, int64_t row, int64_t label)>;

// Mini-batches of a dataset on the model's device: rows gathered (and relabelled, and augmented) on the host, then
// copied. The tensors are reused from batch to batch.
class BatchLoader {
 public:
  BatchLoader(const Dataset& data, Backend& be) : data_(data), be_(be) {}
  // Rows rows[begin, end) of the dataset; augmentation and relabelling draw from (seed, epoch, row).
  void load(const std::vector<int64_t>& rows, int64_t begin, int64_t end, const AugmentConfig& augment,
            uint64_t seed, int epoch, const RelabelFn& relabel = {});
  const Tensor& images() const { return dev_x_; }
  const Tensor& labels() const { return dev_y_; }

 private:
  const Dataset& data_;
  Backend& be_;
  Tensor host_x_, host_y_, dev_x_, dev_y_, gathered_;
};

// Forward and backward of one batch's mean cross-entropy: the arena's gradients are zeroed, then hold dL/dθ.
// Every descent and ascent step of training and unlearning goes through here.
class BatchGradients {
 public:
  explicit BatchGradients(Model& model) : model_(model) {}
  // train_mode: BatchNorm uses (and updates) batch statistics. Returns the loss; throws Error if it is not finite,
  // naming `where` (e.g. "epoch 2, step 14") and the learning rate as the usual cause.
  double compute(const Tensor& images, const Tensor& labels, bool train_mode, const std::string& where);
  int64_t correct() const { return correct_; }  // of the last batch

 private:
  Model& model_;
  SoftmaxCrossEntropy loss_;
  Tensor pred_;
  int64_t correct_ = 0;
};

// Progress within an epoch: samples done of total, running mean loss.
using ProgressFn = std::function<void(int epoch, int64_t done, int64_t total, double loss)>;
using EpochFn = std::function<void(const EpochReport&)>;

// After each optimizer step: the epoch, the step within it and the dataset rows of its batch (Amnesiac's update log).
using StepFn = std::function<void(int epoch, int64_t step, const int64_t* rows, int64_t count)>;

// What a caller can observe or change in a training run; every member is optional.
struct TrainHooks {
  ProgressFn progress;
  EpochFn on_epoch;
  RelabelFn relabel;
  StepFn after_step;
};

// Trains in place. Throws InputError if the data's shape or labels do not fit the model.
std::vector<EpochReport> train(Model& model, const Dataset& data, const TrainConfig& cfg, const TrainHooks& hooks = {});

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
