// `lethe train`: builds a model for a dataset, trains it, reports test accuracy and saves it with its provenance.
#include <cstdio>
#include <filesystem>
#include <optional>

#include <CLI/CLI.hpp>

#include "datasets/registry.h"
#include "engine/unlearn/update_log.h"
#include "nets/model_io.h"
#include "nets/nets.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

struct TrainOptions {
  DataOptions data;
  PartOptions part;
  std::string augment = "auto";
  int32_t pad = -1;  // -1: the dataset's default padding (4 if it has none)
  std::string net = "lenet5";
  std::string out;
  int epochs = 5;
  int64_t batch = 128;
  std::string optim = "sgd";
  float lr = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool nesterov = false;
  std::string schedule = "cosine";  // annealed to 0 over --epochs: the best default for short runs
  std::vector<int> milestones;
  float gamma = 0.1f;
  std::vector<int64_t> classes, exclude_classes;
  int64_t limit = 0;
  std::vector<int64_t> hidden;
  int64_t width = 0;  // convnet and resnet18: channels of the first stage (0: the arch's 64)
  std::string init;  // start from this model's weights instead of a fresh initialisation
  std::string log_updates;  // Amnesiac's update log of the batches that hold the split's forget part
  bool freeze_bn = false;
  // Set when given explicitly: SGD-only settings are refused for Adam, and Adam gets its own default rate.
  CLI::Option* lr_option = nullptr;
  CLI::Option* momentum_option = nullptr;
  CLI::Option* net_option = nullptr;
};

constexpr float kAdamDefaultLr = 1e-3f;

// Fails before any data is read or epoch is spent if the model could not be written at the end.
void check_output_path(const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(out).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw UsageError("--out " + out + ": directory " + parent.string() + " does not exist");
  if (fs::is_directory(out, ec)) throw UsageError("--out " + out + ": is a directory, expected a file name");
}

// --augment auto takes the dataset's default; the others name the transforms, cropping with --pad.
AugmentConfig augment_config(const TrainOptions& o, const std::string& dataset) {
  const AugmentConfig preset = default_augment(dataset);
  if (o.augment == "auto") {
    if (o.pad >= 0 && preset.pad == 0)
      throw UsageError("--pad: " + dataset + " is not cropped by default; say --augment crop or crop+flip");
    AugmentConfig cfg = preset;
    if (o.pad >= 0) cfg.pad = o.pad;
    return cfg;
  }
  return AugmentConfig::parse(o.augment, o.pad >= 0 ? o.pad : (preset.pad > 0 ? preset.pad : 4));
}

TrainConfig make_train_config(const TrainOptions& o, const GlobalOptions& g) {
  TrainConfig cfg;
  cfg.epochs = o.epochs;
  cfg.batch = o.batch;
  cfg.seed = g.seed;
  cfg.optim.kind = o.optim;
  const bool sgd = o.optim == "sgd";
  cfg.optim.lr = (!sgd && o.lr_option->count() == 0) ? kAdamDefaultLr : o.lr;
  if (!sgd && (o.momentum_option->count() > 0 || o.nesterov))
    throw UsageError("--momentum and --nesterov apply to --optim sgd only (adam/adamw use beta1 = 0.9, beta2 = 0.999)");
  cfg.optim.momentum = sgd ? o.momentum : 0.0f;
  cfg.optim.nesterov = o.nesterov;
  cfg.optim.weight_decay = o.weight_decay;
  cfg.schedule.kind = o.schedule;
  cfg.schedule.milestones = o.milestones;
  cfg.schedule.gamma = o.gamma;
  cfg.schedule.total_epochs = o.epochs;
  cfg.freeze_bn = o.freeze_bn;
  if (!o.milestones.empty() && o.schedule != "multistep")
    throw UsageError("--milestones applies to --schedule multistep only");
  lr_at(cfg.schedule, cfg.optim.lr, 0);  // throws UsageError for bad schedule parameters, before any work
  return cfg;
}

