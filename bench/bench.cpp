// lethe_bench: the three LeNet-5 workloads that bench/peer_pytorch.py runs in PyTorch, on the same data and thread
// count: a training epoch (images/s), batch-1024 inference (images/s) and input-gradient steps (steps/s); and the
// fused parameter comparison (Backend::compare_params, GB/s) of 16 aux vectors against a ResNet-18-sized target, next
// to this machine's streaming-read bandwidth measured in the same run; and the inversion attacks' inner loops, the
// attack's own code (attacks/invert.h): a white-box step over 10 prototypes (steps/s) and one generation of the
// genetic algorithm, K = 10 populations of P = 1024 (images/s, next to inference alone on the same batch); and one
// ZOO step of Hu et al.'s label-inference probe making (attacks/hu_label.h) over 10 probes, S = 784 coordinates
// each: the 15,680 query images, their batched forward and the coordinate-Adam update (images/s, each image a query).
// Each workload warms up, then reports the median of several timed repetitions.
//
//   lethe_bench [--threads N] [--json] [--only train|infer|inputgrad|compare|invert|ga|zoo] [--profile]
//
// --profile times each layer's forward and backward separately (plus normalisation, loss and optimizer) for one
// batch of each workload, to show where the time goes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "attacks/hu_label.h"
#include "attacks/invert.h"
#include "datasets/registry.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/trainer.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/zoo.h"
#include "bench/guarded_main.h"
#include "nets/nets.h"

namespace {

using namespace lethe;
using Clock = std::chrono::steady_clock;

constexpr float kMean = 0.2860f, kStd = 0.3530f;
constexpr int64_t kTrainBatch = 128, kInferBatch = 1024;
constexpr float kLr = 0.05f, kMomentum = 0.9f;
constexpr float kGradStep = 0.1f;
constexpr int kGradSteps = 200, kGradWarmupSteps = 20;
constexpr int64_t kSyntheticImages = 60000;

struct Options {
  int threads = 0;
  bool json = false;
  bool profile = false;
  std::string only;  // empty: every workload
};

Options parse_args(int argc, char** argv) {
  Options opt;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  opt.threads = cores > 0 ? cores : 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 1 || n > 1024)
        throw UsageError("--threads must be an integer in [1, 1024], got '" + v + "'");
      opt.threads = static_cast<int>(n);
    } else if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--profile") {
      opt.profile = true;
    } else if (arg == "--only") {
      opt.only = value();
      if (opt.only != "train" && opt.only != "infer" && opt.only != "inputgrad" && opt.only != "compare" &&
          opt.only != "invert" && opt.only != "ga" && opt.only != "zoo")
        throw UsageError("--only takes train, infer, inputgrad, compare, invert, ga or zoo, got '" + opt.only + "'");
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: lethe_bench [--threads N] [--json] [--only train|infer|inputgrad|compare|invert|ga|zoo] "
                   "[--profile]\n";
      std::exit(0);
    } else {
      throw UsageError("unknown argument '" + arg + "' (try --help)");
    }
  }
  return opt;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---------------------------------------------------------------- data

struct BenchData {
  Dataset data;
  std::string description;
};

// Seeded stand-in for Fashion-MNIST, element for element the same as peer_pytorch.py's synthetic_data().
Dataset synthetic_data() {
  Dataset d;
  d.name = "synthetic";
  d.source = "synthetic";
  d.images = Tensor::empty({kSyntheticImages, 1, 28, 28});
  float* px = d.images.f32();
  for (int64_t i = 0; i < d.images.numel(); ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) * 2654435761ull + 12345ull) & 0xFFFFFFFFull;
    px[i] = static_cast<float>(h >> 24) / 255.0f;
  }
  std::vector<int64_t> labels(kSyntheticImages);
  for (int64_t i = 0; i < kSyntheticImages; ++i) labels[i] = i % 10;
  d.labels = Tensor::from_labels(labels);
  d.num_classes = 10;
  d.mean = {kMean};
  d.std = {kStd};
  return d;
}

