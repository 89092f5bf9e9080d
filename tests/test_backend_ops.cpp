// Every Backend op against a naive reference (plain loops, double accumulation), in the style of ggml's
// test-backend-ops. Each case runs on the CPU backend with 1 and 2 threads, and on CUDA when a device is present.
//
// For each case and backend:
// - inputs are fresh seeded random values (never all zeros), copied to the backend's device;
// - every pure output is poisoned with NaN (i64: a sentinel) first, so an element the op forgets shows up;
// - outputs must be finite and match the reference by NMSE = Σ(a-b)²/Σb²;
// - the op runs twice on fresh copies of the same inputs and must give bit-identical results;
// - every tensor is a view at an unaligned offset inside a larger buffer whose guard elements must survive, the way
//   parameters and their gradients are views into the arena.
//
// Thresholds. f32's unit roundoff is u ≈ 6e-8. An output that sums K products in f32 has a relative error of about
// √K·u typically and K·u at worst, so NMSE ≈ K·u² ≤ 4e-12 for the K ≤ 1000 used here, whatever the summation
// order (blocked GEMM, per-thread partial sums). kNmse = 1e-10 leaves a wide margin above that, while a real bug
// (a dropped term, a wrong index, an off-by-one window) moves NMSE to ≥ 1e-4 on random inputs. Ops that only move
// or select values (fill, copy, add, ReLU, non-overlapping max pooling, argmax) must match exactly (threshold 0).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/philox.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using lethe::test::kExact;
using lethe::test::kNmse;
using lethe::test::Rng;
using lethe::test::Values;

// One op invocation. `run` gets fresh device copies of `inputs`, creates and poisons its outputs on the same
// device, calls the op and returns the outputs (and any scalar result) as doubles.
struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;  // CPU
  std::function<std::vector<Values>(Backend&, std::vector<Tensor>&)> run;
  std::vector<Values> expected;
  double max_nmse = kNmse;
  bool same_across_cpu_threads = false;  // the op's contract makes the thread count irrelevant (random fills)
};

// The backends under test: the CPU with 1 and 2 threads, then CUDA when present.
std::vector<std::unique_ptr<Backend>> backends_under_test() {
  std::vector<std::unique_ptr<Backend>> out;
  out.push_back(make_cpu_backend(1));
  out.push_back(make_cpu_backend(2));
  if (cuda_available()) out.push_back(make_backend("cuda", 0));
  return out;
}

std::string describe(const Backend& be) {
  return be.name() + " (" + device_name(be.device()) + ", threads=" + std::to_string(be.threads()) + ")";
}

// Guarded views: kGuard sentinel elements on each side, so the view starts 28 bytes into its buffer (unaligned).
constexpr int64_t kGuard = 7;
constexpr float kGuardF32 = 1234.5f;
constexpr int64_t kGuardI64 = 0x5a5a5a5a;
std::vector<Tensor> g_guarded_buffers;  // the whole buffers behind the views of the current run

Tensor guarded_empty(const Shape& shape, DType dtype, Device device) {
  const int64_t numel = shape_numel(shape), total = numel + 2 * kGuard;
  Tensor whole = Tensor::empty({total}, dtype, device);
  if (dtype == DType::F32) {
    test::set_values(whole, std::vector<float>(size_t(total), kGuardF32));
  } else {
    const std::vector<int64_t> v(size_t(total), kGuardI64);
    copy_bytes(whole.raw(), device, v.data(), Device::CPU, whole.nbytes());
  }
  g_guarded_buffers.push_back(whole);
  return whole.rows(kGuard, numel).reshape(shape);
}

// Counts guard elements that no longer hold their sentinel in every buffer of the current run.
int64_t damaged_guards() {
  int64_t damaged = 0;
  for (const Tensor& whole : g_guarded_buffers) {
    const Values v = test::to_doubles(whole);
    const double sentinel = whole.dtype() == DType::F32 ? double(kGuardF32) : double(kGuardI64);
    for (int64_t i = 0; i < kGuard; ++i) {
      damaged += v[size_t(i)] != sentinel ? 1 : 0;
      damaged += v[v.size() - 1 - size_t(i)] != sentinel ? 1 : 0;
    }
  }
  return damaged;
}

std::vector<Values> run_once(const OpCase& c, Backend& be) {
  g_guarded_buffers.clear();
  std::vector<Tensor> inputs;
  for (const Tensor& t : c.inputs) {
    Tensor view = guarded_empty(t.shape(), t.dtype(), be.device());
    copy_bytes(view.raw(), be.device(), t.raw(), Device::CPU, t.nbytes());
    inputs.push_back(view);
  }
  std::vector<Values> result = c.run(be, inputs);
  CHECK_MESSAGE(damaged_guards() == 0, "the op wrote outside a tensor view");
  g_guarded_buffers.clear();
  return result;
}

void check_case(const OpCase& c) {
  INFO("case: ", c.name);
  std::vector<Values> cpu_result;  // threads=1, the baseline for the device backends
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    const std::vector<Values> first = run_once(c, *be);
    const std::vector<Values> second = run_once(c, *be);
    REQUIRE(first.size() == c.expected.size());
    REQUIRE(second.size() == c.expected.size());
    for (size_t k = 0; k < first.size(); ++k) {
      INFO("output #", k, " (", first[k].size(), " elements)");
      CHECK(test::count_nonfinite(first[k]) == 0);
      CHECK(first[k].size() == c.expected[k].size());
      CHECK(test::nmse(first[k], c.expected[k]) <= c.max_nmse);
      CHECK_MESSAGE(test::bit_identical(first[k], second[k]), "repeated call gave different bits");
    }
    if (be->device() == Device::CPU) {
      if (cpu_result.empty()) {
        cpu_result = first;
      } else if (c.same_across_cpu_threads) {
        for (size_t k = 0; k < first.size(); ++k) CHECK(test::bit_identical(first[k], cpu_result[k]));
      }
    } else {
      for (size_t k = 0; k < first.size(); ++k) {
        INFO("device vs cpu, output #", k);
        CHECK(test::nmse(first[k], cpu_result[k]) <= c.max_nmse);
      }
    }
  }
}

// --- small helpers for writing cases

Tensor out_like(const Backend& be, const Shape& shape, DType dtype = DType::F32) {
  Tensor t = guarded_empty(shape, dtype, be.device());
  test::poison(t);
  return t;
}
Values vals(const Tensor& t) { return test::to_doubles(t); }
const float* host(const Tensor& t) { return t.f32(); }  // reference code reads CPU inputs

std::string geom_str(const Conv2dGeom& g) {
  std::ostringstream os;
  os << "n=" << g.n << " c=" << g.c << " h=" << g.h << " w=" << g.w << " o=" << g.o << " k=" << g.kh << "x" << g.kw
     << " s=" << g.stride << " p=" << g.pad;
  return os.str();
}
std::string geom_str(const Pool2dGeom& g) {
  std::ostringstream os;
  os << "n=" << g.n << " c=" << g.c << " h=" << g.h << " w=" << g.w << " k=" << g.kh << "x" << g.kw
     << " s=" << g.stride << " p=" << g.pad;
  return os.str();
}

