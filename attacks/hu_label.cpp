#include "attacks/hu_label.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "kernels/ga.h"
#include "kernels/philox.h"

namespace lethe::attacks {
namespace {

using Clock = std::chrono::steady_clock;

// Philox streams: a probe's start (per try) and each step's pixel draw.
constexpr uint64_t kStartTag = 0x5a4f4f53;  // "ZOOS"
constexpr uint64_t kCoordTag = 0x5a4f4f43;  // "ZOOC"

// The model's probability of each row's class, in eval mode, in double from the logits (unlearning moves the
// confidence of a 0.9995-sure probe by less than float's resolution near 1). images: [N, C, H, W] on the model's
// device.
std::vector<double> class_confidence(Model& model, const Tensor& images, const std::vector<int64_t>& labels,
                                     Tensor& logits) {
  model.infer_logits(images, logits);
  const std::vector<float> z = logits.to_vector();
  const int64_t k = logits.dim(1);
  std::vector<double> out(labels.size());
  for (size_t m = 0; m < labels.size(); ++m)
    out[m] = std::exp(kernels::zoo_log_prob(&z[m * static_cast<size_t>(k)], k, labels[m]));
  return out;
}

void check_config(const ZooProbeConfig& c) {
  if (c.probes_per_class < 1 || c.iterations < 1 || c.tries < 1 || c.coordinates < 1 || c.max_batch < 2)
    throw UsageError("ZOO: probes per class, iterations, tries and coordinates must be >= 1");
  if (!(c.zoo.h > 0) || !(c.lr > 0) || !(c.lr_confident > 0))
    throw UsageError("ZOO: h and the learning rates must be positive");
  if (!(c.accept > 0 && c.accept <= 1) || !(c.confident_at >= 0 && c.confident_at <= 1))
    throw UsageError("ZOO: the acceptance and rate-drop confidences must be in (0, 1]");
}

}  // namespace

nlohmann::json ZooProbeConfig::to_json() const {
  return {{"probes_per_class", probes_per_class}, {"iterations", iterations}, {"tries", tries},
          {"coordinates", coordinates}, {"h", zoo.h}, {"beta1", zoo.beta1}, {"beta2", zoo.beta2},
          {"eps", zoo.eps}, {"lr", lr}, {"lr_confident", lr_confident}, {"confident_at", confident_at},
          {"accept", accept}, {"seed", seed}};
}

int64_t Probes::accepted_count() const { return std::count(accepted.begin(), accepted.end(), true); }

nlohmann::json Probes::to_json() const {
  return {{"shape", images.shape()}, {"images", images.to_vector()}, {"labels", labels},
          {"confidence", confidence}, {"tries", tries}, {"accepted", accepted}, {"queries", queries},
          {"seconds", seconds}};
}

Probes probes_from_json(const nlohmann::json& j) {
  Probes p;
  const Shape shape = j.at("shape").get<Shape>();
  const std::vector<float> pixels = j.at("images").get<std::vector<float>>();
  LETHE_CHECK(shape.size() == 4 && shape_numel(shape) == static_cast<int64_t>(pixels.size()),
              "cached probes: the images do not match their shape");
  p.images = Tensor::from_vector(pixels, shape);
  p.labels = j.at("labels").get<std::vector<int64_t>>();
  p.confidence = j.at("confidence").get<std::vector<double>>();
  p.tries = j.at("tries").get<std::vector<int64_t>>();
  p.accepted = j.at("accepted").get<std::vector<bool>>();
  p.queries = j.at("queries").get<int64_t>();
  p.seconds = j.at("seconds").get<double>();
  const size_t n = static_cast<size_t>(shape[0]);
  LETHE_CHECK(p.labels.size() == n && p.confidence.size() == n && p.tries.size() == n && p.accepted.size() == n,
              "cached probes: one label, confidence, try count and flag per probe");
  return p;
}

void draw_coordinates(int64_t pixels, int64_t count, uint64_t seed, uint64_t step, int64_t probe, int64_t* out,
                      std::vector<int64_t>& scratch) {
  scratch.resize(static_cast<size_t>(pixels));
  std::iota(scratch.begin(), scratch.end(), int64_t{0});
  if (count < pixels) {
    const uint64_t stream = (kCoordTag << 32) + step;
    for (int64_t j = 0; j < count; ++j) {
      const uint32_t bits = kernels::philox_word(seed, stream, static_cast<uint64_t>(probe * count + j));
      std::swap(scratch[static_cast<size_t>(j)], scratch[static_cast<size_t>(j + kernels::ga_index(bits, pixels - j))]);
    }
  }
  std::copy(scratch.begin(), scratch.begin() + count, out);
}

Probes make_probes(Model& original, const ZooProbeConfig& cfg, const ZooProgressFn& progress) {
  check_config(cfg);
  const auto t0 = Clock::now();
  Backend& be = original.backend();
  const Device dev = be.device();
  const ModelSpec& spec = original.spec();
  const int64_t classes = spec.num_classes, per_class = cfg.probes_per_class, probes = classes * per_class;
  const int64_t pixels = spec.channels * spec.height * spec.width;
  const int64_t coords_per_probe = std::min(cfg.coordinates, pixels);
  const int64_t queries_per_probe = 2 * coords_per_probe;
  const int64_t probes_per_forward = std::max<int64_t>(1, cfg.max_batch / queries_per_probe);

  Probes out;
  out.labels.resize(static_cast<size_t>(probes));
  for (int64_t m = 0; m < probes; ++m) out.labels[static_cast<size_t>(m)] = m / per_class;
  out.tries.assign(static_cast<size_t>(probes), 0);
  out.accepted.assign(static_cast<size_t>(probes), false);

  Tensor x = Tensor::empty({probes, pixels}, DType::F32, dev);
  const Tensor images = x.reshape(spec.input_shape(probes));
  Tensor state = Tensor::empty({kernels::kZooStatePlanes, probes, pixels}, DType::F32, dev);
  const Tensor state_rows = state.reshape({kernels::kZooStatePlanes * probes, pixels});
  const Tensor labels = Tensor::from_labels(out.labels).to(dev);
  Tensor queries, query_logits, logits;
  std::vector<double> confidence(static_cast<size_t>(probes), 0.0);
  std::vector<int64_t> host_coords, scratch;
  std::vector<float> rates(static_cast<size_t>(probes));
  uint64_t step = 0;
  const int64_t total_steps = cfg.tries * cfg.iterations;

  for (int64_t attempt = 0; attempt < cfg.tries; ++attempt) {
    std::vector<int64_t> active;
    for (int64_t m = 0; m < probes; ++m)
      if (!out.accepted[static_cast<size_t>(m)]) active.push_back(m);
    if (active.empty()) break;
    // A fresh start for every probe still pending: clip(N(0, 1), 0, 1), Adam's moments 0, its powers 1.
    for (const int64_t m : active) {
      Tensor row = x.rows(m, 1);
      be.fill_normal(row, 0.0f, 1.0f, cfg.seed, (kStartTag << 32) + static_cast<uint64_t>(attempt * probes + m));
      be.clamp(row, 0.0f, 1.0f);
      for (int64_t plane = 0; plane < kernels::kZooStatePlanes; ++plane) {
        Tensor s = state_rows.rows(plane * probes + m, 1);
        be.fill(s, plane < 2 ? 0.0f : 1.0f);
      }
      ++out.tries[static_cast<size_t>(m)];
    }
    confidence = class_confidence(original, images, out.labels, logits);
    out.queries += static_cast<int64_t>(active.size());

    for (int64_t it = 0; it < cfg.iterations && !active.empty(); ++it, ++step) {
      for (const int64_t m : active)
        rates[static_cast<size_t>(m)] = confidence[static_cast<size_t>(m)] > cfg.confident_at ? cfg.lr_confident
                                                                                                : cfg.lr;
      const Tensor lr = Tensor::from_vector(rates, {probes}).to(dev);
      // Whole probes per forward: each probe's 2S queries are one batch.
      for (size_t first = 0; first < active.size(); first += static_cast<size_t>(probes_per_forward)) {
        const int64_t count = std::min<int64_t>(probes_per_forward, static_cast<int64_t>(active.size() - first));
        const std::vector<int64_t> rows_host(active.begin() + static_cast<std::ptrdiff_t>(first),
                                             active.begin() + static_cast<std::ptrdiff_t>(first + count));
        host_coords.resize(static_cast<size_t>(count * coords_per_probe));
        for (int64_t a = 0; a < count; ++a)
          draw_coordinates(pixels, coords_per_probe, cfg.seed, step, rows_host[static_cast<size_t>(a)],
                           host_coords.data() + a * coords_per_probe, scratch);
        const Tensor rows = Tensor::from_labels(rows_host).to(dev);
        Tensor coords_cpu = Tensor::empty({count, coords_per_probe}, DType::I64);
        std::copy(host_coords.begin(), host_coords.end(), coords_cpu.i64());
        const Tensor coords = coords_cpu.to(dev);
        Tensor::ensure(queries, {count * queries_per_probe, pixels}, DType::F32, dev);
        be.zoo_queries(x, rows, coords, cfg.zoo.h, queries);
        original.infer_logits(queries.reshape(spec.input_shape(count * queries_per_probe)), query_logits);
        be.zoo_step(x, rows, coords, query_logits, labels, lr, state, cfg.zoo);
        out.queries += count * queries_per_probe;
      }
      confidence = class_confidence(original, images, out.labels, logits);
      out.queries += static_cast<int64_t>(active.size());
      std::vector<int64_t> still;
      for (const int64_t m : active) {
        const double c = confidence[static_cast<size_t>(m)];
        LETHE_CHECK(c == c, "ZOO: the model's confidence on a probe is NaN");
        if (c >= cfg.accept)
          out.accepted[static_cast<size_t>(m)] = true;
        else
          still.push_back(m);
      }
      active.swap(still);
      if (progress) progress(static_cast<int64_t>(step) + 1, total_steps, out.accepted_count(), out.queries);
    }
  }
  out.images = images.to_cpu();
  out.confidence = confidence;
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

const std::vector<std::string>& label_decisions() {
  static const std::vector<std::string> names = {"probability", "log-odds"};
  return names;
}

nlohmann::json LabelInferenceResult::to_json() const {
  return {{"predicted", predicted}, {"delta", delta}, {"delta_log_odds", delta_log_odds}, {"queries", queries},
          {"decision_queries", decision_queries}};
}

LabelInferenceResult infer_unlearned_labels(Model& original, Model& unlearned, const Probes& probes,
                                            int64_t forget_count, const std::string& decision) {
  const int64_t classes = original.spec().num_classes;
  LETHE_CHECK(unlearned.spec().num_classes == classes, "label inference: the two models' class counts differ");
  if (forget_count < 1 || forget_count >= classes)
    throw UsageError("label inference: the forget count must be in [1, " + std::to_string(classes - 1) + "]");
  if (std::find(label_decisions().begin(), label_decisions().end(), decision) == label_decisions().end())
    throw UsageError("label inference: unknown decision '" + decision + "' (probability or log-odds)");
  const Tensor images = probes.images.to(original.backend().device());
  Tensor logits;
  const std::vector<double> before = class_confidence(original, images, probes.labels, logits);
  const std::vector<double> after = class_confidence(unlearned, images, probes.labels, logits);
  // log(p / (1 - p)), with 1 - p floored at double's resolution so a probe at p = 1 stays finite.
  const auto log_odds = [](double p) { return std::log(p) - std::log(std::max(1.0 - p, 1e-16)); };
  LabelInferenceResult r;
  r.delta.assign(static_cast<size_t>(classes), 0.0);
  r.delta_log_odds.assign(static_cast<size_t>(classes), 0.0);
  std::vector<int64_t> count(static_cast<size_t>(classes), 0);
  for (size_t m = 0; m < probes.labels.size(); ++m) {
    const size_t k = static_cast<size_t>(probes.labels[m]);
    r.delta[k] += after[m] - before[m];
    r.delta_log_odds[k] += log_odds(after[m]) - log_odds(before[m]);
    ++count[k];
  }
  for (size_t k = 0; k < r.delta.size(); ++k) {
    LETHE_CHECK(count[k] > 0, "label inference: class " + std::to_string(k) + " has no probe");
    r.delta[k] /= static_cast<double>(count[k]);
    r.delta_log_odds[k] /= static_cast<double>(count[k]);
    LETHE_CHECK(r.delta[k] == r.delta[k] && r.delta_log_odds[k] == r.delta_log_odds[k],
                "label inference: a probability is NaN");
  }
  const std::vector<double>& score = decision == "log-odds" ? r.delta_log_odds : r.delta;
  std::vector<int64_t> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return score[static_cast<size_t>(a)] < score[static_cast<size_t>(b)];
  });
  r.predicted.assign(order.begin(), order.begin() + forget_count);
  r.decision_queries = 2 * static_cast<int64_t>(probes.labels.size());
  r.queries = probes.queries + r.decision_queries;
  return r;
}

Probes cached_probes(Model& original, const ZooProbeConfig& cfg, WorkCache& cache, bool* cached,
                     const ZooProgressFn& progress) {
  bool built = false;
  const nlohmann::json key = {{"v", 1}, {"model", model_hash(original)}, {"zoo", cfg.to_json()}};
  const nlohmann::json j = cache.json("hu-probes", key, [&] {
    built = true;
    return make_probes(original, cfg, progress).to_json();
  });
  if (cached) *cached = !built;
  return probes_from_json(j);
}

}  // namespace lethe::attacks
