#include "attacks/invert.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "attacks/param.h"
#include "engine/error.h"
#include "engine/trainer.h"
#include "nets/nets.h"

namespace lethe::attacks {
namespace {

using Clock = std::chrono::steady_clock;

// Philox streams of the attack's random starts.
constexpr uint64_t kWhiteStartStream = 0x494e5657;  // "INVW"
constexpr uint64_t kBlackStartStream = 0x494e5642;  // "INVB"

// Softmax of each logits row, in double on the host.
std::vector<std::vector<double>> probabilities(const Tensor& logits) {
  const std::vector<float> z = logits.to_vector();
  const int64_t rows = logits.dim(0), k = logits.dim(1);
  std::vector<std::vector<double>> p(static_cast<size_t>(rows), std::vector<double>(static_cast<size_t>(k)));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = z.data() + r * k;
    const double m = *std::max_element(row, row + k);
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += p[r][j] = std::exp(static_cast<double>(row[j]) - m);
    for (double& v : p[r]) v /= sum;
  }
  return p;
}

PrototypeView view_of(Model& model, const Tensor& images) {
  Tensor logits;
  model.infer_logits(images, logits);
  const std::vector<std::vector<double>> p = probabilities(logits);
  PrototypeView v;
  for (size_t c = 0; c < p.size(); ++c) {
    double h = 0, others = 0;
    for (size_t j = 0; j < p[c].size(); ++j) {
      if (p[c][j] > 0) h -= p[c][j] * std::log(p[c][j]);
      if (j != c) others += p[c][j];  // 1 - p_c without the cancellation
    }
    v.confidence.push_back(p[c][c]);
    v.log_odds.push_back(std::log(p[c][c]) - std::log(others));
    v.entropy.push_back(h);
  }
  return v;
}

nlohmann::json view_json(const PrototypeView& v) {
  return {{"confidence", v.confidence}, {"log_odds", v.log_odds}, {"entropy", v.entropy}};
}

PrototypeView view_from_json(const nlohmann::json& j) {
  return {j.at("confidence").get<std::vector<double>>(), j.at("log_odds").get<std::vector<double>>(),
          j.at("entropy").get<std::vector<double>>()};
}

// The prototypes of the K classes on the source model, on its device: [K, C, H, W].
struct Prototypes {
  Tensor images;
  std::vector<double> source_confidence;
  int64_t source_queries = 0;  // images the source model processed
};

Prototypes white_box(Model& source, const InversionConfig& cfg, const InversionProgressFn& progress) {
  WhiteBoxSearch search(source, cfg);
  for (int64_t step = 1; step <= cfg.steps; ++step) {
    search.step();
    if (progress) progress(step, cfg.steps);
  }
  Prototypes out;
  out.images = search.prototypes(out.source_confidence);
  out.source_queries = search.queries();
  return out;
}

Prototypes black_box(Model& source, const InversionConfig& cfg, const InversionProgressFn& progress) {
  GeneticSearch search(source, cfg);
  for (int64_t g = 1; g <= cfg.generations; ++g) {
    search.generation(/*breed=*/g < cfg.generations);
    if (progress) progress(g, cfg.generations);
  }
  Prototypes out;
  out.images = search.prototypes(out.source_confidence);
  out.source_queries = search.queries();
  return out;
}

// The prototypes of `source` by cfg's mode.
Prototypes synthesise(Model& source, const InversionConfig& cfg, const InversionProgressFn& progress) {
  return cfg.mode == "white" ? white_box(source, cfg, progress) : black_box(source, cfg, progress);
}

// The attacker's reference model: lethe train's recipe on D_aux, cached in the work directory.
std::unique_ptr<Model> reference_model(const Model& target, const Dataset& aux, const InversionConfig& cfg,
                                       WorkCache& cache, nlohmann::json& key_out) {
  const ModelSpec& spec = target.spec();
  const TrainConfig recipe = standard_recipe(cfg.reference_epochs, cfg.seed);
  const nlohmann::json key = {{"arch", spec.arch},
                              {"shape", {spec.channels, spec.height, spec.width}},
                              {"classes", spec.num_classes},
                              {"data", data_hash(aux)},
                              {"recipe", recipe.to_json()}};
  key_out = key;
  return cache.model("reference", key, target.backend(), [&] {
    auto m = make_model(spec, target.backend(), cfg.seed);
    train(*m, aux, recipe);
    return m;
  });
}

void check_config(const Model& target, const Dataset* aux, const InversionConfig& cfg) {
  auto one_of = [](const std::vector<std::string>& names, const std::string& v) {
    return std::find(names.begin(), names.end(), v) != names.end();
  };
  if (!one_of(inversion_modes(), cfg.mode)) throw UsageError("unknown --mode '" + cfg.mode + "' (white or black)");
  if (!one_of(inversion_criteria(), cfg.criterion))
    throw UsageError("unknown --criterion '" + cfg.criterion + "' (threshold or entropy)");
  if (!one_of(inversion_sources(), cfg.source))
    throw UsageError("unknown --source '" + cfg.source + "' (target or reference)");
  const int64_t k = target.spec().num_classes;
  if (cfg.forget_count < 0 || cfg.forget_count >= k)
    throw UsageError("--forget-count must be in [1, " + std::to_string(k - 1) + "] (0: unknown)");
  if (!(cfg.tau > 0.0f && cfg.tau <= 1.0f)) throw UsageError("--tau must be in (0, 1]");
  if (cfg.restarts < 1 || cfg.steps < 1 || !(cfg.lr > 0.0f))
    throw UsageError("white-box: --restarts and --steps must be >= 1 and --lr > 0");
  if (!(cfg.tv >= 0.0f) || !(cfg.l2 >= 0.0f)) throw UsageError("white-box: --tv and --l2 must be >= 0");
  if (cfg.population < 2 || cfg.generations < 1 || cfg.elites < 0 || cfg.elites >= cfg.population ||
      cfg.tournament < 1)
    throw UsageError("black-box: --population >= 2, --generations >= 1, 0 <= --elites < population, "
                     "--tournament >= 1");
  if (!(cfg.mutation_rate >= 0.0f && cfg.mutation_rate <= 1.0f) || !(cfg.sigma >= 0.0f) ||
      !(cfg.sigma_decay > 0.0f && cfg.sigma_decay <= 1.0f) || !(cfg.blend_alpha >= 0.0f))
    throw UsageError("black-box: --mutation-rate in [0, 1], --sigma >= 0, --sigma-decay in (0, 1], "
                     "--blend-alpha >= 0");
  if (!one_of(inversion_calibrations(), cfg.calibrate))
    throw UsageError("unknown --calibrate '" + cfg.calibrate + "' (reference or none)");
  if (needs_reference(cfg)) {
    if (!aux || aux->size() == 0)
      throw UsageError("--source reference and --calibrate reference need the attacker's auxiliary data");
    if (aux->num_classes != k)
      throw UsageError("the auxiliary data has " + std::to_string(aux->num_classes) + " classes, the target " +
                       std::to_string(k));
    if (cfg.reference_epochs < 1) throw UsageError("--reference-epochs must be >= 1");
  }
}

}  // namespace