BenchData load_bench_data() {
  try {
    Dataset d = load_dataset(parse_data_ref("fashion-mnist"), Split::Train);
    const std::string where = d.source;
    return {std::move(d), "fashion-mnist train (" + where + ")"};
  } catch (const InputError& e) {
    std::cerr << "lethe_bench: Fashion-MNIST unavailable, using seeded synthetic data instead:\n  " << e.what()
              << "\n";
    return {synthetic_data(), "synthetic (seeded; Fashion-MNIST not found)"};
  }
}

std::unique_ptr<Model> make_lenet(Backend& be) {
  ModelSpec spec;
  spec.arch = "lenet5";
  spec.channels = 1;
  spec.height = 28;
  spec.width = 28;
  spec.num_classes = 10;
  spec.mean = {kMean};
  spec.std = {kStd};
  return make_model(spec, be, /*seed=*/0);
}

TrainConfig train_config(uint64_t seed) {
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch = kTrainBatch;
  cfg.optim.kind = "sgd";
  cfg.optim.lr = kLr;
  cfg.optim.momentum = kMomentum;
  cfg.shuffle = true;
  cfg.seed = seed;
  return cfg;
}

// The first image of each class 0..9, as [10, 1, 28, 28], and labels 0..9.
void first_of_each_class(const Dataset& d, Tensor& x, Tensor& labels) {
  const int64_t classes = 10, pixels = d.channels() * d.height() * d.width();
  x = Tensor::empty({classes, d.channels(), d.height(), d.width()});
  std::vector<int64_t> label_values(classes);
  const int64_t* y = d.labels.i64();
  for (int64_t k = 0; k < classes; ++k) {
    const int64_t* hit = std::find(y, y + d.size(), k);
    if (hit == y + d.size()) throw InputError(d.source + ": no training image of class " + std::to_string(k));
    std::copy_n(d.images.f32() + (hit - y) * pixels, pixels, x.f32() + k * pixels);
    label_values[k] = k;
  }
  labels = Tensor::from_labels(label_values);
}

// x <- clamp(x - step * dx, 0, 1): the projected gradient step of an inversion attack.
void descend_clamped(Backend& be, Tensor& x, const Tensor& dx) {
  be.axpy(-kGradStep, dx, x);
  float* p = x.f32();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = std::clamp(p[i], 0.0f, 1.0f);
}

// ---------------------------------------------------------------- workloads

struct Result {
  std::string workload, metric;
  std::vector<double> runs;
  std::vector<std::pair<std::string, double>> extra = {};  // further numbers for the JSON record
};

Result bench_train(Model& model, const Dataset& data) {
  train(model, data, train_config(0));  // warm-up epoch
  Result r{"train", "images/s", {}};
  for (uint64_t rep = 1; rep <= 3; ++rep) {
    const auto t0 = Clock::now();
    train(model, data, train_config(rep));
    r.runs.push_back(static_cast<double>(data.size()) / seconds_since(t0));
  }
  return r;
}

Result bench_infer(Model& model, const Dataset& data) {
  const Tensor x = data.images.rows(0, kInferBatch);
  Tensor logits;
  Result r{"infer", "images/s", {}};
  for (int rep = 0; rep < 3 + 20; ++rep) {
    const auto t0 = Clock::now();
    model.infer_logits(x, logits);
    const double s = seconds_since(t0);
    if (rep >= 3) r.runs.push_back(static_cast<double>(kInferBatch) / s);
  }
  return r;
}

void input_gradient_steps(Model& model, const Tensor& x0, const Tensor& labels, int steps) {
  Tensor x = x0.clone(), dx;
  for (int s = 0; s < steps; ++s) {
    model.input_gradient(x, labels, dx);
    descend_clamped(model.backend(), x, dx);
  }
}

Result bench_inputgrad(Model& model, const Dataset& data) {
  Tensor x0, labels;
  first_of_each_class(data, x0, labels);
  input_gradient_steps(model, x0, labels, kGradWarmupSteps);
  Result r{"inputgrad", "steps/s", {}};
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    input_gradient_steps(model, x0, labels, kGradSteps);
    r.runs.push_back(kGradSteps / seconds_since(t0));
  }
  return r;
}

// ---------------------------------------------------------------- inversion attacks

