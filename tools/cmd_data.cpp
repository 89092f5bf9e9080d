// `lethe data info`: where a dataset was found, its shape, and counts per class in every split (and, with --split,
// in every part of an experiment split). `lethe data split`: makes an experiment split file.
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include "tools/common.h"

namespace lethe::cli {
namespace {

struct DataInfoOptions {
  DataOptions data;
  std::string split_file;
  std::vector<std::string> indices;  // parts whose row indices to list
};

struct DataSplitOptions {
  DataOptions data;
  std::string out;
  SplitSpec spec;
  std::vector<std::string> forget_fractions;
};

std::vector<int64_t> counts_of(const Dataset& d, const std::vector<int64_t>& rows) {
  std::vector<int64_t> counts(static_cast<size_t>(d.num_classes), 0);
  for (const int64_t i : rows) ++counts[static_cast<size_t>(d.labels.i64()[i])];
  return counts;
}

// One table: a row per class, a column per named group of counts.
void print_count_table(const std::vector<std::string>& class_names,
                       const std::vector<std::pair<std::string, std::vector<int64_t>>>& columns) {
  std::printf("  %-5s %-22s", "class", "name");
  for (const auto& [name, _] : columns) std::printf(" %10s", name.c_str());
  std::printf("\n");
  for (size_t c = 0; c < class_names.size(); ++c) {
    std::printf("  %-5zu %-22s", c, class_names[c].substr(0, 22).c_str());
    for (const auto& [_, counts] : columns) std::printf(" %10s", group_digits(counts[c]).c_str());
    std::printf("\n");
  }
  std::printf("  %-5s %-22s", "", "total");
  for (const auto& [_, counts] : columns) {
    int64_t total = 0;
    for (const int64_t n : counts) total += n;
    std::printf(" %10s", group_digits(total).c_str());
  }
  std::printf("\n");
}

nlohmann::json parts_json(const Dataset& train, const Dataset& test, const SplitParts& parts) {
  nlohmann::json j = nlohmann::json::object();
  for (const std::string& name : SplitParts::names()) {
    const std::vector<int64_t>& rows = parts.part(name);
    j[name] = {{"n", rows.size()}, {"per_class", counts_of(name == "test" ? test : train, rows)}};
  }
  return j;
}

void print_parts(const Dataset& train, const Dataset& test, const SplitParts& parts) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> columns;
  for (const std::string& name : SplitParts::names())
    if (!parts.part(name).empty())
      columns.emplace_back(name, counts_of(name == "test" ? test : train, parts.part(name)));
  print_count_table(train.class_names, columns);
}

int run_data_info(const DataInfoOptions& o, const GlobalOptions& g) {
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  nlohmann::json splits = nlohmann::json::object();
  std::vector<std::pair<std::string, std::vector<int64_t>>> columns;
  Dataset train, test, first;
  for (const Split s : dataset_splits(ref)) {
    if (!split_available(ref, s)) {
      // Train and test are what every command needs, so their absence is an error with the full search report.
      if (s != Split::Extra) load_dataset(ref, s, load);
      splits[split_name(s)] = nullptr;
      continue;
    }
    Dataset d = load_dataset(ref, s, load);
    splits[split_name(s)] = {{"source", d.source}, {"n", d.size()}, {"per_class", class_counts(d)}};
    columns.emplace_back(split_name(s), class_counts(d));
    if (s == Split::Train) train = d;
    if (s == Split::Test) test = d;
    if (!first.images.defined()) first = std::move(d);
  }
  const Dataset& d = first;
  nlohmann::json result = {{"dataset", d.name},
                           {"source", d.source},
                           {"load", load.to_json()},
                           {"shape", {d.channels(), d.height(), d.width()}},
                           {"num_classes", d.num_classes},
                           {"class_names", d.class_names},
                           {"mean", d.mean},
                           {"std", d.std},
                           {"augment_default", default_augment(ref.name).to_json()},
                           {"splits", splits}};
  std::optional<SplitFile> split_file;
  SplitParts parts;
  if (!o.split_file.empty()) {
    split_file = read_split_file(o.split_file);
    parts = make_split(split_file->spec, train, test);
    check_split_matches(*split_file, parts, o.split_file);
    result["split"] = split_record(split_file->spec, parts, "");
    result["split"].erase("part");
    result["split"]["parts"] = parts_json(train, test, parts);
    for (const std::string& name : o.indices) result["split"]["indices"][name] = parts.part(name);
  } else if (!o.indices.empty()) {
    throw UsageError("--indices lists the rows of a split's parts; name the split with --split");
  }
  if (g.json) {
    std::printf("%s\n", result.dump().c_str());
    return 0;
  }
  std::printf("%s from %s\n", d.name.c_str(), d.source.c_str());
  std::printf("  images %s, %lld classes\n", shape_str({d.channels(), d.height(), d.width()}).c_str(),
              static_cast<long long>(d.num_classes));
  for (const Split s : dataset_splits(ref)) {
    const nlohmann::json& j = splits[split_name(s)];
    if (j.is_null()) std::printf("  %-5s (not present)\n", split_name(s));
    else std::printf("  %-5s %s images from %s\n", split_name(s), group_digits(j["n"].get<int64_t>()).c_str(),
                     j["source"].get<std::string>().c_str());
  }
  std::printf("  training augmentation by default: %s\n", default_augment(ref.name).name().c_str());
  print_count_table(d.class_names, columns);
  if (split_file) {
    std::printf("split %s (spec hash %s, seed %llu, indices hash %s):\n", o.split_file.c_str(),
                split_file->spec.hash().c_str(), static_cast<unsigned long long>(split_file->spec.seed),
                parts.indices_hash().c_str());
    print_parts(train, test, parts);
    for (const std::string& name : o.indices) {
      std::printf("%s rows:", name.c_str());
      for (const int64_t i : parts.part(name)) std::printf(" %lld", static_cast<long long>(i));
      std::printf("\n");
    }
  }
  return 0;
}

int run_data_split(DataSplitOptions o, const GlobalOptions& g) {
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  for (const std::string& text : o.forget_fractions) o.spec.forget.fractions.push_back(parse_class_fraction(text));
  o.spec.seed = g.seed;
  const Dataset train = load_dataset(ref, Split::Train, load);
  const Dataset test = split_available(ref, Split::Test) ? load_dataset(ref, Split::Test, load) : Dataset{};
  o.spec.dataset = train.name;
  const SplitParts parts = make_split(o.spec, train, test);
  write_split_file(o.out, o.spec, parts);
  if (g.json) {
    nlohmann::json result = split_record(o.spec, parts, "");
    result.erase("part");
    result["file"] = o.out;
    result["parts"] = parts_json(train, test, parts);
    std::printf("%s\n", result.dump().c_str());
    return 0;
  }
  std::printf("wrote %s: split of %s, spec hash %s, seed %llu, indices hash %s\n", o.out.c_str(), train.name.c_str(),
              o.spec.hash().c_str(), static_cast<unsigned long long>(o.spec.seed), parts.indices_hash().c_str());
  print_parts(train, test, parts);
  return 0;
}

}  // namespace