WhiteBoxSearch::WhiteBoxSearch(Model& source, const InversionConfig& cfg) : source_(source), cfg_(cfg) {
  Backend& be = source.backend();
  const ModelSpec& s = source.spec();
  const int64_t n = s.num_classes * cfg.restarts;
  x_ = Tensor::empty(s.input_shape(n), DType::F32, be.device());
  be.fill_uniform(x_, 0.0f, 1.0f, cfg.seed, kWhiteStartStream);
  std::vector<int64_t> wanted(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) wanted[static_cast<size_t>(i)] = i / cfg.restarts;  // candidate i: class i / R
  labels_ = Tensor::from_labels(wanted).to(be.device());
  m_ = Tensor::zeros(x_.shape(), DType::F32, be.device());
  v_ = Tensor::zeros(x_.shape(), DType::F32, be.device());
}

void WhiteBoxSearch::step() {
  Backend& be = source_.backend();
  const int64_t n = x_.dim(0);
  ++steps_;
  // input_gradient is of the mean cross-entropy, -mean log p_k: times N, each image's own -∇ log p_k.
  const double loss = source_.input_gradient(x_, labels_, dx_);
  if (!std::isfinite(loss)) throw InputError("white-box inversion: the loss is not finite (the model holds NaN?)");
  be.scale(dx_, static_cast<float>(n));
  be.add_image_prior_grad(x_, dx_, cfg_.tv, cfg_.l2);
  const float t = static_cast<float>(steps_);
  const kernels::AdamHyper h{cfg_.lr, 0.9f, 0.999f, 1e-8f, 0.0f, false, 1.0f - std::pow(0.9f, t),
                             std::sqrt(1.0f - std::pow(0.999f, t))};
  be.adam_step(x_, dx_, m_, v_, h);
  be.clamp(x_, 0.0f, 1.0f);
}