constexpr int kInvertSteps = 200, kInvertWarmupSteps = 20;
constexpr int64_t kGaPopulation = 1024;
constexpr int kGaGenerations = 10;

// White-box inversion steps over 10 prototypes (one per class, R = 1): each step one batched forward and backward,
// the TV + L2 prior, Adam on the pixels and the box, as `lethe attack invert` runs them.
Result bench_invert(Model& model) {
  attacks::InversionConfig cfg;
  cfg.restarts = 1;
  attacks::WhiteBoxSearch search(model, cfg);
  for (int s = 0; s < kInvertWarmupSteps; ++s) search.step();
  Result r{"invert", "steps/s", {}};
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    for (int s = 0; s < kInvertSteps; ++s) search.step();
    r.runs.push_back(kInvertSteps / seconds_since(t0));
  }
  return r;
}

// Generations of the black-box GA, K = 10 classes x P = 1024: the batched query of the K·P genomes, fitness, each
// class's best, selection, crossover and mutation. Also inference alone on a batch of the same size, to show what
// the GA's own operators add.
Result bench_ga(Model& model) {
  attacks::InversionConfig cfg;
  cfg.population = kGaPopulation;
  attacks::GeneticSearch search(model, cfg);
  const int64_t images = model.spec().num_classes * kGaPopulation;
  search.generation();  // warm-up
  Result r{"ga", "images/s", {}};
  for (int rep = 0; rep < kGaGenerations; ++rep) {
    const auto t0 = Clock::now();
    search.generation();
    r.runs.push_back(static_cast<double>(images) / seconds_since(t0));
  }
  Tensor x = Tensor::empty(model.spec().input_shape(images)), logits;
  model.backend().fill_uniform(x, 0.0f, 1.0f, 7, 0);
  std::vector<double> infer;
  for (int rep = 0; rep < 1 + kGaGenerations; ++rep) {
    const auto t0 = Clock::now();
    model.infer_logits(x, logits);
    if (rep > 0) infer.push_back(static_cast<double>(images) / seconds_since(t0));
  }
  r.extra = {{"batch", static_cast<double>(images)},
             {"infer_images_per_s", median(infer)},
             {"ms_per_generation", 1e3 * static_cast<double>(images) / median(r.runs)}};
  return r;
}

// ---------------------------------------------------------------- ZOO label-inference probes

// Hu et al.'s settings as attacks::ZooProbeConfig has them: S = 1024 coordinates (capped at the image's pixels, as
// make_probes caps them), h = 1e-4 and Adam's constants from kernels::ZooHyper, lr 0.1; one probe per class.
constexpr int64_t kZooCoordinates = 1024;
constexpr float kZooLr = 0.1f;
constexpr int kZooSteps = 5;
constexpr uint64_t kZooSeed = 0;

