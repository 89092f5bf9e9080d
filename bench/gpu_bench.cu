// lethe_bench_gpu: what the CUDA backend achieves on one GPU, op by op and for whole training steps, against the
// device's peak memory bandwidth and FP32 throughput. Every op goes through the engine's public Backend interface
// (and the layers, losses and optimizers above it), so the numbers are what training and the attacks get.
//
//   lethe_bench_gpu [--quick] [--json] [--filter SUBSTR] [--reps N] [--help]
//
// Timing: CUDA events around each op, after warm-up calls (which also build cuDNN plans and fill the caching
// allocator); one sample is `inner` back-to-back calls, with `inner` chosen so that a sample lasts about 2 ms, and the
// table reports the median and the minimum of the samples, per call. The same source compiled as host C++ is
// lethe_bench_gpu_sim (the kernel simulator, docs/simulator.md): there the events measure host time and the peaks are
// the simulator's nominal figures, so its numbers only show that the benchmark itself works.
//
// What is counted (docs/bench-gpu.md):
// - Bytes: the compulsory traffic of an op, each input read once and each output written once, at 4 bytes per f32
//   and 8 per i64 (labels, argmax). Extra passes an implementation makes (a reduction reading x twice, a scratch
//   buffer) are not counted, so GB/s is the "effective" bandwidth and its % of peak says how close the op is to
//   the ideal one-pass kernel.
// - FLOPs: 2 per multiply-add of the mathematical operation (GEMM 2·M·N·K; convolution 2·N·O·HO·WO·C·KH·KW for each
//   of forward, backward-data and backward-filter), never the extra work of an algorithm (im2col copies, Winograd
//   transforms, FFT). Bias and activation epilogues are not counted.
#include "kernels/device.h"
#include "kernels/launch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "engine/error.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/tensor.h"
#include "bench/guarded_main.h"
#include "nets/nets.h"

namespace {

using namespace lethe;
namespace impl = lethe::LETHE_CUDA_NS;

#if defined(LETHE_CUDA_SIM)
constexpr const char* kProgram = "lethe_bench_gpu_sim";
constexpr bool kSimulated = true;
#else
constexpr const char* kProgram = "lethe_bench_gpu";
constexpr bool kSimulated = false;
#endif

constexpr const char* kUsage =
    "usage: %s [--quick] [--json] [--filter SUBSTR] [--reps N] [--help]\n"
    "  --quick          tiny sizes, no warm-up, 2 samples (training steps: 1): a smoke test, not a measurement\n"
    "  --json           print one JSON object with every row instead of the table\n"
    "  --filter SUBSTR  run only the rows whose \"op shape path\" contains SUBSTR\n"
    "  --reps N         timed samples per row (default 20, --quick 2)\n"
    "Convolutions and training steps run on both conv paths (cuDNN and im2col + cuBLAS); LETHE_CONV is ignored.\n";

// ---------------------------------------------------------------------------------------------------------------
// Options

struct Options {
  bool quick = false;
  bool json = false;
  std::string filter;
  int reps = 0;  // 0: the default for the mode
};

Options parse_args(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--quick") {
      opt.quick = true;
    } else if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--filter") {
      opt.filter = value();
    } else if (arg == "--reps") {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 1 || n > 100000)
        throw UsageError("--reps must be an integer in [1, 100000], got '" + v + "'");
      opt.reps = static_cast<int>(n);
    } else if (arg == "--help" || arg == "-h") {
      std::printf(kUsage, kProgram);
      std::exit(0);
    } else {
      throw UsageError("unknown argument '" + arg + "' (try --help)");
    }
  }
  return opt;
}

// ---------------------------------------------------------------------------------------------------------------
// The device and its peaks

struct DeviceInfo {
  int index = 0, count = 0;
  std::string name;
  int sms = 0, cc_major = 0, cc_minor = 0;
  int clock_khz = 0, memory_clock_khz = 0, bus_width_bits = 0;
  size_t total_memory = 0;
  int driver_version = 0, runtime_version = 0;
  int fp32_lanes_per_sm = 0;   // 0: unknown for this compute capability
  double peak_bytes_per_s = 0;  // 0: unknown
  double peak_flops = 0;        // 0: unknown
};