Tensor WhiteBoxSearch::prototypes(std::vector<double>& confidence) {
  Backend& be = source_.backend();
  const ModelSpec& s = source_.spec();
  const int64_t k = s.num_classes, r = cfg_.restarts;
  Tensor logits;
  source_.infer_logits(x_, logits);
  ++evaluations_;
  const std::vector<std::vector<double>> p = probabilities(logits);
  Tensor images = Tensor::empty(s.input_shape(k), DType::F32, be.device());
  confidence.clear();
  for (int64_t c = 0; c < k; ++c) {
    int64_t best = c * r;
    for (int64_t i = c * r + 1; i < (c + 1) * r; ++i)
      if (p[i][c] > p[best][c]) best = i;
    Tensor slot = images.rows(c, 1);
    be.copy(x_.rows(best, 1), slot);
    confidence.push_back(p[best][c]);
  }
  return images;
}

int64_t WhiteBoxSearch::queries() const { return (steps_ + evaluations_) * x_.dim(0); }

GeneticSearch::GeneticSearch(Model& source, const InversionConfig& cfg) : source_(source), cfg_(cfg) {
  Backend& be = source.backend();
  const ModelSpec& s = source.spec();
  const int64_t k = s.num_classes, members = k * cfg.population;
  const int64_t genes = s.channels * s.height * s.width;
  genomes_ = Tensor::empty({members, genes}, DType::F32, be.device());
  next_ = Tensor::empty({members, genes}, DType::F32, be.device());
  fitness_ = Tensor::empty({members}, DType::F32, be.device());
  parents_ = Tensor::empty({members, 2}, DType::I64, be.device());
  be.fill_uniform(genomes_, 0.0f, 1.0f, cfg.seed, kBlackStartStream);
  best_images_ = Tensor::empty(s.input_shape(k), DType::F32, be.device());
  best_fitness_.assign(static_cast<size_t>(k), -std::numeric_limits<double>::infinity());

  hyper_.classes = k;
  hyper_.population = cfg.population;
  hyper_.genes = genes;
  hyper_.elites = cfg.elites;
  hyper_.tournament = cfg.tournament;
  hyper_.crossover = cfg.crossover;
  hyper_.blend_alpha = cfg.blend_alpha;
  hyper_.mutation_rate = cfg.mutation_rate;
  hyper_.seed = cfg.seed;
}

void GeneticSearch::generation(bool breed) {
  Backend& be = source_.backend();
  const ModelSpec& s = source_.spec();
  const int64_t k = s.num_classes, p = cfg_.population, members = k * p;
  source_.infer_logits(genomes_.reshape(s.input_shape(members)), logits_);
  queries_ += members;
  be.ga_fitness(logits_, p, fitness_);
  const std::vector<float> fit = fitness_.to_vector();
  for (int64_t c = 0; c < k; ++c) {
    int64_t fittest = -1;
    for (int64_t i = c * p; i < (c + 1) * p; ++i)
      if (fit[i] > (fittest < 0 ? best_fitness_[c] : fit[fittest])) fittest = i;  // NaN never improves
    if (fittest < 0) continue;
    best_fitness_[c] = fit[fittest];
    Tensor slot = best_images_.rows(c, 1);
    be.copy(genomes_.rows(fittest, 1), slot);
  }
  if (breed) {
    hyper_.sigma = cfg_.sigma * std::pow(cfg_.sigma_decay, static_cast<float>(hyper_.generation));
    be.ga_next_generation(genomes_, fitness_, parents_, next_, hyper_);
    std::swap(genomes_, next_);
    ++hyper_.generation;
  }
}

Tensor GeneticSearch::prototypes(std::vector<double>& confidence) const {
  confidence.clear();
  for (double f : best_fitness_) {
    if (!std::isfinite(f)) throw InputError("black-box inversion: no finite fitness (the model holds NaN?)");
    confidence.push_back(std::exp(f));
  }
  return best_images_;
}

