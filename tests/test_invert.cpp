// The inversion attacks (attacks/invert.h) on a small synthetic task: a class a model never learnt gets a prototype
// the model does not recognise (white-box and black-box), the criteria decide as they say, queries are counted,
// results are deterministic and independent of the target's recorded ground truth, the reference model is cached,
// bad configurations are usage errors; and the PNG grid (datasets/png_grid.h) has the promised size.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "attacks/invert.h"
#include "datasets/png_grid.h"
#include "engine/error.h"
#include "engine/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks;

namespace {

constexpr int64_t kClasses = 4;

using test::cpu;

// A LeNet-5 trained on classes 0, 2 and 3 only, so class 1 is "forgotten" as completely as retraining makes it; its
// output bias is pushed down as retraining without the class does.
struct Scenario {
  Dataset aux;
  std::unique_ptr<Model> target;
};
const Scenario& scenario() {
  static const Scenario s = [] {
    Scenario s;
    const Dataset all = test::synthetic_dataset(600, kClasses, 41);
    s.aux = test::synthetic_dataset(300, kClasses, 42);
    std::vector<int64_t> retained;
    for (int64_t i = 0; i < all.size(); ++i)
      if (all.labels.i64()[i] != 1) retained.push_back(i);
    s.target = make_model(spec_for_data("lenet5", all), cpu(), 3);
    TrainConfig recipe;
    recipe.epochs = 4;
    recipe.batch = 32;
    recipe.optim.lr = 0.05f;
    recipe.optim.momentum = 0.9f;
    train(*s.target, subset(all, retained), recipe);
    return s;
  }();
  return s;
}

InversionConfig small(const std::string& mode) {
  InversionConfig cfg;
  cfg.mode = mode;
  cfg.calibrate = "none";  // the reference model needs D_aux; the calibrated attack has its own test
  cfg.criterion = "threshold";
  cfg.restarts = 2;
  cfg.steps = 60;
  cfg.lr = 0.1f;
  cfg.population = 48;
  cfg.generations = 25;
  cfg.seed = 5;
  return cfg;
}

}  // namespace

TEST_CASE("invert: a class the model never learnt gets the prototype it does not recognise") {
  const Scenario& s = scenario();
  for (const std::string mode : {"white", "black"}) {
    CAPTURE(mode);
    InversionConfig cfg = small(mode);
    InversionResult r = run_inversion(*s.target, nullptr, cfg, "");
    REQUIRE(r.target.confidence.size() == static_cast<size_t>(kClasses));
    REQUIRE(r.target.entropy.size() == static_cast<size_t>(kClasses));
    CHECK(r.baseline.confidence.empty());
    CHECK(r.prototypes.shape() == s.target->spec().input_shape(kClasses));
    CHECK(test::all_finite(r.prototypes));
    for (const float v : r.prototypes.to_vector()) CHECK((v >= 0.0f && v <= 1.0f));
    // Without another model in between, the source's and the target's confidence are the same numbers.
    for (int64_t c = 0; c < kClasses; ++c) {
      CHECK(r.source_confidence[c] == doctest::Approx(r.target.confidence[c]));
      const double p = r.target.confidence[c];
      CHECK(std::isfinite(r.target.log_odds[c]));  // also where 1 - p rounds to 0: it is summed, not subtracted
      if (p < 0.999) CHECK(r.target.log_odds[c] == doctest::Approx(std::log(p / (1 - p))).epsilon(1e-6));
    }
    // The learnt classes are easy to synthesise; the unlearnt one is not.
    for (const int64_t c : {0, 2, 3}) CHECK(r.target.confidence[c] > r.target.confidence[1]);
    CHECK(r.predicted == std::vector<int64_t>{1});
    const int64_t per_step = mode == "white" ? cfg.restarts * kClasses : cfg.population * kClasses;
    const int64_t rounds = mode == "white" ? cfg.steps + 1 : cfg.generations;  // white: the final selection too
    CHECK(r.queries == rounds * per_step + kClasses);

    cfg.criterion = "entropy";
    judge(r, cfg);
    CHECK(r.predicted == std::vector<int64_t>{1});
  }
}