// ZOO steps of make_probes over one probe per class, every probe active: per step the coordinate draw, the 2S query
// images of every probe (Backend::zoo_queries), one batched forward of all of them and the coordinate-Adam update
// (Backend::zoo_step). The acceptance check make_probes runs after each step (a forward of the 10 probes) is left
// out. images/s = queries/s = 10·2S / (time of one step); the extras split a step into its three parts.
Result bench_zoo(Model& model) {
  Backend& be = model.backend();
  const ModelSpec& spec = model.spec();
  const int64_t probes = spec.num_classes, pixels = spec.channels * spec.height * spec.width;
  const int64_t coords_per_probe = std::min(kZooCoordinates, pixels);
  const int64_t query_rows = probes * 2 * coords_per_probe;
  std::vector<int64_t> probe_ids(static_cast<size_t>(probes));
  std::iota(probe_ids.begin(), probe_ids.end(), int64_t{0});
  const Tensor rows = Tensor::from_labels(probe_ids), labels = rows;  // probe m targets class m

  // Fresh starts as the attack draws them: clip(N(0, 1), 0, 1), Adam's moments 0 and its bias-correction powers 1.
  Tensor x = Tensor::empty({probes, pixels});
  be.fill_normal(x, 0.0f, 1.0f, kZooSeed, 0);
  be.clamp(x, 0.0f, 1.0f);
  Tensor state = Tensor::empty({kernels::kZooStatePlanes, probes, pixels});
  const Tensor state_rows = state.reshape({kernels::kZooStatePlanes * probes, pixels});
  Tensor moments = state_rows.rows(0, 2 * probes), powers = state_rows.rows(2 * probes, 2 * probes);
  be.fill(moments, 0.0f);
  be.fill(powers, 1.0f);
  const Tensor lr = Tensor::full({probes}, kZooLr);
  const kernels::ZooHyper hyper;

  Tensor coords = Tensor::empty({probes, coords_per_probe}, DType::I64);
  Tensor queries = Tensor::empty({query_rows, pixels}), logits;
  std::vector<int64_t> scratch;
  std::vector<double> build_ms, forward_ms, update_ms;
  Result r{"zoo", "images/s", {}};  // images = queries shown to the model
  for (int step = 0; step < 1 + kZooSteps; ++step) {  // step 0 warms up
    const auto t0 = Clock::now();
    for (int64_t m = 0; m < probes; ++m)
      attacks::draw_coordinates(pixels, coords_per_probe, kZooSeed, static_cast<uint64_t>(step), m,
                                coords.i64() + m * coords_per_probe, scratch);
    be.zoo_queries(x, rows, coords, hyper.h, queries);
    const auto t1 = Clock::now();
    model.infer_logits(queries.reshape(spec.input_shape(query_rows)), logits);
    const auto t2 = Clock::now();
    be.zoo_step(x, rows, coords, logits, labels, lr, state, hyper);
    const auto t3 = Clock::now();
    if (step == 0) continue;
    r.runs.push_back(static_cast<double>(query_rows) / std::chrono::duration<double>(t3 - t0).count());
    build_ms.push_back(1e3 * std::chrono::duration<double>(t1 - t0).count());
    forward_ms.push_back(1e3 * std::chrono::duration<double>(t2 - t1).count());
    update_ms.push_back(1e3 * std::chrono::duration<double>(t3 - t2).count());
  }
  const double med = median(r.runs);
  r.extra = {{"probes", static_cast<double>(probes)},
             {"coordinates", static_cast<double>(coords_per_probe)},
             {"queries_per_step", static_cast<double>(query_rows)},
             {"steps_per_s", med / static_cast<double>(query_rows)},
             {"ms_per_step", 1e3 * static_cast<double>(query_rows) / med},
             {"build_ms", median(build_ms)},
             {"forward_ms", median(forward_ms)},
             {"update_ms", median(update_ms)}};
  return r;
}

// ---------------------------------------------------------------- fused parameter comparison

// 16 aux vectors against a target of ResNet-18's size (CIFAR stem, 10 classes): 11,173,962 floats.
constexpr int64_t kCompareAux = 16;
constexpr int kCompareReps = 7;

// ResNet-18's parameter tensors in order (conv weights, BatchNorm pairs, the classifier): the per-layer segments.
std::vector<int64_t> resnet18_bounds() {
  std::vector<int64_t> sizes = {64 * 3 * 9, 64, 64};
  int64_t in = 64;
  for (int64_t width : {64, 128, 256, 512})
    for (int block = 0; block < 2; ++block) {
      sizes.insert(sizes.end(), {in * width * 9, width, width, width * width * 9, width, width});
      if (block == 0 && width != 64) sizes.insert(sizes.end(), {in * width, width, width});
      in = width;
    }
  sizes.insert(sizes.end(), {512 * 10, 10});
  std::vector<int64_t> bounds = {0};
  for (int64_t s : sizes) bounds.push_back(bounds.back() + s);
  return bounds;
}