// FP32 FMA lanes per SM by compute capability, from NVIDIA's arithmetic-throughput table. Anything not listed is
// unknown rather than guessed, and its FLOP/s rows then print no % of peak.
int fp32_lanes_per_sm(int major, int minor) {
  if (major == 8 && minor == 0) return 64;                                    // A100
  if (major == 8 && (minor == 6 || minor == 7 || minor == 9)) return 128;    // GA10x, Orin, Ada
  if (major == 9 && minor == 0) return 128;                                   // H100, H200
  if (major == 10 || major == 12) return 128;                                 // Blackwell
  return 0;
}

DeviceInfo query_device(int index, int count) {
  DeviceInfo d;
  d.index = index;
  d.count = count;
  // Clock rates come from cudaDeviceGetAttribute: CUDA 13 removed clockRate and memoryClockRate from cudaDeviceProp.
  cudaDeviceProp prop{};
  LETHE_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  d.name = prop.name;
  d.total_memory = prop.totalGlobalMem;
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, index));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, index));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, index));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, index));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.memory_clock_khz, cudaDevAttrMemoryClockRate, index));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&d.bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, index));
  LETHE_CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
  LETHE_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  // Double data rate: two transfers per memory clock over the whole bus.
  d.peak_bytes_per_s = 2.0 * d.memory_clock_khz * 1e3 * d.bus_width_bits / 8.0;
  // One FMA (2 FLOPs) per lane per clock, at the clock the driver reports (the boost clock).
  d.fp32_lanes_per_sm = fp32_lanes_per_sm(d.cc_major, d.cc_minor);
  d.peak_flops = 2.0 * d.sms * d.clock_khz * 1e3 * d.fp32_lanes_per_sm;
  return d;
}

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string peak_memory_str(const DeviceInfo& d) {
  return d.peak_bytes_per_s > 0 ? fixed(d.peak_bytes_per_s / 1e9, 0) + " GB/s" : std::string("unknown GB/s");
}

std::string header_line(const DeviceInfo& d, const std::string& backend) {
  std::string s = std::string(kProgram) + ": " + d.name + " (device " + std::to_string(d.index) + " of " +
                  std::to_string(d.count) + ", backend " + backend + ") | " + std::to_string(d.sms) + " SMs, CC " +
                  std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor) + ", " +
                  fixed(d.clock_khz / 1e3, 0) + " MHz, " + fixed(d.total_memory / 1073741824.0, 1) + " GiB | peak " +
                  peak_memory_str(d) + " memory, " +
                  (d.peak_flops > 0 ? fixed(d.peak_flops / 1e12, 2) + " TFLOP/s FP32"
                                    : std::string("unknown FP32 FLOP/s (no lane count for this CC)")) +
                  " | driver " + version_str(d.driver_version) + ", runtime " + version_str(d.runtime_version);
  if (kSimulated)
    s += "\n(kernel simulator: events measure host time and the peaks are nominal; these numbers only show that the "
         "benchmark runs)";
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Timing