TEST_CASE("invert: the criteria decide from confidence and entropy as documented") {
  InversionResult r;
  r.target.confidence = {0.99, 0.2, 0.45, 0.97};
  for (const double p : r.target.confidence) r.target.log_odds.push_back(std::log(p / (1 - p)));
  r.target.entropy = {0.01, 0.9, 1.2, 0.05};
  InversionConfig cfg;
  cfg.criterion = "threshold";
  cfg.forget_count = 1;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1});  // the least confident
  cfg.forget_count = 0;
  cfg.tau = 0.5f;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1, 2});  // every class below tau
  cfg.tau = 0.1f;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1});  // none below: the least confident
  cfg.criterion = "entropy";
  cfg.forget_count = 1;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{2});  // the most uncertain prediction
  cfg.forget_count = 2;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1, 2});

  // Calibrated: the scores are the deficits against the baseline (log-odds, entropy), so a class that is hard for
  // every model (2: low confidence, high entropy on the reference too) no longer stands out.
  r.baseline.confidence = {0.99, 0.99, 0.5, 0.99};
  r.baseline.log_odds = {4.6, 4.6, 0.0, 4.6};
  r.baseline.entropy = {0.02, 0.02, 1.1, 0.02};
  cfg.forget_count = 1;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1});
  CHECK(r.scores[1] == doctest::Approx(0.9 - 0.02));
  CHECK(r.scores[2] == doctest::Approx(1.2 - 1.1));
  cfg.criterion = "threshold";
  cfg.tau = 0.1f;
  judge(r, cfg);
  CHECK(r.predicted == std::vector<int64_t>{1});
  CHECK(r.scores[1] == doctest::Approx(4.6 - std::log(0.2 / 0.8)));
  CHECK(r.scores[2] == doctest::Approx(-std::log(0.45 / 0.55)));
}

TEST_CASE("invert: deterministic, and blind to the target's recorded ground truth") {
  const Scenario& s = scenario();
  for (const std::string mode : {"white", "black"}) {
    CAPTURE(mode);
    auto with_story = [&](int64_t cls, const std::string& method) {
      auto target = copy_of(*s.target);
      target->metadata() = {{"unlearning", {{"method", method}, {"forget", {{"classes", {cls}}}}}}};
      return run_inversion(*target, nullptr, small(mode), "");
    };
    const InversionResult a = with_story(1, "retrain"), b = with_story(3, "neggrad");
    CHECK(a.predicted == b.predicted);
    CHECK(a.target.confidence == b.target.confidence);
    CHECK(test::bit_identical(test::to_doubles(a.prototypes), test::to_doubles(b.prototypes)));
  }
}

TEST_CASE("invert: the reference model is trained once on D_aux and its prototypes are shown to the target") {
  const Scenario& s = scenario();
  const test::TempDir tmp("invert_reference");
  const std::string dir = (tmp.path() / "work").string();
  InversionConfig cfg = small("white");
  cfg.source = "reference";
  cfg.reference_epochs = 2;
  const InversionResult first = run_inversion(*s.target, &s.aux, cfg, dir);
  const InversionResult second = run_inversion(*s.target, &s.aux, cfg, dir);
  CHECK(first.models_trained == 1);
  CHECK(second.models_trained == 0);
  CHECK(second.models_cached == 1);
  CHECK(first.target.confidence == second.target.confidence);
  CHECK(first.queries == kClasses);  // the target only sees the final prototypes
  // The reference learnt class 1, so its prototype convinces the reference more than the target.
  CHECK(first.source_confidence[1] > 2 * first.target.confidence[1]);
  CHECK(first.predicted == std::vector<int64_t>{1});
  // Uncalibrated, no baseline; calibrated, the baseline is the reference's view of the same images.
  CHECK(first.baseline.confidence.empty());
  cfg.calibrate = "reference";
  const InversionResult gap = run_inversion(*s.target, &s.aux, cfg, dir);
  REQUIRE(gap.baseline.confidence.size() == static_cast<size_t>(kClasses));
  for (int64_t c = 0; c < kClasses; ++c)
    CHECK(gap.baseline.confidence[c] == doctest::Approx(gap.source_confidence[c]));
  CHECK(gap.predicted == std::vector<int64_t>{1});
  CHECK_THROWS_AS(run_inversion(*s.target, nullptr, cfg, ""), UsageError);  // no D_aux
}