// This machine's streaming-read bandwidth in GB/s: a vectorised OpenMP sum over 1 GiB (far beyond the caches),
// median of several passes.
Result bench_stream(int threads) {
  const int64_t n = int64_t(1) << 28;  // floats: 1 GiB
  std::vector<float> buf(static_cast<size_t>(n));  // value-initialised; the pages are touched again below in parallel
  float* p = buf.data();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i & 1023) * 1e-3f;
  Result r{"stream", "GB/s", {}};
  volatile float sink = 0;
  for (int rep = 0; rep < 1 + kCompareReps; ++rep) {
    const auto t0 = Clock::now();
    float total = 0;
    // Each thread sums its contiguous share in 64 float lanes (no add-latency bound), like the comparison's split.
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      int64_t lo = 0, hi = 0;
      kernels::cpu::split_range(n / 64, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
      alignas(64) float lanes[64] = {};
      for (int64_t i = lo * 64; i < hi * 64; i += 64) {
#pragma omp simd
        for (int l = 0; l < 64; ++l) lanes[l] += p[i + l];
      }
      for (float v : lanes) total += v;
    }
    const double s = seconds_since(t0);
    sink = sink + total;
    if (rep > 0) r.runs.push_back(static_cast<double>(n) * sizeof(float) / s / 1e9);
  }
  return r;
}

// compare_params over N = 16 aux vectors and the whole target (one segment) or ResNet-18's 62 layer segments.
// Bytes read: (N + 1)·P·4.
Result bench_compare(Backend& be, bool layers, double stream_gbs) {
  const std::vector<int64_t> layer_bounds = resnet18_bounds();
  const int64_t p = layer_bounds.back(), ld = kernels::compare_row_stride(p);
  const std::vector<int64_t> bounds = layers ? layer_bounds : std::vector<int64_t>{0, p};
  Tensor target = Tensor::empty({p}), aux = Tensor::empty({kCompareAux, ld});
  be.fill_uniform(target, -0.1f, 0.1f, 1, 0);
  be.fill_uniform(aux, -0.1f, 0.1f, 2, 0);
  Result r{layers ? "compare_layers" : "compare", "GB/s", {}};
  const double bytes = static_cast<double>(kCompareAux + 1) * static_cast<double>(p) * sizeof(float);
  double checksum = 0;
  for (int rep = 0; rep < 1 + kCompareReps; ++rep) {
    const auto t0 = Clock::now();
    const std::vector<kernels::SegmentStats> stats = be.compare_params(target, aux, bounds);
    const double s = seconds_since(t0);
    checksum += stats.front().dot;
    if (rep > 0) r.runs.push_back(bytes / s / 1e9);
  }
  if (!std::isfinite(checksum)) throw Error(ExitCode::Other, "compare_params returned a non-finite result");
  const double med = median(r.runs);
  r.extra = {{"segments", static_cast<double>(bounds.size() - 1)},
             {"aux", static_cast<double>(kCompareAux)},
             {"params", static_cast<double>(p)},
             {"ms", 1e3 * bytes / (med * 1e9)},
             {"stream_gbs", stream_gbs},
             {"fraction_of_stream", med / stream_gbs}};
  return r;
}

void emit(const Result& r, const Options& opt, const std::string& data) {
  const double med = median(r.runs);
  if (opt.json) {
    nlohmann::json j = {{"impl", "lethe"}, {"version", LETHE_VERSION}, {"workload", r.workload},
                        {"metric", r.metric}, {"median", med},      {"runs", r.runs},
                        {"threads", opt.threads}, {"data", data}};
    for (const auto& [key, value] : r.extra) j[key] = value;
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("lethe   %-10s %12.1f %s  (runs:", r.workload.c_str(), med, r.metric.c_str());
    for (size_t i = 0; i < r.runs.size(); ++i) std::printf("%s %.1f", i ? "," : "", r.runs[i]);
    std::printf(")");
    for (const auto& [key, value] : r.extra) std::printf(" %s=%.3g", key.c_str(), value);
    std::printf("\n");
    std::fflush(stdout);
  }
}

// ---------------------------------------------------------------- per-layer profile

// The leaf layers of a Sequential tree, in execution order (LeNet-5 is one flat Sequential).
void collect_leaves(Sequential& seq, std::vector<Layer*>& out) {
  for (size_t i = 0; i < seq.size(); ++i) {
    Layer& child = seq.child(i);
    if (auto* inner = dynamic_cast<Sequential*>(&child)) {
      collect_leaves(*inner, out);
    } else {
      out.push_back(&child);
    }
  }
}

