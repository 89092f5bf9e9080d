#pragma once
// The bookkeeping of `lethe audit` and `lethe report`: the plan of trials, the resumable results log, and the summary
// tables over it. The audit itself (training, unlearning, attacking) is driven by tools/cmd_audit.cpp.
//
// A trial is one attack on one unlearned model: (seed, scenario, forgotten classes, unlearning method, attack). Its key
// names it, so a rerun skips every trial results.jsonl already holds. Attacks record only what they predicted; the
// summary is the one place that compares a prediction with the classes that were forgotten.
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::attacks::audit {

// The classes forgotten by one unlearning run of one seed's original model.
struct ForgetCase {
  uint64_t seed = 0;
  std::string scenario;          // "single" | "multi"
  std::vector<int64_t> classes;  // sorted
  std::string key() const;       // "seed=0/single/forget=3"
};

// One unlearned model: a forget case and the method that forgot it. The unit shards are made of, so every attack on
// a model runs in the shard that built it.
struct UnlearningRun {
  ForgetCase forget;
  std::string method;
  std::string key() const;  // "seed=0/single/forget=3/neggrad"
};

// An attack on an unlearned model, or on that model after a defense (a DefenseSpec name, engine/defenses.h).
struct Trial {
  UnlearningRun run;
  std::string attack;
  std::string defense = "none";
  std::string key() const;  // "seed=0/single/forget=3/neggrad/param-dot", ".../neggrad/prune:0.5/param-dot"
};

struct PlanConfig {
  std::vector<uint64_t> seeds = {0};
  std::vector<std::string> scenarios = {"single"};
  // single: each class forgotten on its own; multi: each class with the multi_size - 1 classes after it in this list
  // (cyclically): as many sets as classes (fewer where sets repeat), every class in multi_size of them.
  std::vector<int64_t> classes;
  int64_t multi_size = 2;
  std::vector<std::string> methods, attacks;
  std::vector<std::string> defenses = {"none"};  // every attack runs on the model after each of these
};
const std::vector<std::string>& scenario_names();  // {"single", "multi"}

std::vector<ForgetCase> forget_cases(const PlanConfig& plan);
// Every unlearning run in plan order: seeds, then scenarios, then forget sets, then methods.
std::vector<UnlearningRun> unlearning_runs(const PlanConfig& plan);

// `--shard i/N`: the unlearning runs whose position in plan order is i modulo N. Shard i writes results.i-of-N.jsonl.
struct Shard {
  int64_t index = 0, count = 1;
  static Shard parse(const std::string& text);  // "1/4"; UsageError otherwise
  bool owns(int64_t run_position) const { return run_position % count == index; }
  std::string results_file() const;  // "results.jsonl", or "results.1-of-4.jsonl"
};

// results.jsonl: one JSON object per line, each with a "key", appended and flushed to the disk before append()
// returns. Opening it drops a final line an interrupted write left incomplete (the trial is then redone); any other
// line that is not a JSON object with a key is an InputError naming the file and line.
class ResultsLog {
 public:
  explicit ResultsLog(std::string path);
  bool has(const std::string& key) const;
  void append(const nlohmann::json& row);
  const std::vector<nlohmann::json>& rows() const { return rows_; }
  int64_t dropped_lines() const { return dropped_; }

 private:
  std::string path_;
  std::vector<nlohmann::json> rows_;
  std::unordered_set<std::string> keys_;  // of rows_
  int64_t dropped_ = 0;
};

// Every results*.jsonl in `dir` (the unsharded log and any shards), read as ResultsLog reads them but without
// modifying the files. A key found twice (a shard rerun unsharded) counts once. InputError if there is none.
std::vector<nlohmann::json> read_results_dir(const std::string& dir);

// The number of m-class sets of K classes, 1 / that being the chance of naming a set exactly.
double chance_of_exact_set(int64_t num_classes, int64_t m);

// A file name from a key or title: letters, digits and - . = , kept, anything else '_' ("seed=0_single_forget=3_...").
std::string file_stem(const std::string& text);

// A table of the report, rendered to markdown and HTML alike.
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // an empty string is an empty cell
};

// The report over result rows: ASR per scenario x defense x method x attack x variant (mean and sample std over
// seeds, beside the chance baseline), and the unlearning metrics per scenario x defense x method (rows of type
// "unlearning", and "defense" for the metrics after a defense). attacks/audit_report.cpp.
struct Summary {
  nlohmann::json json;
  std::vector<Table> tables;
  std::string markdown, csv;
};
Summary summarise(const std::vector<nlohmann::json>& rows);
// summary.md, summary.csv and summary.json in `dir`, each written atomically.
void write_summary(const std::string& dir, const Summary& summary);

// A PNG figure of the report.
struct Figure {
  std::string file, caption, png;
};
// From the single-class attack rows without a defense: per attack variant, a strip plot of the per-class scores,
// the forgotten class against the kept ones, per method (the picture that shows the leak); per hu-label trial of the
// first seed, Hu's confidence drop per class as bars, the forgotten class highlighted.
std::vector<Figure> figures_of(const std::vector<nlohmann::json>& rows);
// One self-contained page: the tables, then every figure and prototype grid inline (data: URIs, no external file).
std::string html_report(const Summary& summary, const std::vector<Figure>& figures,
                        const std::vector<Figure>& prototypes);
// The whole report in `dir`: summary.md/.csv/.json, figures/*.png, and index.html with the figures and the prototype
// grids the audit left in dir/prototypes. Every file is written atomically.
void write_report(const std::string& dir, const std::vector<nlohmann::json>& rows);

}  // namespace lethe::attacks::audit