Command add_data_command(CLI::App& parent, GlobalOptions& g) {
  CLI::App* app = parent.add_subcommand("data", "Inspect datasets and make experiment splits");
  app->require_subcommand(1);

  auto info = std::make_shared<DataInfoOptions>();
  CLI::App* info_app = app->add_subcommand("info", "Where a dataset is, its shape and its counts per class and split");
  add_data_options(*info_app, info->data);
  info_app->add_option("--split", info->split_file, "Also count every part of this experiment split file");
  info_app->add_option("--indices", info->indices,
                       "List the rows of these parts of the split (positions in the official train or test split, "
                       "as --forget-indices takes them)")
      ->delimiter(',')
      ->check(CLI::IsMember(SplitParts::names()));
  add_global_options(*info_app, g);

  auto split = std::make_shared<DataSplitOptions>();
  CLI::App* split_app = app->add_subcommand(
      "split", "Make an experiment split (owner/aux/user pool/forget/retain/test) and save it as JSON");
  add_data_options(*split_app, split->data);
  split_app->add_option("--out", split->out, "Split file to write (.json)")->required();
  split_app->add_option("--classes", split->spec.classes, "Keep only these classes (e.g. 0,1,2)")->delimiter(',');
  split_app->add_option("--exclude-classes", split->spec.exclude_classes, "Drop these classes")->delimiter(',');
  split_app->add_option("--aux-fraction", split->spec.aux_fraction,
                        "Attacker's auxiliary set: this fraction of every class, disjoint from the owner's")
      ->check(CLI::Range(0.0, 0.999999));
  split_app->add_option("--user-pool", split->spec.user_pool,
                        "Hu et al.'s user pool: the first N training images, held out of the owner's set")
      ->check(CLI::NonNegativeNumber);
  split_app->add_option("--user-size", split->spec.user_size, "|D_u|, drawn from the pool (0: the whole pool)")
      ->check(CLI::NonNegativeNumber);
  split_app->add_option("--forget-classes", split->spec.forget.classes, "Forget these whole classes")
      ->delimiter(',');
  split_app->add_option("--forget-fraction", split->forget_fractions,
                        "Forget the first floor(P*n) of class C in a seeded order: C:P (repeatable)")
      ->delimiter(',');
  split_app->add_option("--forget-indices", split->spec.forget.indices,
                        "Forget these training-split indices (e.g. 12,40,77)")
      ->delimiter(',');
  add_global_options(*split_app, g);

  return {app, [info, split, info_app, split_app, &g]() -> int {
            if (info_app->parsed()) return run_data_info(*info, g);
            if (split_app->parsed()) return run_data_split(*split, g);
            throw UsageError("lethe data needs a subcommand: info or split");
          }};
}

}  // namespace lethe::cli