// Adds `grad` to the initial contents of an accumulating destination: what the op must leave there.
Values accumulated(const Tensor& initial, const Values& grad) {
  Values out = vals(initial);
  for (size_t i = 0; i < out.size(); ++i) out[i] += grad[i];
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// References

Values ref_linear_forward(const Tensor& x, const Tensor& w, const Tensor* b) {
  const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
  Values y(static_cast<size_t>(n * out));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? host(*b)[o] : 0.0;
      for (int64_t k = 0; k < in; ++k) acc += double(host(x)[i * in + k]) * host(w)[o * in + k];
      y[size_t(i * out + o)] = acc;
    }
  return y;
}

// Gradients of a weighted op (linear, conv): input, weight, bias.
struct Grads {
  Values dx, dw, db;
};
Grads ref_linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy) {
  const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
  Grads g{Values(size_t(n * in), 0.0), Values(size_t(out * in), 0.0), Values(size_t(out), 0.0)};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      const double d = host(dy)[i * out + o];
      g.db[size_t(o)] += d;
      for (int64_t k = 0; k < in; ++k) {
        g.dx[size_t(i * in + k)] += d * host(w)[o * in + k];
        g.dw[size_t(o * in + k)] += d * host(x)[i * in + k];
      }
    }
  return g;
}

// Calls f(n, o, oh, ow, c, i, j, x_index, w_index) for every in-bounds tap of the convolution.
template <class F>
void for_each_conv_tap(const Conv2dGeom& g, F&& f) {
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t oh = 0; oh < g.ho; ++oh)
        for (int64_t ow = 0; ow < g.wo; ++ow)
          for (int64_t c = 0; c < g.c; ++c)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t ih = oh * g.stride - g.pad + i, iw = ow * g.stride - g.pad + j;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                const int64_t xi = ((n * g.c + c) * g.h + ih) * g.w + iw;
                const int64_t wi = ((o * g.c + c) * g.kh + i) * g.kw + j;
                const int64_t yi = ((n * g.o + o) * g.ho + oh) * g.wo + ow;
                f(n, o, xi, wi, yi);
              }
}

Values ref_conv_forward(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dGeom& g) {
  Values y(size_t(g.n * g.o * g.ho * g.wo), 0.0);
  if (b)
    for (size_t i = 0; i < y.size(); ++i) y[i] = host(*b)[(int64_t(i) / (g.ho * g.wo)) % g.o];
  for_each_conv_tap(g, [&](int64_t, int64_t, int64_t xi, int64_t wi, int64_t yi) {
    y[size_t(yi)] += double(host(x)[xi]) * host(w)[wi];
  });
  return y;
}

Grads ref_conv_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeom& g) {
  Grads r{Values(size_t(x.numel()), 0.0), Values(size_t(w.numel()), 0.0), Values(size_t(g.o), 0.0)};
  for (int64_t i = 0; i < dy.numel(); ++i) r.db[size_t((i / (g.ho * g.wo)) % g.o)] += host(dy)[i];
  for_each_conv_tap(g, [&](int64_t, int64_t, int64_t xi, int64_t wi, int64_t yi) {
    const double d = host(dy)[yi];
    r.dx[size_t(xi)] += d * host(w)[wi];
    r.dw[size_t(wi)] += d * host(x)[xi];
  });
  return r;
}

// Calls f(plane, oh, ow, x_index) for every in-bounds element of every pooling window, in row-major window order.
template <class F>
void for_each_pool_tap(const Pool2dGeom& g, F&& f) {
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow)
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t ih = oh * g.stride - g.pad + i, iw = ow * g.stride - g.pad + j;
            if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
            f((p * g.ho + oh) * g.wo + ow, (p * g.h + ih) * g.w + iw);
          }
}

// Max pool: the first maximum of each window in row-major order (padding never wins), as PyTorch.
std::vector<int64_t> ref_maxpool_argmax(const Tensor& x, const Pool2dGeom& g) {
  std::vector<int64_t> arg(size_t(g.n * g.c * g.ho * g.wo), -1);
  for_each_pool_tap(g, [&](int64_t yi, int64_t xi) {
    int64_t& a = arg[size_t(yi)];
    if (a < 0 || host(x)[xi] > host(x)[a]) a = xi;
  });
  return arg;
}

Values ref_avgpool_forward(const Tensor& x, const Pool2dGeom& g) {
  Values y(size_t(g.n * g.c * g.ho * g.wo), 0.0);
  const double area = double(g.kh * g.kw);  // count_include_pad: the divisor is always the full window
  for_each_pool_tap(g, [&](int64_t yi, int64_t xi) { y[size_t(yi)] += host(x)[xi] / area; });
  return y;
}

Values ref_avgpool_backward(const Tensor& dy, const Pool2dGeom& g) {
  Values dx(size_t(g.n * g.c * g.h * g.w), 0.0);
  const double area = double(g.kh * g.kw);
  for_each_pool_tap(g, [&](int64_t yi, int64_t xi) { dx[size_t(xi)] += host(dy)[yi] / area; });
  return dx;
}

// Per-channel batch statistics of NCHW x: mean and biased variance.
struct ChannelStats {
  Values mean, var;
  int64_t count;
};
ChannelStats ref_channel_stats(const Tensor& x) {
  const int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
  ChannelStats s{Values(size_t(c), 0.0), Values(size_t(c), 0.0), n * hw};
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) sum += host(x)[(i * c + ch) * hw + k];
    const double mean = sum / double(s.count);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) {
        const double d = host(x)[(i * c + ch) * hw + k] - mean;
        sq += d * d;
      }
    s.mean[size_t(ch)] = mean;
    s.var[size_t(ch)] = sq / double(s.count);
  }
  return s;
}

int64_t channel_of(const Tensor& x, int64_t i) { return (i / (x.dim(2) * x.dim(3))) % x.dim(1); }

// Row-wise log-softmax of logits [N, K] in double.
Values ref_log_softmax(const Tensor& logits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  Values out(size_t(n * k));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = host(logits) + i * k;
    const double mx = *std::max_element(row, row + k);
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(double(row[j]) - mx);
    const double lse = mx + std::log(sum);
    for (int64_t j = 0; j < k; ++j) out[size_t(i * k + j)] = row[j] - lse;
  }
  return out;
}

