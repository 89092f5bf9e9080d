// `lethe attack hu-recover`: Hu et al.'s feature recovery (attacks/hu_recover.h). The server holds θ_o and θ_u (and
// θ_0 for exact unlearning), knows the unlearned sample's label, and rebuilds its image from the weights; the image
// itself is read only afterwards, to score the reconstruction against chance (attacks/image_metrics.h).
#include <cstdio>
#include <filesystem>
#include <memory>

#include <CLI/CLI.hpp>

#include "attacks/hu_recover.h"
#include "attacks/image_metrics.h"
#include "datasets/png_grid.h"
#include "datasets/registry.h"
#include "nets/model_io.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace lethe::cli {
namespace {

struct HuRecoverOptions {
  std::string original, unlearned, pretrained, images;
  DataOptions data;
  PartOptions part;
  int64_t sample = 0;
  int64_t user_count = 0;  // 0: the size of the part
  int64_t forget_count = 1;
  attacks::RecoveryConfig cfg;
};

// The original beside the recovered image, then every restart, as one row of a PNG grid.
std::string write_images(const HuRecoverOptions& o, const Tensor& truth, const attacks::RecoveryResult& r) {
  std::error_code ec;
  std::filesystem::create_directories(o.images, ec);
  if (ec || !std::filesystem::is_directory(o.images))
    throw UsageError("--images " + o.images + ": cannot create the directory (" + ec.message() + ")");
  const int64_t restarts = r.restarts.dim(0);
  Tensor row = Tensor::empty({restarts + 2, truth.dim(1), truth.dim(2), truth.dim(3)});
  copy_bytes(row.raw(), Device::CPU, truth.raw(), Device::CPU, truth.nbytes());
  copy_bytes(row.rows(1, 1).raw(), Device::CPU, r.image.raw(), Device::CPU, r.image.nbytes());
  copy_bytes(row.rows(2, restarts).raw(), Device::CPU, r.restarts.raw(), Device::CPU, r.restarts.nbytes());
  const std::string stem = std::filesystem::path(o.unlearned).stem().string();
  const std::string path =
      (std::filesystem::path(o.images) / (stem + "-recover-" + std::to_string(o.sample) + ".png")).string();
  write_png_grid(path, row, restarts + 2, 4);
  return path;
}

int run_hu_recover(HuRecoverOptions o, const GlobalOptions& g) {
  o.cfg.seed = g.seed;
  auto be = open_backend(g);
  auto original = load_model(o.original, *be);
  auto unlearned = load_model(o.unlearned, *be);
  std::unique_ptr<Model> pretrained;
  if (!o.pretrained.empty()) pretrained = load_model(o.pretrained, *be);
  const DataRef ref = parse_data_ref(o.data.data);
  const LoadOptions load = o.data.load_options();
  const Dataset full_train = load_dataset(ref, Split::Train, load);
  const Dataset full_test = load_dataset(ref, Split::Test, load);
  check_data_fits_model(full_train, original->spec(), o.original);
  // The server's data: the part of the split recorded in θ_o (D_u by default), where X came from.
  const SplitSpec fallback = model_split_spec(*original, full_train.name, o.original);
  const ResolvedSplit split = resolve_split(o.part, fallback, o.original + " metadata", full_train, full_test);
  const Dataset part = select_part(split, o.part.part, full_train, full_test);
  if (o.sample < 0 || o.sample >= part.size())
    throw UsageError("--sample " + std::to_string(o.sample) + " is outside part '" + o.part.part + "' (" +
                     group_digits(part.size()) + " images: 0.." + std::to_string(part.size() - 1) + ")");
  const int64_t user_count = o.user_count > 0 ? o.user_count : part.size();
  const int64_t label = part.labels.i64()[o.sample];

  const Tensor target = attacks::gradient_estimate(*original, o.original, *unlearned, o.unlearned, pretrained.get(),
                                                   o.pretrained, user_count, o.forget_count);
  const std::string kind = pretrained ? "exact" : "approximate";
  Model& attacked = pretrained ? *pretrained : *original;
  note(g, kind + " unlearning: recovering sample " + std::to_string(o.sample) + " of part '" + o.part.part +
              "' (label " + std::to_string(label) + ") against " + (pretrained ? o.pretrained : o.original));

  attacks::RecoveryResult r;
  {
    Progress bar("feature recovery", o.cfg.iterations, g.quiet);
    char status[48];
    r = attacks::run_recovery(attacked, target, label, o.cfg, [&](int64_t it, int64_t, double best) {
      std::snprintf(status, sizeof status, "cost %.4f", best);
      bar.update(it, status);
    });
  }
  // Only now is the sample's image read: to score the reconstruction.
  const Tensor truth = part.images.rows(o.sample, 1).to_cpu();
  const double norm_std = attacks::mean_std(original->spec().std);
  const attacks::ImageQuality q = attacks::image_quality(r.image, truth, norm_std);
  const attacks::ImageQuality chance = attacks::random_baseline(truth, norm_std, *be, 16, g.seed);
  const std::string image_path = o.images.empty() ? "" : write_images(o, truth, r);

  if (g.json) {
    nlohmann::json j = {{"attack", "hu-recover"},
                        {"unlearning", kind},
                        {"sample", o.sample},
                        {"part", o.part.part},
                        {"label", label},
                        {"predicted", nullptr},  // the result is an image, scored below, not a label
                        {"random_baseline", chance.to_json()},
                        {"cost", r.cost},
                        {"costs", r.costs},
                        {"best_restart", r.best_restart},
                        {"user_count", user_count},
                        {"forget_count", o.forget_count},
                        {"queries", r.queries},
                        {"images", image_path},
                        {"original", o.original},
                        {"unlearned", o.unlearned},
                        {"pretrained", o.pretrained.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.pretrained)},
                        {"config", o.cfg.to_json()},
                        {"seconds", r.seconds}};
    j.update(q.to_json());
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const std::string name = label < static_cast<int64_t>(part.class_names.size()) ? " " + part.class_names[label] : "";
  std::printf("feature recovery (%s unlearning) of sample %lld of part '%s', label %lld%s:\n", kind.c_str(),
              static_cast<long long>(o.sample), o.part.part.c_str(), static_cast<long long>(label), name.c_str());
  std::printf("  best restart %lld of %lld, cost %.4f (", static_cast<long long>(r.best_restart),
              static_cast<long long>(r.costs.size()), r.cost);
  for (size_t i = 0; i < r.costs.size(); ++i) std::printf("%s%.4f", i ? " " : "restarts: ", r.costs[i]);
  std::printf(")\n              recovered  random\n");
  std::printf("  MSE        %9.4f  %6.4f\n  PSNR       %6.2f dB  %6.2f dB\n  PSNR (Hu)  %6.2f dB  %6.2f dB\n"
              "  SSIM       %9.4f  %6.4f\n",
              q.mse, chance.mse, q.psnr, chance.psnr, q.psnr_hu, chance.psnr_hu, q.ssim, chance.ssim);
  std::printf("  %s passes in %.1f s\n", group_digits(r.queries).c_str(), r.seconds);
  if (!image_path.empty()) std::printf("  original | recovered | restarts: %s\n", image_path.c_str());
  return 0;
}

}  // namespace

