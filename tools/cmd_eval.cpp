// `lethe eval`: accuracy, per-class accuracy and loss of a saved model on a dataset split.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "datasets/registry.h"
#include "nets/model_io.h"
#include "tools/common.h"

namespace lethe::cli {
namespace {

struct EvalOptions {
  std::string model;
  DataOptions data;
  PartOptions part;
};

int run_eval(const EvalOptions& o, const GlobalOptions& g) {
  auto be = open_backend(g);
  // The model first: a bad model file is reported even when the dataset is missing too.
  auto model = load_model(o.model, *be);
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  // Splits are defined over the train split, so it is read even to evaluate on the test part: the model's class
  // filter applies to the test part too.
  const Dataset train = load_dataset(ref, Split::Train, load);
  const Dataset test = load_dataset(ref, Split::Test, load);
  const SplitSpec fallback = model_split_spec(*model, train.name, o.model);
  const ResolvedSplit split = resolve_split(o.part, fallback, o.model + " metadata", train, test);
  const Dataset data = select_part(split, o.part.part, train, test);
  const nlohmann::json split_json = split_record(split.spec, split.parts, o.part.part);
  check_data_fits_model(data, model->spec(), o.model);
  note(g, "evaluating " + o.model + " (" + model->spec().arch + ") on " + data.name + " part '" + o.part.part +
              "', " + group_digits(data.size()) + " images from " + data.source);

  const EvalReport r = evaluate_with_progress(*model, data, "eval", g);
  if (g.json) {
    nlohmann::json result = eval_report_json(r);
    result["model"] = o.model;
    result["dataset"] = data.name;
    result["split"] = split_json;
    std::printf("%s\n", result.dump().c_str());
    return 0;
  }
  std::printf("%s on %s %s (%s images): accuracy %s  loss %.4f\n", o.model.c_str(), data.name.c_str(),
              o.part.part.c_str(), group_digits(r.n).c_str(), percent(r.accuracy).c_str(), r.loss);
  for (size_t c = 0; c < r.per_class_accuracy.size(); ++c) {
    const std::string name = c < data.class_names.size() ? data.class_names[c] : "";
    const int64_t count = c < r.per_class_count.size() ? r.per_class_count[c] : 0;
    std::printf("  class %2zu %-14s %8s  (%s)\n", c, name.c_str(), percent(r.per_class_accuracy[c]).c_str(),
                group_digits(count).c_str());
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* app = parent.add_subcommand("eval", "Evaluate a saved model on a dataset split");
  app->add_option("--model", o->model, "Model file (.safetensors)")->required();
  add_data_options(*app, o->data);
  add_part_options(*app, o->part, "test",
                   "Part to evaluate on (without --split: of the split recorded in the model)");
  add_global_options(*app, g);
  return {app, [o, &g] { return run_eval(*o, g); }};
}

}  // namespace lethe::cli
