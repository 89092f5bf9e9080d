#include "tools/common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include "engine/error.h"
#include "tools/progress.h"

namespace lethe::cli {

void add_global_options(CLI::App& app, GlobalOptions& g) {
  const std::string group = "Global options";
  app.add_option("--device", g.device, "Compute device: auto, cpu, cuda (device 0) or cuda:K")
      ->check(
          [](const std::string& d) -> std::string {
            const bool indexed = d.size() > 5 && d.rfind("cuda:", 0) == 0 &&
                                 d.find_first_not_of("0123456789", 5) == std::string::npos && d.size() <= 9;
            return d == "auto" || d == "cpu" || d == "cuda" || indexed ? "" : "expected auto, cpu, cuda or cuda:K";
          },
          "DEVICE")
      ->default_str("auto")
      ->group(group);
  app.add_option("--threads", g.threads, "CPU threads (0: every core)")
      ->check(CLI::NonNegativeNumber)
      ->default_str("0")
      ->group(group);
  app.add_option("--seed", g.seed, "Random seed (initialisation, shuffling, subsets)")
      ->default_str("0")
      ->each([&g](const std::string&) { g.seed_given = true; })
      ->group(group);
  app.add_flag("--json", g.json, "Print one JSON object on stdout instead of text")->group(group);
  app.add_flag("-q,--quiet", g.quiet, "No progress or status lines on stderr")->group(group);
}

LoadOptions DataOptions::load_options() const {
  LoadOptions o;
  o.label = label;
  if (!resize.empty()) o.resize = parse_image_size(resize);
  o.with_extra = with_extra;
  return o;
}

nlohmann::json DataOptions::describe(const Dataset& d) const {
  return {{"name", d.name}, {"source", d.source}, {"load", load_options().to_json()}};
}

void add_data_options(CLI::App& app, DataOptions& d) {
  std::string names;
  for (const std::string& n : known_datasets()) names += n + ", ";
  app.add_option("--data", d.data, "Dataset NAME or NAME:PATH (" + names + "folder:PATH)")->capture_default_str();
  app.add_option("--label", d.label, "cifar100 labels: fine (100 classes) or coarse (20)")
      ->check(CLI::IsMember({"fine", "coarse"}))
      ->capture_default_str();
  app.add_option("--resize", d.resize, "Resize every image to HxW, bilinear (e.g. 32x32)");
  app.add_flag("--with-extra", d.with_extra, "svhn: add extra_32x32.mat to the train split");
}

void add_part_options(CLI::App& app, PartOptions& p, const std::string& default_part, const std::string& what) {
  p.part = default_part;
  app.add_option("--split", p.split_file, "Experiment split file (from 'lethe data split')");
  app.add_option("--part", p.part, what + ": " + [] {
       std::string s;
       for (const std::string& n : SplitParts::names()) s += (s.empty() ? "" : ", ") + n;
       return s;
     }())
      ->check(CLI::IsMember(SplitParts::names()))
      ->capture_default_str();
}

ResolvedSplit resolve_split(const PartOptions& p, const SplitSpec& fallback, const std::string& fallback_source,
                            const Dataset& train, const Dataset& test) {
  ResolvedSplit r;
  if (p.split_file.empty()) {
    r.spec = fallback;
    r.source = fallback_source;
    r.parts = make_split(r.spec, train, test);
    return r;
  }
  const SplitFile file = read_split_file(p.split_file);
  r.spec = file.spec;
  r.source = p.split_file;
  r.parts = make_split(r.spec, train, test);
  check_split_matches(file, r.parts, p.split_file);
  return r;
}

SplitSpec model_split_spec(const Model& model, const std::string& dataset, const std::string& model_path) {
  const nlohmann::json& meta = model.metadata();
  if (meta.contains("split") && meta["split"].is_object() && meta["split"].contains("spec")) {
    SplitSpec recorded = SplitSpec::from_json(meta["split"]["spec"], model_path + " metadata");
    if (recorded.dataset == dataset) return recorded;
  }
  SplitSpec whole;
  whole.dataset = dataset;
  return whole;
}

Dataset select_part(const ResolvedSplit& split, const std::string& part, const Dataset& train, const Dataset& test) {
  const std::vector<int64_t>& rows = split.parts.part(part);
  if (rows.empty())
    throw UsageError("part '" + part + "' of the split (" + split.source + ") is empty" +
                     (part == "user" || part == "pool" ? " (the split has no user pool)"
                      : part == "aux"                  ? " (the split has no auxiliary fraction)"
                      : part == "forget"               ? " (the split forgets nothing)"
                                                       : ""));
  return subset(part == "test" ? test : train, rows);
}

std::unique_ptr<Backend> open_backend(const GlobalOptions& g) {
  auto be = make_backend(g.device, g.threads);
  std::string why;
  if (g.device == "auto" && be->device() == Device::CPU)
    why = cuda_built() ? " (--device auto: no CUDA device found)" : " (--device auto: built without CUDA)";
  note(g, "backend: " + be->name() + (be->device() == Device::CPU ? ", " + std::to_string(be->threads()) + " thread(s)" : "") + why);
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

struct EpochLog::State {
  State(const GlobalOptions& options, int epochs) : g(options), total_epochs(epochs) {}
  const GlobalOptions& g;
  int total_epochs;
  std::optional<Progress> bar;
  int bar_epoch = -1;
};

EpochLog::EpochLog(const GlobalOptions& g, int total_epochs) : state_(std::make_shared<State>(g, total_epochs)) {}
EpochLog::~EpochLog() = default;

ProgressFn EpochLog::progress() {
  return [s = state_](int epoch, int64_t done, int64_t total, double loss) {
    if (epoch != s->bar_epoch) {
      s->bar.emplace("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(s->total_epochs), total, s->g.quiet);
      s->bar_epoch = epoch;
    }
    char status[48];
    std::snprintf(status, sizeof status, "loss %.4f", loss);
    s->bar->update(done, status);
  };
}

EpochFn EpochLog::on_epoch() {
  return [s = state_, &epochs = epochs_](const EpochReport& r) {
    if (s->bar) s->bar.reset();
    const double rate = r.seconds > 0 ? static_cast<double>(r.samples) / r.seconds : 0.0;
    epochs.push_back({{"epoch", r.epoch + 1},
                      {"loss", r.loss},
                      {"accuracy", r.accuracy},
                      {"lr", r.lr},
                      {"seconds", r.seconds},
                      {"images_per_second", rate}});
    if (s->g.json && s->g.quiet) return;
    FILE* out = s->g.json ? stderr : stdout;
    std::fprintf(out, "epoch %d/%d  loss %.4f  train acc %s  lr %.6g  %.1f s  %.0f img/s\n", r.epoch + 1,
                 s->total_epochs, r.loss, percent(r.accuracy).c_str(), static_cast<double>(r.lr), r.seconds, rate);
    std::fflush(out);
  };
}

EvalReport evaluate_with_progress(Model& model, const Dataset& data, const std::string& label,
                                  const GlobalOptions& g) {
  Progress progress(label, data.size(), g.quiet);
  const EvalReport r = evaluate(model, data, 1024, [&](int64_t done, int64_t, double accuracy) {
    char status[64];
    std::snprintf(status, sizeof status, "acc %.2f%%", 100.0 * accuracy);
    progress.update(done, status);
  });
  progress.finish();
  return r;
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