Values exp_of(Values v) {
  for (double& x : v) x = std::exp(x);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Case builders

OpCase conv_forward_case(const Conv2dGeom& g, bool bias, Rng& rng) {
  OpCase c;
  c.name = "conv2d_forward(" + geom_str(g) + (bias ? " bias" : " no-bias") + ")";
  c.inputs = {test::random_tensor({g.n, g.c, g.h, g.w}, rng), test::random_tensor({g.o, g.c, g.kh, g.kw}, rng),
              test::random_tensor({g.o}, rng)};
  c.expected = {ref_conv_forward(c.inputs[0], c.inputs[1], bias ? &c.inputs[2] : nullptr, g)};
  c.run = [g, bias](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor y = out_like(be, {g.n, g.o, g.ho, g.wo});
    be.conv2d_forward(in[0], in[1], bias ? &in[2] : nullptr, y, g, false);
    return {vals(y)};
  };
  return c;
}

// which: bit 0 dx, bit 1 dw, bit 2 db. dw and db accumulate onto random initial values.
OpCase conv_backward_case(const Conv2dGeom& g, int which, Rng& rng) {
  OpCase c;
  c.name = "conv2d_backward(" + geom_str(g) + ((which & 1) ? " dx" : "") + ((which & 2) ? " dw" : "") +
           ((which & 4) ? " db" : "") + ")";
  c.inputs = {test::random_tensor({g.n, g.c, g.h, g.w}, rng), test::random_tensor({g.o, g.c, g.kh, g.kw}, rng),
              test::random_tensor({g.n, g.o, g.ho, g.wo}, rng), test::random_tensor({g.o, g.c, g.kh, g.kw}, rng),
              test::random_tensor({g.o}, rng)};
  const Grads r = ref_conv_backward(c.inputs[0], c.inputs[1], c.inputs[2], g);
  if (which & 1) c.expected.push_back(r.dx);
  if (which & 2) c.expected.push_back(accumulated(c.inputs[3], r.dw));
  if (which & 4) c.expected.push_back(accumulated(c.inputs[4], r.db));
  c.run = [g, which](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor dx = out_like(be, {g.n, g.c, g.h, g.w});
    be.conv2d_backward(in[0], in[1], in[2], (which & 1) ? &dx : nullptr, (which & 2) ? &in[3] : nullptr,
                       (which & 4) ? &in[4] : nullptr, g);
    std::vector<Values> out;
    if (which & 1) out.push_back(vals(dx));
    if (which & 2) out.push_back(vals(in[3]));
    if (which & 4) out.push_back(vals(in[4]));
    return out;
  };
  return c;
}

OpCase linear_forward_case(int64_t n, int64_t in, int64_t out, bool bias, Rng& rng) {
  OpCase c;
  c.name = "linear_forward(n=" + std::to_string(n) + " in=" + std::to_string(in) + " out=" + std::to_string(out) +
           (bias ? " bias" : " no-bias") + ")";
  c.inputs = {test::random_tensor({n, in}, rng), test::random_tensor({out, in}, rng), test::random_tensor({out}, rng)};
  c.expected = {ref_linear_forward(c.inputs[0], c.inputs[1], bias ? &c.inputs[2] : nullptr)};
  c.run = [n, out, bias](Backend& be, std::vector<Tensor>& t) -> std::vector<Values> {
    Tensor y = out_like(be, {n, out});
    be.linear_forward(t[0], t[1], bias ? &t[2] : nullptr, y);
    return {vals(y)};
  };
  return c;
}

OpCase linear_backward_case(int64_t n, int64_t in, int64_t out, int which, Rng& rng) {
  OpCase c;
  c.name = "linear_backward(n=" + std::to_string(n) + " in=" + std::to_string(in) + " out=" + std::to_string(out) +
           ((which & 1) ? " dx" : "") + ((which & 2) ? " dw" : "") + ((which & 4) ? " db" : "") + ")";
  c.inputs = {test::random_tensor({n, in}, rng), test::random_tensor({out, in}, rng), test::random_tensor({n, out}, rng),
              test::random_tensor({out, in}, rng), test::random_tensor({out}, rng)};
  const Grads r = ref_linear_backward(c.inputs[0], c.inputs[1], c.inputs[2]);
  if (which & 1) c.expected.push_back(r.dx);
  if (which & 2) c.expected.push_back(accumulated(c.inputs[3], r.dw));
  if (which & 4) c.expected.push_back(accumulated(c.inputs[4], r.db));
  c.run = [n, in, which](Backend& be, std::vector<Tensor>& t) -> std::vector<Values> {
    Tensor dx = out_like(be, {n, in});
    be.linear_backward(t[0], t[1], t[2], (which & 1) ? &dx : nullptr, (which & 2) ? &t[3] : nullptr,
                       (which & 4) ? &t[4] : nullptr);
    std::vector<Values> outs;
    if (which & 1) outs.push_back(vals(dx));
    if (which & 2) outs.push_back(vals(t[3]));
    if (which & 4) outs.push_back(vals(t[4]));
    return outs;
  };
  return c;
}

// Values on a coarse grid (…, -0.5, 0.5, 1.5, …) so pooling windows contain many exact ties.
Tensor tied_tensor(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(rng.integer(-3, 2)) + 0.5f;
  return t;
}

// Forward (with and without the argmax record) and backward (through the reference argmax) of one geometry.
std::vector<OpCase> maxpool_cases(const Pool2dGeom& g, bool ties, Rng& rng) {
  const std::string name = "maxpool2d(" + geom_str(g) + (ties ? " ties" : "") + ")";
  const Shape xs{g.n, g.c, g.h, g.w}, ys{g.n, g.c, g.ho, g.wo};
  const Tensor x = ties ? tied_tensor(xs, rng) : test::random_tensor(xs, rng), dy = test::random_tensor(ys, rng);
  const std::vector<int64_t> arg = ref_maxpool_argmax(x, g);
  Tensor in_plane = Tensor::empty(ys, DType::I64);  // the interface's argmax: ih·W + iw within the plane
  Values y(arg.size()), plane_index(arg.size()), dx(size_t(x.numel()), 0.0);
  for (size_t i = 0; i < arg.size(); ++i) {
    in_plane.i64()[i] = arg[i] % (g.h * g.w);
    plane_index[i] = double(in_plane.i64()[i]);
    y[i] = host(x)[arg[i]];
    dx[size_t(arg[i])] += host(dy)[i];
  }
  OpCase fwd;
  fwd.name = name + " forward";
  fwd.inputs = {x};
  fwd.expected = {y, plane_index, y};
  fwd.max_nmse = kExact;  // selection only
  fwd.run = [ys, g](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor yt = out_like(be, ys), at = out_like(be, ys, DType::I64), y_only = out_like(be, ys);
    be.maxpool2d_forward(in[0], yt, &at, g);
    be.maxpool2d_forward(in[0], y_only, nullptr, g);
    return {vals(yt), vals(at), vals(y_only)};
  };
  OpCase bwd;
  bwd.name = name + " backward";
  bwd.inputs = {in_plane, dy};
  bwd.expected = {dx};
  bwd.run = [xs, g](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor dxt = out_like(be, xs);
    be.maxpool2d_backward(in[0], in[1], dxt, g);
    return {vals(dxt)};
  };
  // Overlapping windows sum several dy into one element, so the backward is exact only without overlap.
  if (g.stride >= g.kh && g.stride >= g.kw) bwd.max_nmse = kExact;
  return {fwd, bwd};
}

OpCase avgpool_case(const Pool2dGeom& g, Rng& rng) {
  OpCase c;
  c.name = "avgpool2d(" + geom_str(g) + ")";
  const Shape xs{g.n, g.c, g.h, g.w}, ys{g.n, g.c, g.ho, g.wo};
  c.inputs = {test::random_tensor(xs, rng), test::random_tensor(ys, rng)};
  c.expected = {ref_avgpool_forward(c.inputs[0], g), ref_avgpool_backward(c.inputs[1], g)};
  c.run = [xs, ys, g](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor yt = out_like(be, ys), dxt = out_like(be, xs);
    be.avgpool2d_forward(in[0], yt, g);
    be.avgpool2d_backward(in[1], dxt, g);
    return {vals(yt), vals(dxt)};
  };
  return c;
}

OpCase batchnorm_forward_case(const Shape& xs, bool train, float momentum, float eps, Rng& rng) {
  OpCase c;
  c.name = std::string("batchnorm2d_forward(") + shape_str(xs) + (train ? " train" : " eval") +
           " momentum=" + std::to_string(momentum) + " eps=" + std::to_string(eps) + ")";
  const int64_t ch = xs[1];
  // x off-centre so a variance computed as E[x²] - E[x]² would lose digits; gamma, beta, stats all random.
  c.inputs = {test::random_tensor(xs, rng, -1.0f, 2.0f), test::random_tensor({ch}, rng, 0.5f, 1.5f),
              test::random_tensor({ch}, rng), test::random_tensor({ch}, rng), test::random_tensor({ch}, rng, 0.5f, 2.0f)};
  const Tensor &x = c.inputs[0], &gamma = c.inputs[1], &beta = c.inputs[2], &rmean = c.inputs[3],
               &rvar = c.inputs[4];
  const ChannelStats s = ref_channel_stats(x);
  Values mean(static_cast<size_t>(ch)), invstd(static_cast<size_t>(ch)), new_rmean = vals(rmean), new_rvar = vals(rvar);
  for (int64_t k = 0; k < ch; ++k) {
    const size_t i = size_t(k);
    if (train) {
      mean[i] = s.mean[i];
      invstd[i] = 1.0 / std::sqrt(s.var[i] + eps);
      new_rmean[i] = (1.0 - momentum) * new_rmean[i] + momentum * s.mean[i];
      new_rvar[i] = (1.0 - momentum) * new_rvar[i] + momentum * s.var[i] * double(s.count) / double(s.count - 1);
    } else {
      mean[i] = host(rmean)[k];
      invstd[i] = 1.0 / std::sqrt(double(host(rvar)[k]) + eps);
    }
  }
  Values y(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t k = size_t(channel_of(x, i));
    y[size_t(i)] = (host(x)[i] - mean[k]) * invstd[k] * host(gamma)[k] + host(beta)[k];
  }
  c.expected = {y, new_rmean, new_rvar, mean, invstd};
  c.run = [xs, ch, train, momentum, eps](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor yt = out_like(be, xs), smean = out_like(be, {ch}), sinv = out_like(be, {ch});
    be.batchnorm2d_forward(in[0], in[1], in[2], in[3], in[4], train, momentum, eps, yt, smean, sinv);
    return {vals(yt), vals(in[3]), vals(in[4]), vals(smean), vals(sinv)};
  };
  return c;
}

OpCase batchnorm_backward_case(const Shape& xs, bool train, bool with_dx, Rng& rng) {
  OpCase c;
  c.name = std::string("batchnorm2d_backward(") + shape_str(xs) + (train ? " train" : " eval") +
           (with_dx ? "" : " no-dx") + ")";
  const int64_t ch = xs[1];
  Tensor x = test::random_tensor(xs, rng, -1.0f, 2.0f);
  // The saved statistics are what a forward would have saved: the batch's in train mode, running ones in eval.
  Tensor smean = Tensor::empty({ch}), sinv = Tensor::empty({ch});
  const ChannelStats s = ref_channel_stats(x);
  for (int64_t k = 0; k < ch; ++k) {
    smean.f32()[k] = train ? float(s.mean[size_t(k)]) : rng.uniform(-0.5f, 0.5f);
    sinv.f32()[k] = train ? float(1.0 / std::sqrt(s.var[size_t(k)] + 1e-5)) : rng.uniform(0.5f, 2.0f);
  }
  c.inputs = {x, test::random_tensor({ch}, rng, 0.5f, 1.5f), smean, sinv, test::random_tensor(xs, rng),
              test::random_tensor({ch}, rng), test::random_tensor({ch}, rng)};
  const Tensor& gamma = c.inputs[1];
  const Tensor& dy = c.inputs[4];
  Values sum_dy(size_t(ch), 0.0), sum_dy_xhat(size_t(ch), 0.0), xhat(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = channel_of(x, i);
    xhat[size_t(i)] = (double(host(x)[i]) - host(smean)[k]) * host(sinv)[k];
    sum_dy[size_t(k)] += host(dy)[i];
    sum_dy_xhat[size_t(k)] += host(dy)[i] * xhat[size_t(i)];
  }
  Values dx(size_t(x.numel()));
  const double count = double(s.count);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = channel_of(x, i);
    const size_t kk = size_t(k);
    const double scale = double(host(gamma)[k]) * host(sinv)[k];
    dx[size_t(i)] = train ? scale * (host(dy)[i] - sum_dy[kk] / count - xhat[size_t(i)] * sum_dy_xhat[kk] / count)
                          : scale * host(dy)[i];
  }
  if (with_dx) c.expected.push_back(dx);
  c.expected.push_back(accumulated(c.inputs[5], sum_dy_xhat));
  c.expected.push_back(accumulated(c.inputs[6], sum_dy));
  c.run = [xs, train, with_dx](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor dxt = out_like(be, xs);
    be.batchnorm2d_backward(in[0], in[1], in[2], in[3], in[4], train, with_dx ? &dxt : nullptr, &in[5], &in[6]);
    std::vector<Values> out;
    if (with_dx) out.push_back(vals(dxt));
    out.push_back(vals(in[5]));
    out.push_back(vals(in[6]));
    return out;
  };
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("backend ops: the backends under test") {
  CHECK(make_cpu_backend(1)->device() == Device::CPU);
  CHECK(make_cpu_backend(2)->threads() == 2);
  if (cuda_available()) {
    CHECK(make_backend("cuda", 0)->device() == Device::CUDA);
  } else {
    MESSAGE("no CUDA device: the GPU-vs-CPU parity checks of the backend ops were skipped");
    CHECK_THROWS_AS(make_backend("cuda", 0), UsageError);
  }
}

TEST_CASE("backend ops: fill, copy, add, axpy, scale") {
  Rng rng(101);
  const Shape shape{3, 7, 49};  // 1029 elements: not a multiple of any vector width or thread count
  {
    OpCase c;
    c.name = "fill";
    c.expected = {Values(1029, -1.25)};
    c.max_nmse = kExact;
    c.run = [shape](Backend& be, std::vector<Tensor>&) -> std::vector<Values> {
      Tensor t = out_like(be, shape);
      be.fill(t, -1.25f);
      return {vals(t)};
    };
    check_case(c);
  }
  {
    OpCase c;
    c.name = "copy";
    c.inputs = {test::random_tensor(shape, rng)};
    c.expected = {vals(c.inputs[0])};
    c.max_nmse = kExact;
    c.run = [](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      Tensor t = out_like(be, {1029});  // same numel, different shape: copy is by elements
      be.copy(in[0], t);
      return {vals(t)};
    };
    check_case(c);
  }
  for (int alias : {0, 1, 2}) {  // y separate, y = a, y = b
    OpCase c;
    c.name = "add(alias=" + std::to_string(alias) + ")";
    c.inputs = {test::random_tensor(shape, rng), test::random_tensor(shape, rng)};
    Values sum = vals(c.inputs[0]);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = float(sum[i] + host(c.inputs[1])[i]);  // one f32 rounding
    c.expected = {sum};
    c.max_nmse = kExact;
    c.run = [shape, alias](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      Tensor y = alias == 1 ? in[0] : alias == 2 ? in[1] : out_like(be, shape);
      be.add(in[0], in[1], y);
      return {vals(y)};
    };
    check_case(c);
  }
  {
    OpCase c;
    c.name = "axpy";
    c.inputs = {test::random_tensor(shape, rng), test::random_tensor(shape, rng)};
    Values y = vals(c.inputs[1]);
    for (size_t i = 0; i < y.size(); ++i) y[i] += -0.375 * host(c.inputs[0])[i];
    c.expected = {y};
    c.run = [](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      be.axpy(-0.375f, in[0], in[1]);
      return {vals(in[1])};
    };
    check_case(c);
  }
  {
    OpCase c;
    c.name = "scale";
    c.inputs = {test::random_tensor(shape, rng)};
    Values y = vals(c.inputs[0]);
    for (double& v : y) v *= 1.7;
    c.expected = {y};
    c.run = [](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      be.scale(in[0], 1.7f);
      return {vals(in[0])};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: dot and sum_squares") {
  Rng rng(102);
  for (int64_t n : {1, 17, 1000, 100003}) {  // the big one spans several threads' chunks
    OpCase c;
    c.name = "dot/sum_squares(n=" + std::to_string(n) + ")";
    c.inputs = {test::random_tensor({n}, rng), test::random_tensor({n}, rng, -2.0f, 3.0f)};
    double dot = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      dot += double(host(c.inputs[0])[i]) * host(c.inputs[1])[i];
      ss += double(host(c.inputs[0])[i]) * host(c.inputs[0])[i];
    }
    c.expected = {{dot}, {ss}};
    // Accumulated in double as the interface promises. Even if each product is rounded to f32 first, the relative
    // error stays ~2⁻²⁴/√3 (NMSE ~1e-15); an f32 accumulator over 10⁵ terms would be orders of magnitude worse.
    c.max_nmse = 1e-14;
    c.run = [](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      return {{be.dot(in[0], in[1])}, {be.sum_squares(in[0])}};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: normalize forward and backward") {
  Rng rng(103);
  const Shape xs{3, 3, 5, 7};
  OpCase c;
  c.name = "normalize";
  c.inputs = {test::random_tensor(xs, rng, 0.0f, 1.0f), test::random_tensor({3}, rng, 0.2f, 0.7f),
              test::random_tensor({3}, rng, 2.0f, 5.0f), test::random_tensor(xs, rng)};
  const Tensor &x = c.inputs[0], &mean = c.inputs[1], &inv = c.inputs[2], &dy = c.inputs[3];
  Values y(size_t(x.numel())), dx(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = channel_of(x, i);
    y[size_t(i)] = (double(host(x)[i]) - host(mean)[k]) * host(inv)[k];
    dx[size_t(i)] = double(host(dy)[i]) * host(inv)[k];
  }
  c.expected = {y, dx};
  c.run = [xs](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
    Tensor yt = out_like(be, xs), dxt = out_like(be, xs);
    be.normalize_forward(in[0], in[1], in[2], yt);
    be.normalize_backward(in[3], in[2], dxt);
    return {vals(yt), vals(dxt)};
  };
  check_case(c);
}

TEST_CASE("backend ops: linear forward and backward") {
  Rng rng(104);
  struct Dims {
    int64_t n, in, out;
  };
  for (Dims d : {Dims{1, 1, 1}, Dims{3, 17, 5}, Dims{7, 33, 10}, Dims{64, 120, 84}}) {
    for (bool bias : {true, false}) check_case(linear_forward_case(d.n, d.in, d.out, bias, rng));
    check_case(linear_backward_case(d.n, d.in, d.out, 1 | 2 | 4, rng));
  }
  // Partial requests: each null destination is skipped, the others still computed.
  check_case(linear_backward_case(5, 9, 4, 1, rng));
  check_case(linear_backward_case(5, 9, 4, 2 | 4, rng));
  check_case(linear_backward_case(5, 9, 4, 1 | 2, rng));
}

TEST_CASE("backend ops: conv2d forward and backward") {
  Rng rng(105);
  struct ConvGeomCase {
    Conv2dGeom g;
    bool bias;
  };
  const std::vector<ConvGeomCase> geoms = {
      {Conv2dGeom::make(2, 3, 7, 7, 4, 3, 3, 1, 1), true},    // C=3, same padding
      {Conv2dGeom::make(2, 3, 9, 8, 5, 3, 3, 2, 1), false},   // stride 2, padding, odd/non-square input, no bias
      {Conv2dGeom::make(3, 4, 6, 6, 6, 1, 1, 2, 0), false},   // 1x1 stride 2: a ResNet downsample shortcut
      {Conv2dGeom::make(2, 1, 12, 12, 3, 5, 5, 1, 0), true},  // C=1, 5x5 (direct path on the CPU)
      {Conv2dGeom::make(3, 1, 28, 28, 6, 5, 5, 1, 2), true},  // LeNet's first layer exactly (direct path)
      {Conv2dGeom::make(1, 2, 11, 10, 3, 3, 3, 2, 0), true},  // stride 2 without padding, odd sizes
      {Conv2dGeom::make(2, 3, 5, 6, 2, 3, 2, 1, 2), true},    // non-square kernel, padding 2 (taps entirely outside)
      {Conv2dGeom::make(1, 1, 1, 1, 1, 1, 1, 1, 0), true},    // degenerate 1x1x1
      {Conv2dGeom::make(4, 8, 15, 15, 8, 3, 3, 1, 1), true},  // big enough for the threads to split the work
  };
  for (const auto& gc : geoms) {
    check_case(conv_forward_case(gc.g, gc.bias, rng));
    check_case(conv_backward_case(gc.g, gc.bias ? (1 | 2 | 4) : (1 | 2), rng));
  }
  // The first layer of a net needs no dx; a frozen layer only dx.
  check_case(conv_backward_case(Conv2dGeom::make(2, 3, 7, 7, 4, 3, 3, 1, 1), 2 | 4, rng));
  check_case(conv_backward_case(Conv2dGeom::make(2, 3, 7, 7, 4, 3, 3, 2, 1), 1, rng));
  // The same for the CPU's direct path (thin input, stride 1): weight and bias gradients only, then bias only.
  check_case(conv_backward_case(Conv2dGeom::make(3, 1, 28, 28, 6, 5, 5, 1, 2), 2 | 4, rng));
  check_case(conv_backward_case(Conv2dGeom::make(3, 1, 28, 28, 6, 5, 5, 1, 2), 4, rng));
}

TEST_CASE("backend ops: max pooling forward and backward") {
  Rng rng(106);
  const std::vector<Pool2dGeom> geoms = {
      Pool2dGeom::make(2, 3, 8, 8, 2, 2, 2, 0),    // LeNet's 2x2/2
      Pool2dGeom::make(2, 2, 9, 7, 3, 3, 2, 1),    // ResNet's 3x3/2 pad 1: overlap, padding never wins
      Pool2dGeom::make(1, 3, 10, 11, 2, 2, 3, 0),  // stride > kernel: elements in no window get 0
      Pool2dGeom::make(2, 2, 7, 7, 3, 3, 1, 1),    // stride 1: heavy overlap
  };
  for (const Pool2dGeom& g : geoms)
    for (bool ties : {false, true})
      for (const OpCase& c : maxpool_cases(g, ties, rng)) check_case(c);
}

TEST_CASE("backend ops: max pooling propagates NaN like PyTorch") {
  // A NaN in a window wins it (PyTorch: `val > max || isnan(val)`), so a diverged net is not silently masked.
  Tensor x = Tensor::from_vector({1, 2, 3, 4,  //
                                  5, NAN, 7, 8,  //
                                  9, 10, 11, 12,  //
                                  13, 14, 15, 16},
                                 {1, 1, 4, 4});
  const Pool2dGeom g = Pool2dGeom::make(1, 1, 4, 4, 2, 2, 2, 0);
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    Tensor y = test::poisoned({1, 1, 2, 2}, be->device()), arg = test::poisoned({1, 1, 2, 2}, be->device(), DType::I64);
    be->maxpool2d_forward(test::to_device(x, be->device()), y, &arg, g);
    const Values yv = vals(y), av = vals(arg);
    CHECK(std::isnan(yv[0]));
    CHECK(av[0] == 5.0);
    CHECK(yv[1] == 8.0);
    CHECK(av[1] == 7.0);
    CHECK(yv[3] == 16.0);
    CHECK(av[3] == 15.0);
  }
}

TEST_CASE("backend ops: average pooling forward and backward") {
  Rng rng(107);
  check_case(avgpool_case(Pool2dGeom::make(2, 3, 8, 8, 2, 2, 2, 0), rng));
  check_case(avgpool_case(Pool2dGeom::make(2, 2, 9, 7, 3, 3, 2, 1), rng));  // padding counts in the divisor
  check_case(avgpool_case(Pool2dGeom::make(1, 2, 10, 11, 2, 2, 3, 0), rng));
  check_case(avgpool_case(Pool2dGeom::make(3, 4, 4, 4, 4, 4, 1, 0), rng));  // global (AdaptiveAvgPool2d(1))
  check_case(avgpool_case(Pool2dGeom::make(2, 5, 5, 3, 5, 3, 1, 0), rng));  // global over a non-square map
}

TEST_CASE("backend ops: batchnorm forward (train and eval) and backward") {
  Rng rng(108);
  for (bool train : {true, false}) {
    check_case(batchnorm_forward_case({4, 3, 5, 5}, train, 0.1f, 1e-5f, rng));
    check_case(batchnorm_forward_case({2, 5, 3, 7}, train, 0.3f, 1e-3f, rng));
    check_case(batchnorm_forward_case({8, 2, 1, 1}, train, 0.1f, 1e-5f, rng));  // after global pooling: HW = 1
    check_case(batchnorm_backward_case({4, 3, 5, 5}, train, true, rng));
    check_case(batchnorm_backward_case({2, 5, 3, 7}, train, true, rng));
    check_case(batchnorm_backward_case({8, 2, 1, 1}, train, true, rng));
    check_case(batchnorm_backward_case({3, 4, 4, 4}, train, false, rng));
  }
}

TEST_CASE("backend ops: relu forward and backward, in place and not") {
  Rng rng(109);
  const Shape shape{2, 3, 9, 19};
  for (bool in_place : {false, true}) {
    OpCase c;
    c.name = std::string("relu") + (in_place ? " in-place" : "");
    c.inputs = {test::random_tensor(shape, rng), test::random_tensor(shape, rng)};
    Values y = vals(c.inputs[0]), dx = vals(c.inputs[1]);
    for (size_t i = 0; i < y.size(); ++i) {
      y[i] = std::max(y[i], 0.0);
      if (!(y[i] > 0.0)) dx[i] = 0.0;
    }
    c.expected = {y, dx};
    c.max_nmse = kExact;
    c.run = [shape, in_place](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      Tensor yt = in_place ? in[0] : out_like(be, shape);
      Tensor dxt = in_place ? in[1] : out_like(be, shape);
      be.relu_forward(in[0], yt);
      be.relu_backward(yt, in[1], dxt);
      return {vals(yt), vals(dxt)};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: softmax cross-entropy, softmax, log_softmax, argmax") {
  Rng rng(110);
  struct Dims {
    int64_t n, k;
  };
  for (Dims d : {Dims{1, 2}, Dims{5, 10}, Dims{33, 7}, Dims{256, 10}}) {
    const std::string dims = "(n=" + std::to_string(d.n) + " k=" + std::to_string(d.k) + ")";
    Tensor logits = test::random_tensor({d.n, d.k}, rng, -4.0f, 4.0f);
    Tensor labels = test::random_labels(d.n, d.k, rng);
    const Values logp = ref_log_softmax(logits), probs = exp_of(logp);
    {
      OpCase c;
      c.name = "softmax_xent" + dims;
      double loss = 0.0;
      Tensor probs_f32 = Tensor::empty({d.n, d.k});  // backward's input: probabilities as a forward leaves them
      Values dlogits(probs.size());
      const double scale = 1.0 / double(d.n);
      for (int64_t i = 0; i < d.n; ++i) loss -= logp[size_t(i * d.k + labels.i64()[i])] / double(d.n);
      for (size_t i = 0; i < probs.size(); ++i) probs_f32.f32()[i] = float(probs[i]);
      for (int64_t i = 0; i < d.n; ++i)
        for (int64_t j = 0; j < d.k; ++j) {
          const size_t idx = size_t(i * d.k + j);
          dlogits[idx] = (double(probs_f32.f32()[idx]) - (labels.i64()[i] == j ? 1.0 : 0.0)) * float(scale);
        }
      c.inputs = {logits, labels, probs_f32};
      c.expected = {{loss}, probs, dlogits};
      c.run = [d, scale](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
        Tensor p = out_like(be, {d.n, d.k}), dl = out_like(be, {d.n, d.k});
        const double l = be.softmax_xent_forward(in[0], in[1], p);
        be.softmax_xent_backward(in[2], in[1], float(scale), dl);
        return {{l}, vals(p), vals(dl)};
      };
      check_case(c);
    }
    {
      OpCase c;
      c.name = "softmax/log_softmax/argmax_rows" + dims;
      Values argmax(size_t(d.n));
      for (int64_t i = 0; i < d.n; ++i) {
        const float* row = host(logits) + i * d.k;
        argmax[size_t(i)] = double(std::max_element(row, row + d.k) - row);  // random floats: no ties
      }
      c.inputs = {logits};
      c.expected = {probs, logp, argmax};
      c.run = [d](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
        Tensor p = out_like(be, {d.n, d.k}), lp = out_like(be, {d.n, d.k}), am = out_like(be, {d.n}, DType::I64);
        be.softmax(in[0], p);
        be.log_softmax(in[0], lp);
        be.argmax_rows(in[0], am);
        return {vals(p), vals(lp), vals(am)};
      };
      check_case(c);
    }
  }
  // Large logits: a softmax without the max shift overflows to inf/NaN here.
  {
    OpCase c;
    c.name = "softmax/log_softmax(large logits)";
    Tensor logits = test::random_tensor({4, 6}, rng, 80.0f, 120.0f);
    const Values logp = ref_log_softmax(logits);
    c.inputs = {logits};
    c.expected = {exp_of(logp), logp};
    c.run = [](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      Tensor p = out_like(be, {4, 6}), lp = out_like(be, {4, 6});
      be.softmax(in[0], p);
      be.log_softmax(in[0], lp);
      return {vals(p), vals(lp)};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: sgd_step") {
  Rng rng(111);
  const int64_t n = 1031;
  const std::vector<std::pair<std::string, kernels::SgdHyper>> variants = {
      {"plain", {0.1f, 0.0f, 0.0f, 0.0f, false, false}},
      {"weight decay", {0.05f, 0.0f, 0.0f, 0.01f, false, false}},
      {"momentum first step", {0.1f, 0.9f, 0.0f, 5e-4f, false, true}},
      {"momentum", {0.1f, 0.9f, 0.0f, 5e-4f, false, false}},
      {"momentum dampening", {0.1f, 0.8f, 0.3f, 0.0f, false, false}},
      {"nesterov first step", {0.1f, 0.9f, 0.0f, 1e-3f, true, true}},
      {"nesterov", {0.1f, 0.9f, 0.0f, 1e-3f, true, false}},
  };
  for (const auto& [label, hyper] : variants) {
    const kernels::SgdHyper h = hyper;  // a plain variable, so the lambda below can capture it
    OpCase c;
    c.name = "sgd_step(" + label + ")";
    c.inputs = {test::random_tensor({n}, rng), test::random_tensor({n}, rng), test::random_tensor({n}, rng)};
    // On the first step the buffer's old contents must be ignored: poison them to prove it.
    if (h.first_step) test::poison(c.inputs[2]);
    Values p = vals(c.inputs[0]), buf = vals(c.inputs[2]);
    for (size_t i = 0; i < p.size(); ++i) {
      double d = host(c.inputs[1])[i] + double(h.weight_decay) * p[i];
      if (h.momentum != 0.0f) {
        buf[i] = h.first_step ? d : double(h.momentum) * buf[i] + (1.0 - h.dampening) * d;
        d = h.nesterov ? d + double(h.momentum) * buf[i] : buf[i];
      }
      p[i] -= double(h.lr) * d;
    }
    c.expected = {p};
    if (h.momentum != 0.0f) c.expected.push_back(buf);
    c.run = [h](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      be.sgd_step(in[0], in[1], in[2], h);
      std::vector<Values> out{vals(in[0])};
      if (h.momentum != 0.0f) out.push_back(vals(in[2]));
      return out;
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: adam_step") {
  Rng rng(112);
  const int64_t n = 1031;
  auto hyper = [](float lr, float wd, bool decoupled, int t) {
    const float b1 = 0.9f, b2 = 0.999f;
    return kernels::AdamHyper{lr,        b1, b2, 1e-8f, wd, decoupled, 1.0f - std::pow(b1, float(t)),
                              std::sqrt(1.0f - std::pow(b2, float(t)))};
  };
  const std::vector<std::pair<std::string, kernels::AdamHyper>> variants = {
      {"adam t=1", hyper(0.1f, 0.0f, false, 1)},
      {"adam t=7 weight decay", hyper(0.05f, 0.01f, false, 7)},
      {"adamw t=3", hyper(0.05f, 0.1f, true, 3)},
  };
  for (const auto& [label, hyper] : variants) {
    const kernels::AdamHyper h = hyper;
    OpCase c;
    c.name = "adam_step(" + label + ")";
    c.inputs = {test::random_tensor({n}, rng), test::random_tensor({n}, rng), test::random_tensor({n}, rng, -0.1f, 0.1f),
                test::random_tensor({n}, rng, 1e-4f, 1e-2f)};
    Values p = vals(c.inputs[0]), m = vals(c.inputs[2]), v = vals(c.inputs[3]);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = host(c.inputs[1])[i];
      if (h.decoupled) {
        p[i] *= 1.0 - double(h.lr) * h.weight_decay;
      } else {
        g += double(h.weight_decay) * p[i];
      }
      m[i] = double(h.beta1) * m[i] + (1.0 - h.beta1) * g;
      v[i] = double(h.beta2) * v[i] + (1.0 - h.beta2) * g * g;
      const double denom = std::sqrt(v[i]) / h.bias_correction2_sqrt + h.eps;
      p[i] -= double(h.lr) / h.bias_correction1 * m[i] / denom;
    }
    c.expected = {p, m, v};
    c.run = [h](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
      be.adam_step(in[0], in[1], in[2], in[3], h);
      return {vals(in[0]), vals(in[2]), vals(in[3])};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: random fills follow Philox element by element") {
  // Element i of (seed, stream) is a pure function, so every backend and thread count must agree bit for bit on
  // the CPU; the reference below recomputes each element from the shared Philox functions.
  const int64_t n = 4099;
  for (uint64_t stream : {0ull, 5ull}) {
    const uint64_t seed = 0x5eed + stream;
    OpCase c;
    c.name = "fill_uniform/fill_normal(stream=" + std::to_string(stream) + ")";
    Values uni(static_cast<size_t>(n)), nor(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      uni[size_t(i)] = -2.0 + 5.0 * double(kernels::philox_uniform(seed, stream, uint64_t(i)));
      nor[size_t(i)] = 0.5 + 3.0 * double(kernels::philox_normal(seed, stream, uint64_t(i)));
    }
    c.expected = {uni, nor};
    c.max_nmse = 1e-12;  // only the final affine map's rounding may differ from the double reference
    c.same_across_cpu_threads = true;
    c.run = [n, seed, stream](Backend& be, std::vector<Tensor>&) -> std::vector<Values> {
      Tensor u = out_like(be, {n}), g = out_like(be, {n});
      be.fill_uniform(u, -2.0f, 3.0f, seed, stream);
      be.fill_normal(g, 0.5f, 3.0f, seed, stream);
      return {vals(u), vals(g)};
    };
    check_case(c);
  }
}

TEST_CASE("backend ops: random fills have the right range and moments") {
  const int64_t n = 1 << 16;
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    Tensor u = test::poisoned({n}, be->device()), g = test::poisoned({n}, be->device());
    Tensor u_other = test::poisoned({n}, be->device());
    be->fill_uniform(u, -1.0f, 3.0f, 42, 7);
    be->fill_uniform(u_other, -1.0f, 3.0f, 42, 8);
    be->fill_normal(g, 2.0f, 0.5f, 42, 7);
    const Values uv = vals(u), gv = vals(g), ov = vals(u_other);

    // Moments with 5-standard-error bands: a correct generator fails one of these about once in a million.
    auto moments = [](const Values& v) {
      double mean = 0.0, m2 = 0.0, m3 = 0.0, m4 = 0.0;
      for (double x : v) mean += x;
      mean /= double(v.size());
      for (double x : v) {
        const double d = x - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
      }
      m2 /= double(v.size());
      return std::array<double, 4>{mean, m2, m3 / double(v.size()) / std::pow(m2, 1.5),
                                   m4 / double(v.size()) / (m2 * m2)};
    };
    const double rn = std::sqrt(double(n));
    const auto mu = moments(uv);
    const double uvar = 16.0 / 12.0;  // (hi - lo)² / 12
    CHECK(std::abs(mu[0] - 1.0) < 5.0 * std::sqrt(uvar) / rn);
    CHECK(std::abs(mu[1] - uvar) < 5.0 * uvar * std::sqrt(0.8) / rn);  // Var(s²) = σ⁴(κ-1)/n, κ = 1.8
    CHECK(*std::min_element(uv.begin(), uv.end()) >= -1.0);
    CHECK(*std::max_element(uv.begin(), uv.end()) <= 3.0);

    const auto mg = moments(gv);
    CHECK(std::abs(mg[0] - 2.0) < 5.0 * 0.5 / rn);
    CHECK(std::abs(mg[1] - 0.25) < 5.0 * 0.25 * std::sqrt(2.0) / rn);
    CHECK(std::abs(mg[2]) < 5.0 * std::sqrt(6.0) / rn);         // skewness
    CHECK(std::abs(mg[3] - 3.0) < 5.0 * std::sqrt(24.0) / rn);  // kurtosis

    // Another stream is another sequence, not a shifted or equal one.
    int64_t equal = 0;
    for (int64_t i = 0; i < n; ++i) equal += uv[size_t(i)] == ov[size_t(i)] ? 1 : 0;
    CHECK(equal < 16);
  }
}

TEST_CASE("backend ops: ascent_step") {
  Rng rng(113);
  struct Variant {
    std::string label;
    float sign, max_norm_factor, noise_std;  // max_norm = factor · ||g|| (0: no clipping)
  };
  const std::vector<Variant> variants = {
      {"ascent", 1.0f, 0.0f, 0.0f},
      {"descent", -1.0f, 0.0f, 0.0f},
      {"ascent clipped", 1.0f, 0.25f, 0.0f},
      {"descent clip inactive", -1.0f, 4.0f, 0.0f},
      {"ascent clipped with noise", 1.0f, 0.3f, 0.01f},
      {"descent with noise", -1.0f, 0.0f, 0.02f},
  };
  for (int64_t n : {1, 1031, 100003}) {  // the big one spans several threads' chunks
    for (const Variant& v : variants) {
      OpCase c;
      c.name = "ascent_step(" + v.label + ", n=" + std::to_string(n) + ")";
      // |g| >= 0.5 with alternating signs: no element's step is so small that the rounding of params + step
      // (relative to the parameter, not the step) dominates the comparison, even at n = 1.
      c.inputs = {test::random_tensor({n}, rng), test::random_tensor({n}, rng, 0.5f, 2.0f)};
      for (int64_t i = 1; i < n; i += 2) c.inputs[1].f32()[i] = -c.inputs[1].f32()[i];
      const Values p0 = vals(c.inputs[0]), g = vals(c.inputs[1]);
      double sum_squares = 0.0;
      for (double x : g) sum_squares += x * x;
      const double norm = std::sqrt(sum_squares);
      kernels::AscentHyper h{0.5f};
      h.sign = v.sign;
      h.max_norm = static_cast<float>(v.max_norm_factor * norm);
      h.noise_std = v.noise_std;
      h.seed = 0xa5ce + uint64_t(n);
      h.stream = 3;
      // The noise must be exactly the stream fill_normal(t, 0, 1, seed, stream) writes.
      Tensor noise = Tensor::empty({n});
      make_cpu_backend(1)->fill_normal(noise, 0.0f, 1.0f, h.seed, h.stream);
      const double coef = h.max_norm > 0.0f ? std::min(1.0, double(h.max_norm) / (norm + 1e-6)) : 1.0;
      if (v.max_norm_factor > 0.0f) CHECK((coef < 1.0) == (v.max_norm_factor < 1.0f));
      // Compared as the update (params after − before) so the check is relative to the step, not the parameters.
      Values step(p0.size());
      for (size_t i = 0; i < step.size(); ++i)
        step[i] = double(h.sign) * h.lr * coef * g[i] + double(h.noise_std) * host(noise)[i];
      c.expected = {step, {norm}};
      c.max_nmse = 1e-11;  // f32 rounding of the step and of params + step: NMSE ≈ 1e-14
      c.run = [h, p0](Backend& be, std::vector<Tensor>& in) -> std::vector<Values> {
        const double returned = be.ascent_step(in[0], in[1], h);
        Values moved = vals(in[0]);
        for (size_t i = 0; i < moved.size(); ++i) moved[i] -= p0[i];
        return {moved, {returned}};
      };
      check_case(c);
    }
  }
}

TEST_CASE("backend ops: ascent_step noise is fill_normal's stream and noise_std 0 draws nothing") {
  Rng rng(114);
  const int64_t n = 4099;
  const Tensor p = test::random_tensor({n}, rng), g = test::random_tensor({n}, rng);
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    const Tensor grads = test::to_device(g, be->device());
    // lr = 0 leaves only the noise; noise_std = 0.5 makes 0.5·N exact, so the comparison is bit for bit.
    kernels::AscentHyper noise_only{0.0f};
    noise_only.noise_std = 0.5f;
    noise_only.seed = 99;
    noise_only.stream = 4;
    Tensor params = test::to_device(p, be->device());
    be->ascent_step(params, grads, noise_only);
    Tensor noise = test::poisoned({n}, be->device());
    be->fill_normal(noise, 0.0f, 1.0f, 99, 4);
    const Values got = vals(params), draws = vals(noise);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += float(got[size_t(i)]) != p.f32()[i] + 0.5f * float(draws[size_t(i)]);
    CHECK(differ == 0);

    // noise_std = 0 under any seed and stream is bit-identical to the update without the defence.
    kernels::AscentHyper plain{0.1f};
    plain.max_norm = 1.0f;
    kernels::AscentHyper zero_noise = plain;
    zero_noise.seed = 12345;
    zero_noise.stream = 6;
    Tensor a = test::to_device(p, be->device()), b = test::to_device(p, be->device());
    const double norm_a = be->ascent_step(a, grads, plain), norm_b = be->ascent_step(b, grads, zero_noise);
    CHECK(test::bit_identical(vals(a), vals(b)));
    CHECK(norm_a == norm_b);
  }
}

TEST_CASE("backend ops: ascent_step with a NaN gradient does not clip and reports a NaN norm") {
  // A NaN norm gives c = 1 (only a coefficient below 1 clips, as in clip_grad_norm): every finite element takes
  // its full step and the NaN reaches its parameter, so the failure is visible instead of masked.
  const int64_t n = 300;
  Tensor p = Tensor::empty({n}), g = Tensor::empty({n});
  for (int64_t i = 0; i < n; ++i) {
    p.f32()[i] = 0.5f;
    g.f32()[i] = i == 17 ? std::numeric_limits<float>::quiet_NaN() : 1.0f;
  }
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    Tensor params = test::to_device(p, be->device());
    kernels::AscentHyper h{0.25f};
    h.max_norm = 0.001f;
    CHECK(std::isnan(be->ascent_step(params, test::to_device(g, be->device()), h)));
    const Values got = vals(params);
    for (int64_t i = 0; i < n; ++i) {
      if (i == 17) {
        CHECK(std::isnan(got[size_t(i)]));
      } else if (got[size_t(i)] != 0.75) {
        FAIL_CHECK("element " << i << " = " << got[size_t(i)] << ", expected the unclipped 0.75");
      }
    }
  }
}

TEST_CASE("backend ops: ascent_step rejects a bad sign, negative noise and mismatched sizes") {
  for (const auto& be : backends_under_test()) {
    INFO("backend: ", describe(*be));
    Tensor p = test::to_device(Tensor::zeros({8}), be->device()), g = test::to_device(Tensor::zeros({8}), be->device());
    Tensor g7 = test::to_device(Tensor::zeros({7}), be->device());
    kernels::AscentHyper half_sign{0.1f};
    half_sign.sign = 0.5f;
    CHECK(test::contains(test::error_of<Error>([&] { be->ascent_step(p, g, half_sign); }), "sign"));
    kernels::AscentHyper negative_noise{0.1f};
    negative_noise.noise_std = -1.0f;
    CHECK(test::contains(test::error_of<Error>([&] { be->ascent_step(p, g, negative_noise); }), "noise_std"));
    const kernels::AscentHyper plain{0.1f};
    CHECK(test::contains(test::error_of<Error>([&] { be->ascent_step(p, g7, plain); }), "ascent grads"));
    Tensor empty_p = test::to_device(Tensor::zeros({0}), be->device());
    Tensor empty_g = test::to_device(Tensor::zeros({0}), be->device());
    CHECK(be->ascent_step(empty_p, empty_g, plain) == 0.0);
  }
}