nlohmann::json InversionConfig::to_json() const {
  return {{"mode", mode},
          {"criterion", criterion},
          {"source", source},
          {"calibrate", calibrate},
          {"forget_count", forget_count},
          {"tau", tau},
          {"white", {{"restarts", restarts}, {"steps", steps}, {"lr", lr}, {"tv", tv}, {"l2", l2}}},
          {"black",
           {{"population", population},
            {"generations", generations},
            {"elites", elites},
            {"tournament", tournament},
            {"crossover", crossover == kernels::Crossover::Blend ? "blend" : "uniform"},
            {"blend_alpha", blend_alpha},
            {"mutation_rate", mutation_rate},
            {"sigma", sigma},
            {"sigma_decay", sigma_decay}}},
          {"reference_epochs", reference_epochs},
          {"seed", seed}};
}

const std::vector<std::string>& inversion_modes() {
  static const std::vector<std::string> names = {"white", "black"};
  return names;
}
const std::vector<std::string>& inversion_criteria() {
  static const std::vector<std::string> names = {"threshold", "entropy"};
  return names;
}
const std::vector<std::string>& inversion_sources() {
  static const std::vector<std::string> names = {"target", "reference"};
  return names;
}
const std::vector<std::string>& inversion_calibrations() {
  static const std::vector<std::string> names = {"reference", "none"};
  return names;
}

bool needs_reference(const InversionConfig& cfg) { return cfg.source == "reference" || cfg.calibrate == "reference"; }

void judge(InversionResult& result, const InversionConfig& cfg) {
  const PrototypeView& t = result.target;
  const size_t k = t.confidence.size();
  LETHE_CHECK(k > 0 && t.log_odds.size() == k && t.entropy.size() == k,
              "judge: the target's view of every prototype is needed");
  const bool calibrated = !result.baseline.confidence.empty();
  LETHE_CHECK(!calibrated || (result.baseline.log_odds.size() == k && result.baseline.entropy.size() == k),
              "judge: the baseline must view every class");
  std::vector<bool> positive(k, false);
  result.scores.clear();
  for (size_t c = 0; c < k; ++c) {
    if (cfg.criterion == "threshold") {
      result.scores.push_back((calibrated ? result.baseline.log_odds[c] : 0.0) - t.log_odds[c]);
      positive[c] = t.confidence[c] < cfg.tau;
    } else {
      result.scores.push_back(t.entropy[c] - (calibrated ? result.baseline.entropy[c] : 0.0));
    }
  }
  result.predicted = decide(result.scores, positive, cfg.forget_count);
}

InversionResult run_inversion(Model& target, const Dataset* aux, const InversionConfig& cfg,
                              const std::string& work_dir, const AttackLogFn& log,
                              const InversionProgressFn& progress) {
  const auto t0 = Clock::now();
  check_config(target, aux, cfg);
  InversionResult result;
  WorkCache cache(work_dir, result, log);
  std::unique_ptr<Model> reference;
  nlohmann::json reference_key;
  if (needs_reference(cfg)) reference = reference_model(target, *aux, cfg, cache, reference_key);
  Model& source = cfg.source == "reference" ? *reference : target;

  const Prototypes protos = synthesise(source, cfg, progress);
  result.source_confidence = protos.source_confidence;
  if (&source == &target) result.queries += protos.source_queries;
  result.target = view_of(target, protos.images);
  result.queries += target.spec().num_classes;

  if (cfg.calibrate == "reference") {
    if (cfg.source == "reference") {
      result.baseline = view_of(*reference, protos.images);  // the transfer gap: reference vs target, same images
    } else {
      // The same search on the reference model, whose every class is intact: each class's natural difficulty.
      // It depends on the search's settings and the reference only, so every target attacked with them shares it.
      nlohmann::json search = cfg.to_json();
      for (const char* field : {"criterion", "forget_count", "tau", "calibrate"}) search.erase(field);
      const nlohmann::json key = {{"reference", reference_key}, {"search", search}};
      result.baseline = view_from_json(cache.json("baseline", key, [&] {
        cache.say("baseline: the same " + cfg.mode + "-box search on the reference model");
        const Prototypes own = synthesise(*reference, cfg, {});
        return view_json(view_of(*reference, own.images));
      }));
    }
  }
  judge(result, cfg);
  result.prototypes = protos.images.to_cpu();
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace lethe::attacks