// Accumulates milliseconds per named phase, keeping first-seen order for the report.
class PhaseTimer {
 public:
  template <class F>
  void time(const std::string& phase, F&& f) {
    const auto t0 = Clock::now();
    f();
    const double ms = 1e3 * seconds_since(t0);
    auto it = std::find_if(phases_.begin(), phases_.end(), [&](const auto& p) { return p.first == phase; });
    if (it == phases_.end()) {
      phases_.emplace_back(phase, ms);
    } else {
      it->second += ms;
    }
  }
  void report(const std::string& title, int reps) const {
    double total = 0;
    for (const auto& p : phases_) total += p.second;
    std::printf("== %s: %.3f ms per pass (mean of %d)\n", title.c_str(), total / reps, reps);
    for (const auto& p : phases_)
      std::printf("   %-24s %9.3f ms %5.1f%%\n", p.first.c_str(), p.second / reps, 100.0 * p.second / total);
  }

 private:
  std::vector<std::pair<std::string, double>> phases_;
};

std::string layer_label(size_t i, const Layer& layer) { return std::to_string(i) + ":" + layer.kind(); }

// Buffers kept across passes, as Model keeps its own, so the profile does not time page faults.
struct ProfileScratch {
  Tensor mean = Tensor::full({1}, kMean), inv_std = Tensor::full({1}, 1.0f / kStd);
  Tensor x_norm, dx_pixels;
  SoftmaxCrossEntropy loss;
};

// One pass = normalise, forward through each leaf, loss, backward through each leaf in reverse (+ optimizer step when
// training). Mirrors what Model::forward/backward do, with a stopwatch around each piece.
void profile_pass(Model& model, const Tensor& x, const Tensor& labels, bool train, bool param_grads,
                  bool need_input_grad, Optimizer* optimizer, ProfileScratch& scratch, PhaseTimer& timer) {
  Backend& be = model.backend();
  const Tensor& mean = scratch.mean;
  const Tensor& inv_std = scratch.inv_std;
  Tensor::ensure(scratch.x_norm, x.shape());
  Tensor::ensure(scratch.dx_pixels, x.shape());
  Tensor& x_norm = scratch.x_norm;
  Tensor& dx_pixels = scratch.dx_pixels;
  std::vector<Layer*> layers;
  collect_leaves(model.net(), layers);
  const bool backward = labels.defined();
  const Pass pass{&be, train, /*keep=*/backward, param_grads};

  timer.time("normalize", [&] { be.normalize_forward(x, mean, inv_std, x_norm); });
  const Tensor* h = &x_norm;
  for (size_t i = 0; i < layers.size(); ++i)
    timer.time("fwd " + layer_label(i, *layers[i]), [&] { h = &layers[i]->forward(*h, pass); });
  if (!backward) return;

  SoftmaxCrossEntropy& loss = scratch.loss;
  const Tensor* dy = nullptr;
  timer.time("loss fwd+bwd", [&] {
    loss.forward(be, *h, labels);
    dy = &loss.backward(be, labels);
  });
  if (param_grads) timer.time("zero_grad", [&] { model.arena().zero_grad(be); });
  for (size_t i = layers.size(); i-- > 0;) {
    const bool need_dx = i > 0 || need_input_grad;
    timer.time("bwd " + layer_label(i, *layers[i]), [&] { dy = &layers[i]->backward(*dy, pass, need_dx); });
  }
  if (need_input_grad) timer.time("normalize bwd", [&] { be.normalize_backward(*dy, inv_std, dx_pixels); });
  if (optimizer) timer.time("sgd step", [&] { optimizer->step(kLr); });
}