int run_train(const TrainOptions& o, const GlobalOptions& g) {
  // Everything decidable from the options alone is checked before any data is read.
  check_output_path(o.out);
  if (!o.hidden.empty() && o.net != "mlp") throw UsageError("--hidden applies to --net mlp only");
  if (!o.init.empty() && (o.net_option->count() > 0 || !o.hidden.empty() || o.width > 0))
    throw UsageError("--init takes the architecture of the model it names; drop --net/--hidden/--width");

  if (!o.part.split_file.empty() && (!o.classes.empty() || !o.exclude_classes.empty()))
    throw UsageError("--classes/--exclude-classes describe a split; with --split FILE put them in the split file");
  if (o.part.part == "test") throw UsageError("--part test: training on the test split defeats its purpose");
  TrainConfig cfg = make_train_config(o, g);
  const DataRef ref = parse_data_ref(o.data.data);
  cfg.augment = augment_config(o, ref.name);
  const LoadOptions load = o.data.load_options();
  auto be = open_backend(g);

  const Dataset full_train = load_dataset(ref, Split::Train, load);
  note(g, "data: " + full_train.name + " train split, " + group_digits(full_train.size()) + " images " +
              shape_str({full_train.channels(), full_train.height(), full_train.width()}) + " from " +
              full_train.source);
  // Read now so a missing test file fails before training, not after it. A plain image folder has no test split.
  const bool has_test = split_available(ref, Split::Test);
  const Dataset full_test = has_test ? load_dataset(ref, Split::Test, load) : Dataset{};
  if (!has_test) note(g, "data: no test split; the model is not evaluated after training");

  SplitSpec inline_spec;
  inline_spec.dataset = full_train.name;
  inline_spec.seed = g.seed;
  inline_spec.classes = o.classes;
  inline_spec.exclude_classes = o.exclude_classes;
  const ResolvedSplit split = resolve_split(o.part, inline_spec, "--classes/--exclude-classes", full_train, full_test);
  Dataset train_set = select_part(split, o.part.part, full_train, full_test);
  if (train_set.size() != full_train.size())
    note(g, "split " + split.spec.hash() + ": part '" + o.part.part + "' holds " + group_digits(train_set.size()) +
                " images");
  if (o.limit > 0) {
    train_set = take_shuffled(train_set, o.limit, g.seed);
    note(g, "--limit keeps " + group_digits(train_set.size()) + " images");
  }
  const Dataset test_set = has_test ? subset(full_test, split.parts.test) : Dataset{};
  note(g, "augmentation: " + cfg.augment.name() + (cfg.augment.pad > 0 ? " (pad " + std::to_string(cfg.augment.pad) + ")" : ""));

  std::unique_ptr<Model> model;
  if (o.init.empty()) {
    ModelSpec spec = spec_for_data(o.net, train_set, o.hidden);
    spec.base_channels = o.width;  // make_model refuses it for the archs without a width
    model = make_model(spec, *be, g.seed);
  } else {
    model = load_model(o.init, *be);  // its arch, whatever --net says
    check_data_fits_model(train_set, model->spec(), o.init);
    note(g, "starting from the weights of " + o.init);
  }
  const ModelSpec spec = model->spec();
  if (has_test) check_data_fits_model(test_set, spec, "--net " + o.net);
  note(g, "model: " + spec.arch + ", " + group_digits(model->arena().size()) + " parameters");

  nlohmann::json split_json = split_record(split.spec, split.parts, o.part.part);
  split_json["file"] = o.part.split_file;
  model->metadata() = {{"dataset", train_set.name},
                       {"source", train_set.source},
                       {"data", o.data.describe(full_train)},
                       {"split", split_json},
                       {"seed", g.seed},
                       {"init", o.init.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.init)},
                       {"limit", o.limit},
                       {"train_samples", train_set.size()},
                       {"device", be->name()},
                       {"command", g.command_line},
                       {"train", cfg.to_json()}};

  std::optional<unlearn::UpdateRecorder> recorder;
  if (!o.log_updates.empty()) {
    if (o.limit > 0) throw UsageError("--log-updates needs the split's exact rows; drop --limit");
    if (split.parts.forget.empty())
      throw UsageError("--log-updates logs the batches that hold the split's forget part (the sensitive samples), "
                       "and this split forgets nothing: make one with lethe data split --forget-fraction/--forget-indices");
    recorder.emplace(*model, split.parts.part(o.part.part), split.parts.forget);
  }
  EpochLog log(g, o.epochs);
  train(*model, train_set, cfg, {log.progress(), log.on_epoch(), {}, recorder ? recorder->hook() : StepFn{}});
  if (recorder) {
    recorder->save(o.log_updates);
    model->metadata()["update_log"] = {{"file", o.log_updates}, {"steps", recorder->logged_steps()}};
    note(g, "update log: " + std::to_string(recorder->logged_steps()) + " steps that held sensitive samples, in " +
                o.log_updates);
  }

  std::optional<EvalReport> test;
  if (has_test) {
    test = evaluate_with_progress(*model, test_set, "test", g);
    model->metadata()["test"] = {{"accuracy", test->accuracy}, {"loss", test->loss}, {"n", test->n}};
  }
  save_model(*model, o.out);

  if (g.json) {
    const nlohmann::json result = {{"model", o.out},
                                   {"arch", spec.arch},
                                   {"train_samples", train_set.size()},
                                   {"split", split_json},
                                   {"epochs", log.epochs()},
                                   {"test", test ? eval_report_json(*test) : nlohmann::json(nullptr)}};
    std::printf("%s\n", result.dump().c_str());
  } else {
    if (test)
      std::printf("test accuracy %s  loss %.4f  (%s images)\n", percent(test->accuracy).c_str(), test->loss,
                  group_digits(test->n).c_str());
    std::printf("saved %s\n", o.out.c_str());
  }
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* app = parent.add_subcommand("train", "Train a model on a dataset and save it");
  add_data_options(*app, o->data);
  add_part_options(*app, o->part, "train", "Part of the split to train on");
  app->add_option("--augment", o->augment, "Training augmentation: auto (the dataset's default), none, crop, flip, "
                                           "crop+flip")
      ->check(CLI::IsMember({"auto", "none", "crop", "flip", "crop+flip"}))
      ->capture_default_str();
  app->add_option("--pad", o->pad, "Zero padding of the random crop (default: the dataset's, else 4)")
      ->check(CLI::Range(0, 1024));
  o->net_option =
      app->add_option("--net", o->net, "Architecture")->check(CLI::IsMember(known_archs()))->capture_default_str();
  app->add_option("--init", o->init, "Start from this model's weights (and arch) instead of a fresh initialisation "
                                     "(e.g. Hu et al.'s θ_o: θ_0 fine-tuned on --part user)");
  app->add_flag("--freeze-bn", o->freeze_bn, "Keep BatchNorm in eval mode while training (frozen statistics)");
  app->add_option("--log-updates", o->log_updates,
                  "Write the parameter update of every batch holding a sample of the split's forget part to this file "
                  "(for unlearn --method amnesiac --updates FILE)");
  app->add_option("--out", o->out, "Where to save the model (.safetensors)")->required();
  app->add_option("--epochs", o->epochs, "Epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  app->add_option("--batch", o->batch, "Mini-batch size")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app->add_option("--optim", o->optim, "Optimizer: sgd, adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  o->lr_option = app->add_option("--lr", o->lr, "Learning rate (default 0.05 for sgd, 0.001 for adam/adamw)")
                     ->check(CLI::PositiveNumber);
  o->momentum_option =
      app->add_option("--momentum", o->momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app->add_option("--weight-decay", o->weight_decay, "Weight decay (decoupled for adamw)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_flag("--nesterov", o->nesterov, "Nesterov momentum (sgd)");
  app->add_option("--schedule", o->schedule, "Learning-rate schedule, stepped per epoch (cosine: annealed over --epochs)")
      ->check(CLI::IsMember({"constant", "multistep", "cosine", "linear"}))
      ->capture_default_str();
  app->add_option("--milestones", o->milestones, "Epochs at which multistep multiplies the rate by --gamma (e.g. 3,4)")
      ->delimiter(',');
  app->add_option("--gamma", o->gamma, "Multistep factor")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--classes", o->classes,
                  "Only these classes, in training and test (e.g. 0,1,2); the model keeps all outputs")
      ->delimiter(',');
  app->add_option("--exclude-classes", o->exclude_classes, "Train without these classes (e.g. 3,7)")->delimiter(',');
  app->add_option("--limit", o->limit, "Train on the first N images after a seeded shuffle (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--hidden", o->hidden, "Hidden widths of the mlp arch (e.g. 256,128)")->delimiter(',');
  app->add_option("--width", o->width, "convnet and resnet18: channels of the first stage (default 64; e.g. 16)")
      ->check(CLI::NonNegativeNumber);
  add_global_options(*app, g);
  return {app, [o, &g] { return run_train(*o, g); }};
}

}  // namespace lethe::cli
