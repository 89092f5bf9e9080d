// `lethe attack hu-label`: Hu et al.'s label inference (attacks/hu_label.h). A user with black-box access to the
// model before and after unlearning makes confident probes for every class on θ_o by ZOO, then names the class whose
// probes θ_u trusts less. The attack reads the two models' probabilities only, never their metadata, and no data.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "attacks/hu_label.h"
#include "attacks/hu_recover.h"
#include "nets/model_io.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

struct HuLabelOptions {
  std::string original, unlearned, work;
  DataOptions data;
  int64_t forget_count = 1;
  std::string decision = "probability";
  attacks::ZooProbeConfig zoo;
};

int run_hu_label(HuLabelOptions o, const GlobalOptions& g, bool data_given) {
  const auto t0 = std::chrono::steady_clock::now();
  o.zoo.seed = g.seed;
  auto be = open_backend(g);
  auto original = load_model(o.original, *be);
  auto unlearned = load_model(o.unlearned, *be);
  attacks::check_same_architecture(*original, o.original, *unlearned, o.unlearned);
  if (data_given) {  // the attack needs no data; --data only checks that the models are the ones meant
    const Dataset test = load_dataset(parse_data_ref(o.data.data), Split::Test, o.data.load_options());
    check_data_fits_model(test, original->spec(), o.original);
  }
  const int64_t classes = original->spec().num_classes;
  if (o.forget_count < 1 || o.forget_count >= classes)
    throw UsageError("--forget-count must be in [1, " + std::to_string(classes - 1) + "]");

  attacks::CacheCounts counts;
  attacks::WorkCache cache(o.work, counts, [&](const std::string& m) { note(g, m); });
  bool cached = false;
  attacks::Probes probes;
  {
    Progress bar("ZOO probes", o.zoo.tries * o.zoo.iterations, g.quiet);
    probes = attacks::cached_probes(*original, o.zoo, cache, &cached,
                                    [&](int64_t step, int64_t, int64_t accepted, int64_t queries) {
                                      bar.update(step, std::to_string(accepted) + " accepted, " +
                                                           group_digits(queries) + " queries");
                                    });
  }
  const attacks::LabelInferenceResult r =
      attacks::infer_unlearned_labels(*original, *unlearned, probes, o.forget_count, o.decision);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (g.json) {
    nlohmann::json j = r.to_json();
    j["attack"] = "hu-label";
    j["forget_count"] = o.forget_count;
    j["decision"] = o.decision;
    j["chance"] = static_cast<double>(o.forget_count) / static_cast<double>(classes);
    j["probes"] = {{"count", probes.labels.size()},      {"accepted", probes.accepted_count()},
                   {"queries", probes.queries},          {"seconds", probes.seconds},
                   {"cached", cached},                   {"confidence", probes.confidence}};
    j["config"] = o.zoo.to_json();
    j["original"] = o.original;
    j["unlearned"] = o.unlearned;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("Hu et al. label inference: %zu probes (%lld accepted at p >= %g)%s, decided by %s\n"
              "  class  Δ p = p_u - p_o   Δ log-odds\n",
              probes.labels.size(), static_cast<long long>(probes.accepted_count()), o.zoo.accept,
              cached ? ", cached" : "", o.decision.c_str());
  for (size_t c = 0; c < r.delta.size(); ++c) {
    const bool hit = std::find(r.predicted.begin(), r.predicted.end(), static_cast<int64_t>(c)) != r.predicted.end();
    std::printf("  %5zu  %+14.3e  %+11.3e%s\n", c, r.delta[c], r.delta_log_odds[c], hit ? "  <- unlearned" : "");
  }
  std::string list;
  for (const int64_t c : r.predicted) list += (list.empty() ? "" : ",") + std::to_string(c);
  std::printf("  predicted unlearned: %s  (chance %.0f%%; %s queries, %.1f s)\n", list.c_str(),
              100.0 * static_cast<double>(o.forget_count) / static_cast<double>(classes),
              group_digits(r.queries).c_str(), seconds);
  return 0;
}

}  // namespace

Command add_hu_label_attack(CLI::App& attack, GlobalOptions& g) {
  auto o = std::make_shared<HuLabelOptions>();
  CLI::App* app = attack.add_subcommand(
      "hu-label", "Label inference (Hu et al.): which class was unlearned, from probabilities before and after");
  app->add_option("--original", o->original, "The model before unlearning, θ_o (.safetensors)")->required();
  app->add_option("--unlearned", o->unlearned, "The model after unlearning, θ_u (.safetensors)")->required();
  add_data_options(*app, o->data);
  app->add_option("--forget-count", o->forget_count, "How many classes were unlearned (the top m are named)")
      ->capture_default_str();
  app->add_option("--decision", o->decision,
                  "Rank classes by the mean change of p_k (probability, Hu's) or of its log-odds (log-odds)")
      ->check(CLI::IsMember(attacks::label_decisions()))
      ->capture_default_str();
  app->add_option("--probes-per-class", o->zoo.probes_per_class, "ZOO probes kept per class")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  app->add_option("--iterations", o->zoo.iterations, "ZOO steps per try")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app->add_option("--tries", o->zoo.tries, "Fresh starts for a probe not yet accepted")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  app->add_option("--coordinates", o->zoo.coordinates, "Pixels per ZOO step, two queries each (capped at the pixels)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->capture_default_str();
  app->add_option("--h", o->zoo.zoo.h, "Step of the symmetric differences")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--lr", o->zoo.lr, "Coordinate Adam's rate")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--lr-confident", o->zoo.lr_confident, "The rate once a probe's confidence exceeds --confident-at")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--confident-at", o->zoo.confident_at, "Confidence above which the rate drops")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app->add_option("--accept", o->zoo.accept, "Confidence at which a probe is kept")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  app->add_option("--max-batch", o->zoo.max_batch, "Query images per forward at most (whole probes)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30))
      ->capture_default_str();
  app->add_option("--work", o->work, "Cache directory for the probes (reused for the same θ_o and settings)");
  add_global_options(*app, g);
  return {app, [o, &g, app] { return run_hu_label(*o, g, app->count("--data") > 0); }};
}

}  // namespace lethe::cli