TEST_CASE("invert: calibrated by the same search on the reference model, computed once and cached") {
  const Scenario& s = scenario();
  const test::TempDir tmp("invert_baseline");
  const std::string dir = (tmp.path() / "work").string();
  for (const std::string mode : {"white", "black"}) {
    CAPTURE(mode);
    InversionConfig cfg = small(mode);
    cfg.calibrate = "reference";
    cfg.reference_epochs = 2;
    const InversionResult first = run_inversion(*s.target, &s.aux, cfg, dir);
    REQUIRE(first.baseline.log_odds.size() == static_cast<size_t>(kClasses));
    // The baseline searched the reference, not the target: the target's own queries are unchanged.
    const int64_t per_step = mode == "white" ? cfg.restarts * kClasses : cfg.population * kClasses;
    CHECK(first.queries == (mode == "white" ? cfg.steps + 1 : cfg.generations) * per_step + kClasses);
    CHECK(first.predicted == std::vector<int64_t>{1});
    for (int64_t c = 0; c < kClasses; ++c)
      CHECK(first.scores[c] == doctest::Approx(first.baseline.log_odds[c] - first.target.log_odds[c]));
    // Another criterion or m reuses the cached baseline (same search settings).
    cfg.criterion = "entropy";
    cfg.forget_count = 0;
    const InversionResult second = run_inversion(*s.target, &s.aux, cfg, dir);
    CHECK(second.models_trained == 0);
    CHECK(second.baseline.entropy == first.baseline.entropy);
    CHECK(second.predicted == std::vector<int64_t>{1});
  }
}

TEST_CASE("invert: bad configurations are usage errors") {
  const Scenario& s = scenario();
  const auto fails = [&](const std::function<void(InversionConfig&)>& spoil) {
    InversionConfig cfg = small("white");
    spoil(cfg);
    CHECK_THROWS_AS(run_inversion(*s.target, nullptr, cfg, ""), UsageError);
  };
  fails([](InversionConfig& c) { c.mode = "grey"; });
  fails([](InversionConfig& c) { c.criterion = "vote"; });
  fails([](InversionConfig& c) { c.source = "oracle"; });
  fails([](InversionConfig& c) { c.forget_count = kClasses; });
  fails([](InversionConfig& c) { c.tau = 0.0f; });
  fails([](InversionConfig& c) { c.steps = 0; });
  fails([](InversionConfig& c) { c.elites = c.population; });
  fails([](InversionConfig& c) { c.sigma_decay = 0.0f; });
}

TEST_CASE("PNG grid: the image has the grid's size, and bad shapes are refused") {
  test::Rng rng(3);
  const Tensor images = test::random_tensor({5, 1, 4, 6}, rng, -0.5f, 1.5f);
  const std::string png = encode_png_grid(images, 3, 2, 1);
  REQUIRE(png.size() > 33);
  CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  auto be32 = [&](size_t at) {
    const auto* b = reinterpret_cast<const unsigned char*>(png.data() + at);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  };
  CHECK(png.compare(12, 4, "IHDR") == 0);
  CHECK(be32(16) == 1 + 3 * (6 * 2 + 1));  // width: pad + columns * (scaled width + pad)
  CHECK(be32(20) == 1 + 2 * (4 * 2 + 1));  // height: two rows
  CHECK_THROWS_AS(encode_png_grid(test::random_tensor({2, 2, 4, 4}, rng), 2), UsageError);
  CHECK_THROWS_AS(encode_png_grid(test::random_tensor({4, 4}, rng), 2), UsageError);
}
