#pragma once
// Shared pieces of the `lethe` subcommands: the global options, the backend, logging to stderr, evaluation with
// progress, and the checks that a dataset fits a model.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "datasets/registry.h"
#include "datasets/splits.h"
#include "engine/backend.h"
#include "engine/data.h"
#include "engine/model.h"
#include "engine/trainer.h"

namespace CLI {
class App;
}

namespace lethe::cli {

// Options every subcommand accepts (also before the subcommand name).
struct GlobalOptions {
  std::string device = "auto";
  int threads = 0;  // 0: every core
  uint64_t seed = 0;
  bool seed_given = false;  // --seed was on the command line (unlearn keeps the original's seed otherwise)
  bool json = false;
  bool quiet = false;
  std::string command_line;  // the invocation, recorded as provenance
};

// A subcommand: its CLI11 node and what runs when it was selected. run() returns the exit code.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

void add_global_options(CLI::App& app, GlobalOptions& g);

// --data, --label, --resize, --with-extra: which dataset, and how to read it.
struct DataOptions {
  std::string data = "fashion-mnist";
  std::string label = "fine";
  std::string resize;
  bool with_extra = false;
  LoadOptions load_options() const;
  // {"name", "source", "load"} for metadata and results.
  nlohmann::json describe(const Dataset& d) const;
};
void add_data_options(CLI::App& app, DataOptions& d);

// --split FILE and --part NAME: the experiment split and which part of it a command works on.
struct PartOptions {
  std::string split_file;
  std::string part;
};
void add_part_options(CLI::App& app, PartOptions& p, const std::string& default_part, const std::string& what);

// The split a command works with: from --split FILE, else `fallback` (checked against the data either way).
struct ResolvedSplit {
  SplitSpec spec;
  SplitParts parts;
  std::string source;  // the file, or where the fallback came from
};
ResolvedSplit resolve_split(const PartOptions& p, const SplitSpec& fallback, const std::string& fallback_source,
                            const Dataset& train, const Dataset& test);
// Without --split, the split the model was trained with (recorded in its metadata), so `--part forget` or
// `--part aux` mean what they meant at training time; on other data, or for a model without one, the whole dataset.
SplitSpec model_split_spec(const Model& model, const std::string& dataset, const std::string& model_path);
// Rows of the part: from `test` for "test", else from `train`.
Dataset select_part(const ResolvedSplit& split, const std::string& part, const Dataset& train, const Dataset& test);

Command add_train_command(CLI::App& parent, GlobalOptions& g);
Command add_data_command(CLI::App& parent, GlobalOptions& g);
Command add_eval_command(CLI::App& parent, GlobalOptions& g);
Command add_info_command(CLI::App& parent, GlobalOptions& g);
Command add_predict_command(CLI::App& parent, GlobalOptions& g);
Command add_unlearn_command(CLI::App& parent, GlobalOptions& g);
Command add_attack_command(CLI::App& parent, GlobalOptions& g);
// `lethe attack hu-recover` (tools/cmd_attack_hu_recover.cpp), a subcommand of `attack`.
Command add_hu_recover_attack(CLI::App& attack, GlobalOptions& g);
// `lethe attack hu-label` (tools/cmd_attack_hu_label.cpp), a subcommand of `attack`.
Command add_hu_label_attack(CLI::App& attack, GlobalOptions& g);
Command add_defend_command(CLI::App& parent, GlobalOptions& g);
// `lethe audit` and `lethe report` (tools/cmd_audit.cpp).
Command add_audit_command(CLI::App& parent, GlobalOptions& g);
Command add_report_command(CLI::App& parent, GlobalOptions& g);

// The backend for --device/--threads, announced on stderr unless --quiet.
std::unique_ptr<Backend> open_backend(const GlobalOptions& g);

// A progress/status line on stderr, silenced by --quiet. Results go to stdout instead.
void note(const GlobalOptions& g, const std::string& message);

// Throws InputError (naming both) if the dataset's image shape or class count differs from the model's.
void check_data_fits_model(const Dataset& data, const ModelSpec& spec, const std::string& model_path);

// Progress bars within epochs and one result line per epoch, for the commands that train (train, unlearn). The
// lines go to stdout, or to stderr with --json (stdout then holds only the final object); --json --quiet drops them.
class EpochLog {
 public:
  EpochLog(const GlobalOptions& g, int total_epochs);
  ~EpochLog();
  ProgressFn progress();
  EpochFn on_epoch();
  const nlohmann::json& epochs() const { return epochs_; }  // one object per finished epoch

 private:
  struct State;
  std::shared_ptr<State> state_;
  nlohmann::json epochs_ = nlohmann::json::array();
};

// evaluate() with a progress bar on stderr (silenced by --quiet).
EvalReport evaluate_with_progress(Model& model, const Dataset& data, const std::string& label,
                                  const GlobalOptions& g);
nlohmann::json eval_report_json(const EvalReport& r);

// "1,234,567"
std::string group_digits(int64_t n);
std::string percent(double fraction);  // "87.31%"

}  // namespace lethe::cli