Command add_hu_recover_attack(CLI::App& attack, GlobalOptions& g) {
  auto o = std::make_shared<HuRecoverOptions>();
  CLI::App* app = attack.add_subcommand(
      "hu-recover", "Feature recovery (Hu et al.): rebuild an unlearned sample's image from the weights (white box)");
  app->add_option("--original", o->original, "The model before unlearning θ_o (.safetensors)")->required();
  app->add_option("--unlearned", o->unlearned, "The model after unlearning θ_u (.safetensors)")->required();
  app->add_option("--pretrained", o->pretrained,
                  "θ_0, which θ_o and θ_u were fine-tuned from: exact unlearning, attacked at θ_0 (default: "
                  "approximate unlearning, attacked at θ_o)");
  add_data_options(*app, o->data);
  add_part_options(*app, o->part, "user",
                   "Part the unlearned sample comes from (without --split: of the split recorded in θ_o)");
  app->add_option("--sample", o->sample, "The unlearned sample: its row in the part (its label is known)")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--user-count", o->user_count, "Exact unlearning: N = |D_u| (0: the size of the part)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--forget-count", o->forget_count, "Exact unlearning: k = |X|, the samples unlearned")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--restarts", o->cfg.restarts, "Random starts (the lowest final cost is kept)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  app->add_option("--iterations", o->cfg.iterations, "AdamW steps (the rate halves at 3/8, 5/8 and 7/8)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app->add_option("--lr", o->cfg.lr, "AdamW's rate on the pixels")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--tv", o->cfg.tv, "Weight of the anisotropic total variation")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--epsilon", o->cfg.epsilon, "Central differences' step in parameter space, relative to ‖θ‖")
      ->check(CLI::Range(1e-7f, 0.5f))
      ->capture_default_str();
  app->add_option("--images", o->images, "Write the original, the recovered image and every restart as a PNG here");
  add_global_options(*app, g);
  return {app, [o, &g] { return run_hu_recover(*o, g); }};
}

}  // namespace lethe::cli
