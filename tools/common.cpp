#include "tools/common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "engine/error.h"
#include "tools/progress.h"

namespace lethe::cli {

void add_global_options(CLI::App& app, GlobalOptions& g) {
  const std::string group = "Global options";
  app.add_option("--device", g.device, "Compute device: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->default_str("auto")
      ->group(group);
  app.add_option("--threads", g.threads, "CPU threads (0: every core)")
      ->check(CLI::NonNegativeNumber)
      ->default_str("0")
      ->group(group);
  app.add_option("--seed", g.seed, "Random seed (initialisation, shuffling, subsets)")->default_str("0")->group(group);
  app.add_flag("--json", g.json, "Print one JSON object on stdout instead of text")->group(group);
  app.add_flag("-q,--quiet", g.quiet, "No progress or status lines on stderr")->group(group);
}

std::unique_ptr<Backend> open_backend(const GlobalOptions& g) {
  auto be = make_backend(g.device, g.threads);
  note(g, "backend: " + be->name() + ", " + std::to_string(be->threads()) + " thread(s)");
  return be;
}

void note(const GlobalOptions& g, const std::string& message) {
  if (g.quiet) return;
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
}

void check_data_fits_model(const Dataset& data, const ModelSpec& spec, const std::string& model_path) {
  const Shape want{spec.channels, spec.height, spec.width};
  const Shape have{data.channels(), data.height(), data.width()};
  if (want != have || data.num_classes != spec.num_classes)
    throw InputError(model_path + ": the model takes " + shape_str(want) + " images in " +
                     std::to_string(spec.num_classes) + " classes, but dataset " + data.name + " (" + data.source +
                     ") has " + shape_str(have) + " images in " + std::to_string(data.num_classes) + " classes");
}

namespace {

// Adds one slice's report into a running total. Correct counts are recovered exactly from accuracy × count.
struct EvalTotals {
  int64_t n = 0, correct = 0;
  double loss_sum = 0;
  std::vector<int64_t> class_correct, class_count;

  void add(const EvalReport& r) {
    n += r.n;
    correct += std::llround(r.accuracy * static_cast<double>(r.n));
    loss_sum += r.loss * static_cast<double>(r.n);
    const size_t k = std::max(r.per_class_accuracy.size(), r.per_class_count.size());
    if (class_count.size() < k) {
      class_count.resize(k, 0);
      class_correct.resize(k, 0);
    }
    for (size_t c = 0; c < r.per_class_count.size() && c < r.per_class_accuracy.size(); ++c) {
      class_count[c] += r.per_class_count[c];
      class_correct[c] += std::llround(r.per_class_accuracy[c] * static_cast<double>(r.per_class_count[c]));
    }
  }

  EvalReport report() const {
    EvalReport r;
    r.n = n;
    r.accuracy = n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
    r.loss = n > 0 ? loss_sum / static_cast<double>(n) : 0.0;
    r.per_class_count = class_count;
    r.per_class_accuracy.resize(class_count.size(), 0.0);
    for (size_t c = 0; c < class_count.size(); ++c)
      if (class_count[c] > 0)
        r.per_class_accuracy[c] = static_cast<double>(class_correct[c]) / static_cast<double>(class_count[c]);
    return r;
  }
};

}  // namespace

EvalReport evaluate_with_progress(Model& model, const Dataset& data, const std::string& label,
                                  const GlobalOptions& g) {
  constexpr int64_t kChunk = 1024;  // evaluate()'s inference chunk
  constexpr int64_t kSlices = 20;   // progress updates per evaluation
  const int64_t n = data.size();
  if (n <= kChunk) return evaluate(model, data, kChunk);

  // Whole chunks per slice, so slicing does not change how evaluate() batches the work.
  const int64_t slice = std::max<int64_t>(kChunk, (n + kSlices * kChunk - 1) / (kSlices * kChunk) * kChunk);
  Progress progress(label, n, g.quiet);
  EvalTotals totals;
  for (int64_t start = 0; start < n; start += slice) {
    const int64_t count = std::min(slice, n - start);
    Dataset piece = data;  // metadata copied; images and labels become views of the rows
    piece.images = data.images.rows(start, count);
    piece.labels = data.labels.rows(start, count);
    totals.add(evaluate(model, piece, kChunk));
    char status[64];
    std::snprintf(status, sizeof status, "acc %.2f%%", 100.0 * totals.report().accuracy);
    progress.update(start + count, status);
  }
  progress.finish();
  return totals.report();
}

nlohmann::json eval_report_json(const EvalReport& r) {
  return {{"accuracy", r.accuracy},
          {"per_class_accuracy", r.per_class_accuracy},
          {"per_class_count", r.per_class_count},
          {"n", r.n},
          {"loss", r.loss}};
}

std::string group_digits(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return n < 0 ? "-" + digits : digits;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * fraction);
  return buf;
}

}  // namespace lethe::cli