// Events go on the legacy default stream. The backend's stream is a blocking stream (cudaStreamCreate), which the
// legacy stream orders against in both directions, so the events bracket exactly the work each op enqueues.
class EventTimer {
 public:
  EventTimer() {
    LETHE_CUDA_CHECK(cudaEventCreate(&start_));
    LETHE_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {  // nothing useful to do with a failure while tearing down
    (void)cudaEventDestroy(stop_);
    (void)cudaEventDestroy(start_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Milliseconds per call of `inner` back-to-back calls of `op`.
  double per_call_ms(const std::function<void()>& op, int inner) {
    LETHE_CUDA_CHECK(cudaEventRecord(start_, nullptr));
    for (int i = 0; i < inner; ++i) op();
    LETHE_CUDA_CHECK(cudaEventRecord(stop_, nullptr));
    LETHE_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    LETHE_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) / inner;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

enum class Unit { Bytes, Flops, Images };

const char* unit_name(Unit u) {
  switch (u) {
    case Unit::Bytes: return "B/s";
    case Unit::Flops: return "FLOP/s";
    case Unit::Images: return "img/s";
  }
  return "?";
}

struct Row {
  std::string op, shape, path;
  Unit unit = Unit::Bytes;
  double work = 0;  // bytes, FLOPs or images per call
  double median_ms = 0, min_ms = 0;
  int samples = 0, inner = 0;
  double rate = 0;                  // work per second at the median
  std::optional<double> percent;   // of the matching peak; absent for images/s or an unknown peak
};

std::string rate_str(const Row& r) {
  switch (r.unit) {
    case Unit::Bytes: return fixed(r.rate / 1e9, 1) + " GB/s";
    case Unit::Flops:
      return r.rate >= 1e12 ? fixed(r.rate / 1e12, 2) + " TFLOP/s" : fixed(r.rate / 1e9, 1) + " GFLOP/s";
    case Unit::Images: return fixed(r.rate, 0) + " img/s";
  }
  return "?";
}

class Bench {
 public:
  Bench(const Options& opt, const DeviceInfo& dev) : opt_(opt), dev_(dev) {
    reps_ = opt.reps > 0 ? opt.reps : (opt.quick ? 2 : 20);
    warmup_ = opt.quick ? 0 : 3;  // --quick only checks that every row runs; under the simulator calls are slow
  }

  bool quick() const { return opt_.quick; }
  bool selected(const std::string& op, const std::string& shape, const std::string& path) const {
    return opt_.filter.empty() || (op + " " + shape + " " + path).find(opt_.filter) != std::string::npos;
  }

  // Warms up, calibrates the calls per sample, takes the samples and records the row.
  // `samples`, when given, replaces the default count unless --reps was given (--quick's training steps take one).
  void measure(const std::string& op, const std::string& shape, const std::string& path, Unit unit, double work,
               const std::function<void()>& call, int samples = 0) {
    if (!selected(op, shape, path)) return;
    const int reps = opt_.reps > 0 || samples <= 0 ? reps_ : samples;
    for (int i = 0; i < warmup_; ++i) call();
    int inner = 1;
    if (!opt_.quick) {  // enough calls per sample to dwarf the event overhead (about 2 ms), at most 1000
      const double one = timer_.per_call_ms(call, 1);
      inner = static_cast<int>(std::clamp(std::ceil(2.0 / std::max(one, 1e-4)), 1.0, 1000.0));
    }
    std::vector<double> ms;
    for (int s = 0; s < reps; ++s) ms.push_back(timer_.per_call_ms(call, inner));
    std::sort(ms.begin(), ms.end());
    const size_t n = ms.size();
    Row r;
    r.op = op;
    r.shape = shape;
    r.path = path;
    r.unit = unit;
    r.work = work;
    r.median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    r.min_ms = ms.front();
    r.samples = static_cast<int>(n);
    r.inner = inner;
    r.rate = r.median_ms > 0 ? work / (r.median_ms * 1e-3) : 0;
    const double peak = unit == Unit::Bytes ? dev_.peak_bytes_per_s : unit == Unit::Flops ? dev_.peak_flops : 0;
    if (peak > 0) r.percent = 100.0 * r.rate / peak;
    rows_.push_back(r);
    // Progress on stderr: a full run takes a while, and stdout stays the table or the JSON alone.
    std::fprintf(stderr, "  %s %s %s: %.4f ms\n", op.c_str(), shape.c_str(), path.c_str(), r.median_ms);
  }

  const std::vector<Row>& rows() const { return rows_; }
  int reps() const { return reps_; }
  int warmup() const { return warmup_; }

 private:
  const Options& opt_;
  const DeviceInfo& dev_;
  EventTimer timer_;
  int reps_ = 0, warmup_ = 0;
  std::vector<Row> rows_;
};

// ---------------------------------------------------------------------------------------------------------------
// Helpers

std::string dims(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

uint64_t g_philox_stream = 1;

Tensor uniform(Backend& be, const Shape& shape, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::F32, Device::CUDA);
  be.fill_uniform(t, lo, hi, /*seed=*/1234, g_philox_stream++);
  return t;
}

Tensor random_labels(int64_t n, int64_t classes) {
  std::mt19937_64 rng(42);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (auto& l : labels) l = static_cast<int64_t>(rng() % static_cast<uint64_t>(classes));
  Tensor host = Tensor::from_labels(labels);
  Tensor dev = Tensor::empty({n}, DType::I64, Device::CUDA);
  copy_bytes(dev.raw(), Device::CUDA, host.raw(), Device::CPU, host.nbytes());
  return dev;
}

constexpr double kF32 = 4, kI64 = 8;

// Where the values ops return to the host go, so no call is optimised away.
volatile double g_sink = 0;

// ---------------------------------------------------------------------------------------------------------------
// Streaming ops and reductions: one flat vector, large enough to stream through DRAM rather than L2.

void bench_streaming(Bench& b, Backend& be) {
  const int64_t n = b.quick() ? int64_t(1) << 12 : int64_t(1) << 26;  // 256 MiB per f32 vector
  const std::string shape = "[" + std::to_string(n) + "]";
  const double e = static_cast<double>(n) * kF32;  // bytes of one vector
  const std::vector<std::string> ops = {"fill", "add", "axpy", "scale", "relu_fwd", "relu_bwd", "sum_squares", "dot"};
  if (std::none_of(ops.begin(), ops.end(), [&](const std::string& op) { return b.selected(op, shape, "-"); })) return;
  Tensor x = uniform(be, {n}), y = uniform(be, {n}), z = uniform(be, {n});
  b.measure("fill", shape, "-", Unit::Bytes, e, [&] { be.fill(z, 0.5f); });                      // write z
  b.measure("add", shape, "-", Unit::Bytes, 3 * e, [&] { be.add(x, y, z); });                    // read x, y; write z
  b.measure("axpy", shape, "-", Unit::Bytes, 3 * e, [&] { be.axpy(1e-3f, x, y); });              // read x, y; write y
  b.measure("scale", shape, "-", Unit::Bytes, 2 * e, [&] { be.scale(y, -1.0f); });               // read y; write y
  b.measure("relu_fwd", shape, "-", Unit::Bytes, 2 * e, [&] { be.relu_forward(x, z); });         // read x; write z
  b.measure("relu_bwd", shape, "-", Unit::Bytes, 3 * e, [&] { be.relu_backward(z, y, x); });     // read y, dy; write dx
  // Reductions return to the host: each call includes one device-to-host round trip of the result.
  double sink = 0;
  b.measure("sum_squares", shape, "-", Unit::Bytes, e, [&] { sink += be.sum_squares(x); });      // read x
  b.measure("dot", shape, "-", Unit::Bytes, 2 * e, [&] { sink += be.dot(x, y); });               // read x, y
  g_sink = sink;
}

// ---------------------------------------------------------------------------------------------------------------
// Fused optimizer steps over a flat arena of ResNet-18's size, through engine/optim.h.

void bench_optimizers(Bench& b, Backend& be) {
  // ResNet-18 for 10 classes at 32x32 (CIFAR) has 11,173,962 trainable parameters.
  const int64_t n = b.quick() ? 5000 : 11173962;
  const std::string shape = "arena[" + std::to_string(n) + "]";
  const double e = static_cast<double>(n) * kF32;
  struct Case {
    std::string op;
    OptimConfig cfg;
    double bytes;
  };
  OptimConfig sgd;
  sgd.kind = "sgd";
  sgd.lr = 0.01f;
  sgd.momentum = 0.9f;
  sgd.weight_decay = 5e-4f;
  OptimConfig adam;
  adam.kind = "adam";
  adam.lr = 1e-3f;
  const std::vector<Case> cases = {
      {"sgd_momentum_step", sgd, 5 * e},  // read param, grad, momentum; write param, momentum
      {"adam_step", adam, 7 * e},         // read param, grad, m, v; write param, m, v
  };
  for (const Case& c : cases) {
    if (!b.selected(c.op, shape, "-")) continue;
    ParamArena arena;
    Tensor value, grad;
    arena.add_param("flat", {n}, &value, &grad);
    arena.finalize(Device::CUDA);
    be.fill_normal(value, 0.0f, 0.05f, 7, g_philox_stream++);
    be.fill_normal(grad, 0.0f, 0.01f, 7, g_philox_stream++);
    auto optimizer = make_optimizer(c.cfg, arena, be);
    b.measure(c.op, shape, "-", Unit::Bytes, c.bytes, [&] { optimizer->step(c.cfg.lr); });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM through Linear's forward and backward (cuBLAS, FP32 without TF32).

void bench_linear(Bench& b, Backend& be) {
  struct Case {
    int64_t n, in, out;
    const char* what;
  };
  const std::vector<Case> cases =
      b.quick() ? std::vector<Case>{{8, 32, 16, "tiny"}}
                : std::vector<Case>{{4096, 4096, 4096, "square 4096"},
                                    {1024, 1024, 1024, "square 1024"},
                                    {256, 400, 120, "lenet5 fc1"},
                                    {128, 512, 10, "resnet18 classifier"}};
  for (const Case& c : cases) {
    const std::string shape = std::string(c.what) + " N" + std::to_string(c.n) + " " + std::to_string(c.in) + "->" +
                              std::to_string(c.out);
    const bool fwd = b.selected("linear_fwd", shape, "-"), bwd = b.selected("linear_bwd", shape, "-");
    if (!fwd && !bwd) continue;
    Tensor x = uniform(be, {c.n, c.in}), w = uniform(be, {c.out, c.in}, -0.05f, 0.05f);
    Tensor y = uniform(be, {c.n, c.out}), dy = uniform(be, {c.n, c.out});
    Tensor dx = uniform(be, {c.n, c.in}), dw = uniform(be, {c.out, c.in});
    const double gemm = 2.0 * c.n * c.in * c.out;  // one GEMM of the three shapes involved
    b.measure("linear_fwd", shape, "-", Unit::Flops, gemm, [&] { be.linear_forward(x, w, nullptr, y); });
    // dx = dy·W and dW += dyᵀ·x: two GEMMs.
    b.measure("linear_bwd", shape, "-", Unit::Flops, 2 * gemm,
              [&] { be.linear_backward(x, w, dy, &dx, &dw, nullptr); });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Convolutions on one conv path.

struct ConvCase {
  const char* what;
  int64_t n, c, h, w, o, k, stride, pad;
};

std::vector<ConvCase> conv_cases(bool quick) {
  if (quick) return {{"tiny", 2, 3, 8, 8, 4, 3, 1, 1}, {"tiny strided", 1, 4, 6, 6, 8, 1, 2, 0}};
  return {
      {"lenet5 conv1", 256, 1, 28, 28, 6, 5, 1, 2},
      {"lenet5 conv2", 256, 6, 14, 14, 16, 5, 1, 0},
      {"resnet18 conv1", 128, 3, 32, 32, 64, 3, 1, 1},
      {"resnet18 layer1", 128, 64, 32, 32, 64, 3, 1, 1},
      {"resnet18 layer2 down", 128, 64, 32, 32, 128, 3, 2, 1},
      {"resnet18 layer2", 128, 128, 16, 16, 128, 3, 1, 1},
      {"resnet18 layer2 shortcut", 128, 64, 32, 32, 128, 1, 2, 0},
      {"resnet18 layer3", 128, 256, 8, 8, 256, 3, 1, 1},
      {"resnet18 layer4", 128, 512, 4, 4, 512, 3, 1, 1},
  };
}

void bench_conv(Bench& b, Backend& be, const std::string& path) {
  for (const ConvCase& c : conv_cases(b.quick())) {
    const Conv2dGeom g = Conv2dGeom::make(c.n, c.c, c.h, c.w, c.o, c.k, c.k, c.stride, c.pad);
    const std::string shape = std::string(c.what) + " " + dims({g.n, g.c, g.h, g.w}) + " k" + std::to_string(c.k) +
                              " s" + std::to_string(c.stride) + " p" + std::to_string(c.pad) + " ->" +
                              std::to_string(c.o);
    const bool fwd = b.selected("conv2d_fwd", shape, path), bwd_data = b.selected("conv2d_bwd_data", shape, path),
               bwd_filter = b.selected("conv2d_bwd_filter", shape, path);
    if (!fwd && !bwd_data && !bwd_filter) continue;
    Tensor x = uniform(be, {g.n, g.c, g.h, g.w}), w = uniform(be, {g.o, g.c, g.kh, g.kw}, -0.1f, 0.1f);
    Tensor y = uniform(be, {g.n, g.o, g.ho, g.wo}), dy = uniform(be, {g.n, g.o, g.ho, g.wo});
    Tensor dx = uniform(be, x.shape()), dw = uniform(be, w.shape());
    std::unique_ptr<LayerState> state;  // the backend's per-layer plan, as a Conv2d layer keeps it
    const double flops = 2.0 * g.n * g.o * g.ho * g.wo * g.c * g.kh * g.kw;
    b.measure("conv2d_fwd", shape, path, Unit::Flops, flops,
              [&] { be.conv2d_forward(x, w, nullptr, y, g, false, &state); });
    b.measure("conv2d_bwd_data", shape, path, Unit::Flops, flops,
              [&] { be.conv2d_backward(x, w, dy, &dx, nullptr, nullptr, g, &state); });
    b.measure("conv2d_bwd_filter", shape, path, Unit::Flops, flops,
              [&] { be.conv2d_backward(x, w, dy, nullptr, &dw, nullptr, g, &state); });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Batch norm, max pooling and the fused softmax cross-entropy: memory-bound, counted in bytes.

void bench_norm_pool_loss(Bench& b, Backend& be) {
  {  // ResNet-18's widest activation: layer1 at batch 128
    const Shape s = b.quick() ? Shape{2, 4, 8, 8} : Shape{128, 64, 32, 32};
    const std::string shape = dims(s);
    const bool fwd = b.selected("batchnorm_train_fwd", shape, "-"), bwd = b.selected("batchnorm_train_bwd", shape, "-");
    if (fwd || bwd) {
      const int64_t c = s[1];
      Tensor x = uniform(be, s), y = uniform(be, s), dy = uniform(be, s), dx = uniform(be, s);
      Tensor gamma = uniform(be, {c}, 0.5f, 1.5f), beta = uniform(be, {c}), dgamma = uniform(be, {c}),
             dbeta = uniform(be, {c});
      Tensor running_mean = uniform(be, {c}), running_var = uniform(be, {c}, 0.5f, 1.5f);
      Tensor save_mean = uniform(be, {c}), save_invstd = uniform(be, {c});
      const double e = static_cast<double>(x.numel()) * kF32;
      b.measure("batchnorm_train_fwd", shape, "-", Unit::Bytes, 2 * e, [&] {  // read x; write y
        be.batchnorm2d_forward(x, gamma, beta, running_mean, running_var, true, 0.1f, 1e-5f, y, save_mean,
                               save_invstd);
      });
      b.measure("batchnorm_train_bwd", shape, "-", Unit::Bytes, 3 * e, [&] {  // read x, dy; write dx
        be.batchnorm2d_backward(x, gamma, save_mean, save_invstd, dy, true, &dx, &dgamma, &dbeta);
      });
    }
  }
  {  // 2x2 stride-2 max pool over the same activation
    const Shape s = b.quick() ? Shape{2, 4, 8, 8} : Shape{128, 64, 32, 32};
    const Pool2dGeom g = Pool2dGeom::make(s[0], s[1], s[2], s[3], 2, 2, 2, 0);
    const std::string shape = dims(s) + " k2 s2";
    const bool fwd = b.selected("maxpool_fwd", shape, "-"), bwd = b.selected("maxpool_bwd", shape, "-");
    if (fwd || bwd) {
      const Shape out = {g.n, g.c, g.ho, g.wo};
      Tensor x = uniform(be, s), y = uniform(be, out), dy = uniform(be, out), dx = uniform(be, s);
      Tensor argmax = Tensor::empty(out, DType::I64, Device::CUDA);
      be.maxpool2d_forward(x, y, &argmax, g);  // valid indices for backward even when forward is filtered out
      const double in_n = static_cast<double>(x.numel()), out_n = static_cast<double>(y.numel());
      b.measure("maxpool_fwd", shape, "-", Unit::Bytes, in_n * kF32 + out_n * (kF32 + kI64),  // read x; write y, argmax
                [&] { be.maxpool2d_forward(x, y, &argmax, g); });
      b.measure("maxpool_bwd", shape, "-", Unit::Bytes, out_n * (kI64 + kF32) + in_n * kF32,  // read argmax, dy; write dx
                [&] { be.maxpool2d_backward(argmax, dy, dx, g); });
    }
  }
  {  // ImageNet-sized logits, so the rows are long enough to measure bandwidth
    const int64_t n = b.quick() ? 4 : 4096, k = b.quick() ? 10 : 1000;
    const std::string shape = "N" + std::to_string(n) + " K" + std::to_string(k);
    const bool fwd = b.selected("softmax_xent_fwd", shape, "-"), bwd = b.selected("softmax_xent_bwd", shape, "-");
    if (fwd || bwd) {
      Tensor logits = uniform(be, {n, k}, -4.0f, 4.0f), probs = uniform(be, {n, k}), dlogits = uniform(be, {n, k});
      Tensor labels = random_labels(n, k);
      const double e = static_cast<double>(n * k) * kF32, l = static_cast<double>(n) * kI64;
      double sink = 0;
      // Forward returns the mean loss: each call includes one device-to-host round trip.
      b.measure("softmax_xent_fwd", shape, "-", Unit::Bytes, 2 * e + l,  // read logits, labels; write probs
                [&] { sink += be.softmax_xent_forward(logits, labels, probs); });
      b.measure("softmax_xent_bwd", shape, "-", Unit::Bytes, 2 * e + l,  // read probs, labels; write dlogits
                [&] { be.softmax_xent_backward(probs, labels, 1.0f / static_cast<float>(n), dlogits); });
      g_sink = sink;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Whole training steps, as the trainer runs them: forward (train mode), loss, zero_grad, backward, SGD step.
// The trainer's accuracy count and data loading are left out.

void bench_training(Bench& b, Backend& be, const std::string& path) {
  struct Case {
    ModelSpec spec;
    int64_t batch;
    float weight_decay;
  };
  std::vector<Case> cases;
  {
    ModelSpec lenet;
    lenet.arch = "lenet5";
    lenet.channels = 1;
    lenet.height = lenet.width = 28;
    lenet.num_classes = 10;
    lenet.mean = {0.2860f};
    lenet.std = {0.3530f};
    cases.push_back({lenet, b.quick() ? 2 : 256, 0.0f});
    ModelSpec resnet;
    resnet.arch = "resnet18";
    resnet.channels = 3;
    resnet.height = resnet.width = 32;
    resnet.num_classes = 10;
    resnet.mean = {0.4914f, 0.4822f, 0.4465f};
    resnet.std = {0.2470f, 0.2435f, 0.2616f};
    // --quick: the real network's layout at 1/64 of its width (the simulator's cost grows with the channels).
    if (b.quick()) resnet.base_channels = 1;
    cases.push_back({resnet, b.quick() ? 2 : 128, 5e-4f});
  }
  for (const Case& c : cases) {
    const std::string shape = c.spec.arch + (c.spec.base_channels ? " width" + std::to_string(c.spec.base_channels) : "") +
                              " batch " + std::to_string(c.batch) + " " + dims({c.spec.channels, c.spec.height, c.spec.width});
    if (!b.selected("train_step", shape, path)) continue;
    auto model = make_model(c.spec, be, /*seed=*/1);
    OptimConfig cfg;
    cfg.kind = "sgd";
    cfg.lr = 0.01f;
    cfg.momentum = 0.9f;
    cfg.weight_decay = c.weight_decay;
    auto optimizer = make_optimizer(cfg, model->arena(), be);
    SoftmaxCrossEntropy loss;
    Tensor x = uniform(be, c.spec.input_shape(c.batch), 0.0f, 1.0f);
    Tensor labels = random_labels(c.batch, c.spec.num_classes);
    b.measure("train_step", shape, path, Unit::Images, static_cast<double>(c.batch), [&] {
      const Tensor& logits = model->forward(x, /*train=*/true);
      loss.forward(be, logits, labels);  // returns the loss: one host round trip per step, as in the trainer
      model->arena().zero_grad(be);
      model->backward(loss.backward(be, labels), /*param_grads=*/true, /*need_dx=*/false);
      optimizer->step(cfg.lr);
    }, b.quick() ? 1 : 0);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output

void print_table(const std::vector<Row>& rows) {
  const std::vector<std::string> head = {"op", "shape", "path", "median ms", "min ms", "rate", "% peak"};
  std::vector<std::vector<std::string>> cells;
  for (const Row& r : rows)
    cells.push_back({r.op, r.shape, r.path, fixed(r.median_ms, 4), fixed(r.min_ms, 4), rate_str(r),
                     r.percent ? fixed(*r.percent, 1) : std::string("-")});
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i) {
    width[i] = head[i].size();
    for (const auto& row : cells) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t i = 0; i < row.size(); ++i) {
      const bool numeric = i >= 3;  // right-align the numbers
      const std::string pad(width[i] - row[i].size(), ' ');
      s += (i ? "  " : "") + (numeric ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : ""));
    }
    std::printf("%s\n", s.c_str());
  };
  line(head);
  for (const auto& row : cells) line(row);
}

nlohmann::json to_json(const DeviceInfo& d, const std::string& backend, const Bench& b, const Options& opt,
                       const impl::DeviceMemoryStats& mem) {
  nlohmann::json j;
  auto peak_or_null = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  j["program"] = kProgram;
  j["simulated"] = kSimulated;
  j["device"] = {{"index", d.index},
                 {"count", d.count},
                 {"name", d.name},
                 {"backend", backend},
                 {"sms", d.sms},
                 {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
                 {"clock_khz", d.clock_khz},
                 {"memory_clock_khz", d.memory_clock_khz},
                 {"bus_width_bits", d.bus_width_bits},
                 {"total_memory_bytes", d.total_memory},
                 {"fp32_lanes_per_sm", d.fp32_lanes_per_sm > 0 ? nlohmann::json(d.fp32_lanes_per_sm) : nlohmann::json(nullptr)},
                 {"driver_version", version_str(d.driver_version)},
                 {"runtime_version", version_str(d.runtime_version)}};
  j["peak"] = {{"memory_bytes_per_s", peak_or_null(d.peak_bytes_per_s)}, {"fp32_flops", peak_or_null(d.peak_flops)}};
  j["options"] = {{"quick", opt.quick}, {"filter", opt.filter}, {"reps", b.reps()}, {"warmup", b.warmup()}};
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& r : b.rows())
    rows.push_back({{"op", r.op},
                    {"shape", r.shape},
                    {"path", r.path},
                    {"median_ms", r.median_ms},
                    {"min_ms", r.min_ms},
                    {"samples", r.samples},
                    {"calls_per_sample", r.inner},
                    {"unit", unit_name(r.unit)},
                    {"work_per_call", r.work},
                    {"rate", r.rate},
                    {"percent_of_peak", r.percent ? nlohmann::json(*r.percent) : nlohmann::json(nullptr)}});
  j["rows"] = std::move(rows);
  j["device_memory"] = {{"bytes_in_use", mem.bytes_in_use},
                        {"bytes_cached", mem.bytes_cached},
                        {"device_mallocs", mem.device_mallocs},
                        {"device_frees", mem.device_frees},
                        {"cache_hits", mem.cache_hits}};
  return j;
}

// ---------------------------------------------------------------------------------------------------------------

// A backend whose convolutions take `path` (LETHE_CONV is read when a backend is made), leaving the variable as
// the user had it.
std::unique_ptr<Backend> make_backend_on_path(const char* path) {
  const char* old = std::getenv("LETHE_CONV");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  setenv("LETHE_CONV", path, 1);
  std::unique_ptr<Backend> be;
  try {
    be = impl::make_cuda_backend(0);
  } catch (...) {
    if (saved) setenv("LETHE_CONV", saved->c_str(), 1); else unsetenv("LETHE_CONV");
    throw;
  }
  if (saved) setenv("LETHE_CONV", saved->c_str(), 1); else unsetenv("LETHE_CONV");
  return be;
}

int run(const Options& opt) {
  const int count = impl::device_count();
  if (count == 0) {
    // The one runtime call whose failure is an answer rather than an error: it says why there is no device.
    int probe = 0;
    const cudaError_t e = cudaGetDeviceCount(&probe);
    std::string reason;
    if (e != cudaSuccess) reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    (void)cudaGetLastError();
    const std::string message = "no CUDA device: GPU benchmarks skipped" + (reason.empty() ? "" : " (" + reason + ")");
    if (opt.json)
      std::printf("%s\n", nlohmann::json{{"program", kProgram}, {"skipped", message}}.dump(2).c_str());
    else
      std::printf("%s\n", message.c_str());
    return 0;
  }

  auto cudnn = make_backend_on_path("cudnn");
  auto gemm = make_backend_on_path("gemm");
  const DeviceInfo dev = query_device(0, count);
  if (kSimulated && !opt.quick)
    std::fprintf(stderr, "%s: full sizes under the kernel simulator take hours; --quick is what it is for\n", kProgram);
  if (!opt.json) {
    std::printf("%s\n", header_line(dev, cudnn->name()).c_str());
    std::fflush(stdout);
  }

  Bench b(opt, dev);
  bench_streaming(b, *cudnn);
  bench_optimizers(b, *cudnn);
  bench_linear(b, *cudnn);
  bench_conv(b, *cudnn, "cudnn");
  bench_conv(b, *gemm, "gemm");
  bench_norm_pool_loss(b, *cudnn);
  bench_training(b, *cudnn, "cudnn");
  bench_training(b, *gemm, "gemm");
  LETHE_CUDA_CHECK(cudaDeviceSynchronize());

  const impl::DeviceMemoryStats mem = impl::device_memory_stats();
  if (opt.json) {
    std::printf("%s\n", to_json(dev, cudnn->name(), b, opt, mem).dump(2).c_str());
    return 0;
  }
  if (b.rows().empty()) {
    std::printf("no row matches --filter '%s'\n", opt.filter.c_str());
    return 0;
  }
  std::printf("\n");
  print_table(b.rows());
  std::printf("\nmedian and min of %d samples per row%s after %d warm-up calls; rate at the median; %% peak against "
              "%s memory and %s FP32\n",
              b.reps(), opt.quick && opt.reps == 0 ? " (training steps: 1)" : "", b.warmup(),
              peak_memory_str(dev).c_str(),
              dev.peak_flops > 0 ? (fixed(dev.peak_flops / 1e12, 2) + " TFLOP/s").c_str() : "unknown FLOP/s");
  std::printf("device memory: %.1f MiB in use, %.1f MiB cached, %llu device mallocs, %llu cache hits\n",
              mem.bytes_in_use / 1048576.0, mem.bytes_cached / 1048576.0,
              static_cast<unsigned long long>(mem.device_mallocs), static_cast<unsigned long long>(mem.cache_hits));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lethe::bench::guarded_main(kProgram, [&] { return run(parse_args(argc, argv)); });
}