void run_profile(Model& model, const Dataset& data) {
  Backend& be = model.backend();
  {
    const Tensor x = data.images.rows(0, kTrainBatch), y = data.labels.rows(0, kTrainBatch);
    auto optimizer = make_optimizer(train_config(0).optim, model.arena(), be);
    PhaseTimer warm, timer;
    ProfileScratch scratch;
    profile_pass(model, x, y, true, true, false, optimizer.get(), scratch, warm);
    const int reps = 50;
    for (int r = 0; r < reps; ++r) profile_pass(model, x, y, true, true, false, optimizer.get(), scratch, timer);
    timer.report("train step, batch 128", reps);
    // The same steps through the real trainer, for the overhead outside the layers (batch gathering, metrics).
    const auto t0 = Clock::now();
    train(model, data, train_config(0));
    const double batches = static_cast<double>((data.size() + kTrainBatch - 1) / kTrainBatch);
    std::printf("   (trainer: %.3f ms per batch over a full epoch)\n", 1e3 * seconds_since(t0) / batches);
  }
  {
    const Tensor x = data.images.rows(0, kInferBatch);
    PhaseTimer warm, timer;
    ProfileScratch scratch;
    profile_pass(model, x, Tensor(), false, false, false, nullptr, scratch, warm);
    const int reps = 20;
    for (int r = 0; r < reps; ++r) profile_pass(model, x, Tensor(), false, false, false, nullptr, scratch, timer);
    timer.report("inference, batch 1024", reps);
    Tensor logits;
    model.infer_logits(x, logits);
    const auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) model.infer_logits(x, logits);
    std::printf("   (Model::infer_logits: %.3f ms per pass)\n", 1e3 * seconds_since(t0) / reps);
  }
  {
    Tensor x, labels;
    first_of_each_class(data, x, labels);
    PhaseTimer warm, timer;
    ProfileScratch scratch;
    profile_pass(model, x, labels, false, false, true, nullptr, scratch, warm);
    const int reps = 200;
    for (int r = 0; r < reps; ++r) profile_pass(model, x, labels, false, false, true, nullptr, scratch, timer);
    timer.report("input-gradient step, batch 10", reps);
    Tensor dx;
    model.input_gradient(x, labels, dx);
    const auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) model.input_gradient(x, labels, dx);
    std::printf("   (Model::input_gradient: %.3f ms per step)\n", 1e3 * seconds_since(t0) / reps);
  }
}

// The streaming-read bandwidth, then the comparison with one segment and with ResNet-18's layer segments.
int run_compare(Backend& be, const Options& opt) {
  if (!opt.json) std::printf("lethe_bench: fused parameter comparison, %d threads\n", opt.threads);
  const Result stream = bench_stream(opt.threads);
  const std::string what = "synthetic uniform values, 16 aux x 11173962 floats";
  emit(stream, opt, what);
  emit(bench_compare(be, false, median(stream.runs)), opt, what);
  emit(bench_compare(be, true, median(stream.runs)), opt, what);
  return 0;
}

int run(const Options& opt) {
  auto be = make_cpu_backend(opt.threads);
  if (opt.only == "compare") return run_compare(*be, opt);
  BenchData bd = load_bench_data();
  if (bd.data.size() < kInferBatch)
    throw InputError(bd.data.source + ": the benchmark needs at least " + std::to_string(kInferBatch) +
                     " training images, found " + std::to_string(bd.data.size()));
  auto model = make_lenet(*be);
  if (!opt.json)
    std::printf("lethe_bench: LeNet-5, %d threads, backend %s, data %s\n", opt.threads, be->name().c_str(),
                bd.description.c_str());
  if (opt.profile) {
    run_profile(*model, bd.data);
    return 0;
  }
  if (opt.only.empty() || opt.only == "train") emit(bench_train(*model, bd.data), opt, bd.description);
  if (opt.only.empty() || opt.only == "infer") emit(bench_infer(*model, bd.data), opt, bd.description);
  if (opt.only.empty() || opt.only == "inputgrad") emit(bench_inputgrad(*model, bd.data), opt, bd.description);
  if (opt.only.empty() || opt.only == "invert") emit(bench_invert(*model), opt, bd.description);
  if (opt.only.empty() || opt.only == "ga") emit(bench_ga(*model), opt, bd.description);
  if (opt.only.empty() || opt.only == "zoo") emit(bench_zoo(*model), opt, bd.description);
  if (opt.only.empty()) {
    model.reset();
    bd.data = Dataset();  // the comparison wants the memory
    return run_compare(*be, opt);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lethe::bench::guarded_main("lethe_bench", [&] { return run(parse_args(argc, argv)); });
}
