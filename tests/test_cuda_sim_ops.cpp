// The CUDA backend, built as host C++ under the kernel simulator (lethe::cuda_sim), against the CPU backend on every
// Backend op, in the style of ggml's test-backend-ops:
// - inputs are fresh seeded random values; the same values go to both backends;
// - outputs are poisoned with NaN (i64: a sentinel) first, and live as views inside larger buffers whose guard
//   elements must survive, so a forgotten element or an out-of-bounds write shows up;
// - outputs must be finite and match the CPU by NMSE = Σ(a-b)²/Σb²;
// - shapes include ones that are not multiples of the 256-thread block or the 32-lane warp.
//
// Thresholds. Ops that move or select values, and formulas without a multiply-add (fill, copy, add, ReLU,
// normalisation, pooling, argmax, Philox draws), must match exactly; multiply-adds within kFma (see there). Sums whose
// order differs (GEMMs, cuDNN, reductions) use kNmse = 1e-10: f32 sums of K ≤ 1000 terms reach NMSE ≈ K·u² ≤ 4e-12
// in any order, while a wrong index or a dropped term gives ≥ 1e-4 on random inputs.
//
// Every custom kernel runs here through the op that launches it (kernels/cuda/):
// - elementwise.cu: fill_kernel, add_kernel, axpy_kernel, scale_kernel, clamp_kernel, add_image_prior_grad_kernel,
//   relu_forward_kernel, relu_backward_kernel, normalize_forward_kernel, normalize_backward_kernel,
//   bias_activation_kernel (linear/conv bias + fused ReLU);
// - reduce.cu: dot_partials_kernel, sum_f64_kernel (dot, sum_squares), clip_by_norm_kernel (clip_grad_norm),
//   channel_partials_kernel, channel_finish_kernel, accumulate_channel_sums_kernel (bias and BatchNorm gradients),
//   check_labels_kernel (softmax cross-entropy with bad labels);
// - batchnorm.cu: batchnorm_mean_kernel, batchnorm_finish_stats_kernel, batchnorm_eval_stats_kernel,
//   batchnorm_apply_kernel, batchnorm_backward_dx_kernel;
// - pool.cu: maxpool2d_forward_kernel, maxpool2d_backward_kernel, avgpool2d_forward_kernel, avgpool2d_backward_kernel;
// - softmax.cu: softmax_xent_forward_kernel, softmax_xent_backward_kernel, softmax_kernel, log_softmax_kernel,
//   argmax_rows_kernel;
// - optim.cu: sgd_step_kernel, adam_step_kernel, ascent_step_kernel (the unlearning update); random.cu:
//   fill_uniform_kernel, fill_normal_kernel; ga.cu: ga_fitness_kernel, ga_elites_kernel, ga_tournament_kernel,
//   ga_breed_kernel (the black-box inversion's genetic algorithm);
// - im2col.cu: im2col_kernel, col2im_kernel, nchw_to_columns_kernel, columns_to_nchw_kernel (the LETHE_CONV=gemm
//   convolution path);
// - compare.cu: compare_items_kernel (every group size 16, 8, 4, 2, 1, float4 and scalar loads),
//   compare_segments_kernel (compare_params);
// - prune.cu: magnitude_histogram_kernel (the radix select of magnitude_kth), prune_magnitude_kernel;
// - zoo.cu: zoo_queries_kernel, zoo_step_kernel (Hu et al.'s label-inference probes).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "kernels/compare.h"
#include "tests/cuda_parity.h"
#include "tests/test_util.h"

namespace {

using namespace lethe;
using lethe::test::kExact;
using lethe::test::kNmse;
using lethe::test::Rng;
using lethe::test::Values;
using lethe::test::parity::cpu;
using lethe::test::parity::sim;

// Formulas with a multiply-add (axpy, the optimizer updates) run the same code on both sides, but the compiler may
// contract a·b + c into one FMA (the CPU library is built with -march=native, nvcc contracts by default), which
// rounds once instead of twice: a few ulps apart, NMSE around 1e-15.
constexpr double kFma = 1e-13;

// Tensors as views at an unaligned offset inside a buffer with sentinel guards on both sides.
constexpr int64_t kGuard = 5;
constexpr float kGuardF32 = 1234.5f;
constexpr int64_t kGuardI64 = 0x5a5a5a5a;

struct Guarded {
  Tensor whole, view;
};
std::vector<Guarded>& guarded_list() {
  static std::vector<Guarded> list;
  return list;
}

Tensor guarded(const Shape& shape, DType dtype, Device device) {
  if (device == Device::CUDA) sim();  // the backend installs the device allocator; a case may allocate first
  const int64_t numel = shape_numel(shape), total = numel + 2 * kGuard;
  Tensor whole = Tensor::empty({total}, dtype, device);
  if (dtype == DType::F32) {
    test::set_values(whole, std::vector<float>(size_t(total), kGuardF32));
  } else {
    const std::vector<int64_t> v(size_t(total), kGuardI64);
    copy_bytes(whole.raw(), device, v.data(), Device::CPU, whole.nbytes());
  }
  Tensor view = whole.rows(kGuard, numel).reshape(shape);
  guarded_list().push_back({whole, view});
  return view;
}

// Checks and forgets every guarded buffer made so far.
void check_guards() {
  for (const Guarded& g : guarded_list()) {
    const Values v = test::to_doubles(g.whole);
    const double sentinel = g.whole.dtype() == DType::F32 ? double(kGuardF32) : double(kGuardI64);
    int64_t damaged = 0;
    for (int64_t i = 0; i < kGuard; ++i) {
      damaged += v[size_t(i)] != sentinel ? 1 : 0;
      damaged += v[v.size() - 1 - size_t(i)] != sentinel ? 1 : 0;
    }
    CHECK_MESSAGE(damaged == 0, "an op wrote outside its tensor view");
  }
  guarded_list().clear();
}

// A copy of a CPU tensor on `device`, as a guarded view.
Tensor on(Device device, const Tensor& host) {
  Tensor t = guarded(host.shape(), host.dtype(), device);
  copy_bytes(t.raw(), device, host.raw(), Device::CPU, host.nbytes());
  return t;
}
// A poisoned output.
Tensor out(Device device, const Shape& shape, DType dtype = DType::F32) {
  Tensor t = guarded(shape, dtype, device);
  test::poison(t);
  return t;
}

// The simulated result must be finite (unless `allow_nonfinite`) and within `tol` of the CPU's.
void expect_match(const Tensor& sim_out, const Tensor& cpu_out, double tol, const std::string& what,
                  bool allow_nonfinite = false) {
  INFO(what);
  const Values a = test::to_doubles(sim_out), b = test::to_doubles(cpu_out);
  REQUIRE(a.size() == b.size());
  if (!allow_nonfinite) CHECK(test::count_nonfinite(a) == 0);
  if (tol == kExact) {
    int64_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += (a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) ? 0 : 1;
    CHECK(differ == 0);
  } else {
    CHECK(test::nmse(a, b) <= tol);
  }
}

Tensor rand_t(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  return test::random_tensor(shape, rng, lo, hi);
}

const std::vector<int64_t> kSizes = {1, 31, 255, 256, 257, 1000, 70001};

}  // namespace

CUDA_CASE("the device is present and named") {
  CHECK(cuda_impl::device_count() >= 1);
  CHECK(sim().device() == Device::CUDA);
  CHECK(sim().name() == kExpectedName);
  CHECK(test::contains(test::usage_error_of([] { cuda_impl::make_cuda_backend(99); }), "device 99 does not exist"));
}

CUDA_CASE("fill copy add axpy scale and relu match the cpu") {
  Rng rng(1);
  for (int64_t n : kSizes) {
    INFO("n = ", n);
    const Tensor a = rand_t({n}, rng), b = rand_t({n}, rng), y0 = rand_t({n}, rng);
    Backend& s = sim();
    Backend& c = cpu();

    Tensor sf = out(Device::CUDA, {n}), cf = out(Device::CPU, {n});
    s.fill(sf, 0.375f);
    c.fill(cf, 0.375f);
    expect_match(sf, cf, kExact, "fill");

    // copy host -> device -> device -> host
    Tensor d1 = out(Device::CUDA, {n}), d2 = out(Device::CUDA, {n}), h = out(Device::CPU, {n});
    s.copy(a, d1);
    s.copy(d1, d2);
    s.copy(d2, h);
    expect_match(h, a, kExact, "copy round trip");

    Tensor sa = on(Device::CUDA, a), sb = on(Device::CUDA, b);
    Tensor sy = out(Device::CUDA, {n}), cy = out(Device::CPU, {n});
    s.add(sa, sb, sy);
    c.add(a, b, cy);
    expect_match(sy, cy, kExact, "add");
    Tensor alias = on(Device::CUDA, a), alias_cpu = a.clone();
    s.add(alias, sb, alias);  // y aliases a
    c.add(alias_cpu, b, alias_cpu);
    expect_match(alias, alias_cpu, kExact, "add in place");

    Tensor sy0 = on(Device::CUDA, y0), cy0 = y0.clone();
    s.axpy(-0.7f, sa, sy0);
    c.axpy(-0.7f, a, cy0);
    expect_match(sy0, cy0, kFma, "axpy");
    s.scale(sy0, 1.5f);
    c.scale(cy0, 1.5f);
    expect_match(sy0, cy0, kFma, "scale");

    Tensor sr = out(Device::CUDA, {n}), cr = out(Device::CPU, {n});
    s.relu_forward(sa, sr);
    c.relu_forward(a, cr);
    expect_match(sr, cr, kExact, "relu_forward");
    Tensor sdx = out(Device::CUDA, {n}), cdx = out(Device::CPU, {n});
    s.relu_backward(sr, sb, sdx);
    c.relu_backward(cr, b, cdx);
    expect_match(sdx, cdx, kExact, "relu_backward");
    check_guards();
  }
}

CUDA_CASE("relu keeps NaN as the cpu does") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = Tensor::from_vector({-1.0f, nan, 2.0f, -0.0f, 0.0f}, {5});
  Tensor sy = out(Device::CUDA, {5}), cy = out(Device::CPU, {5});
  sim().relu_forward(on(Device::CUDA, x), sy);
  cpu().relu_forward(x, cy);
  expect_match(sy, cy, kExact, "relu with NaN", true);
  CHECK(std::isnan(test::to_doubles(sy)[1]));
  check_guards();
}

CUDA_CASE("dot and sum_squares match the cpu") {
  Rng rng(2);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(257), int64_t(4097), int64_t(300001)}) {
    INFO("n = ", n);
    const Tensor a = rand_t({n}, rng), b = rand_t({n}, rng);
    const Tensor sa = on(Device::CUDA, a), sb = on(Device::CUDA, b);
    const double sd = sim().dot(sa, sb), cd = cpu().dot(a, b);
    CHECK(std::abs(sd - cd) <= 1e-12 * (1.0 + std::abs(cd)));
    const double ss = sim().sum_squares(sa), cs = cpu().sum_squares(a);
    CHECK(std::abs(ss - cs) <= 1e-12 * (1.0 + cs));
    CHECK(sim().dot(sa, sb) == sd);  // deterministic: same bits on a second run
    check_guards();
  }
}

CUDA_CASE("clip_grad_norm scales on the device like the generic path") {
  Rng rng(3);
  for (float max_norm : {0.5f, 1e6f}) {
    const Tensor g = rand_t({5003}, rng);
    Tensor sg = on(Device::CUDA, g), cg = g.clone();
    const double sn = cuda_impl::clip_grad_norm(sim(), sg, max_norm);
    const double cn = cuda_impl::clip_grad_norm(cpu(), cg, max_norm);
    CHECK(std::abs(sn - cn) <= 1e-12 * cn);
    expect_match(sg, cg, kNmse, "clipped gradients");
    if (max_norm > 1e5f) expect_match(sg, g, kExact, "no clipping below the limit");
    check_guards();
  }
}

CUDA_CASE("normalize forward and backward match the cpu") {
  Rng rng(4);
  for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{3, 3, 32, 32}}) {
    const int64_t c = shape[1];
    const Tensor x = rand_t(shape, rng), mean = rand_t({c}, rng), inv = rand_t({c}, rng, 0.5f, 2.0f);
    Tensor sy = out(Device::CUDA, shape), cy = out(Device::CPU, shape);
    sim().normalize_forward(on(Device::CUDA, x), on(Device::CUDA, mean), on(Device::CUDA, inv), sy);
    cpu().normalize_forward(x, mean, inv, cy);
    expect_match(sy, cy, kExact, "normalize_forward");
    Tensor sdx = out(Device::CUDA, shape), cdx = out(Device::CPU, shape);
    sim().normalize_backward(on(Device::CUDA, x), on(Device::CUDA, inv), sdx);
    cpu().normalize_backward(x, inv, cdx);
    expect_match(sdx, cdx, kExact, "normalize_backward");
    check_guards();
  }
}

CUDA_CASE("linear forward and backward match the cpu") {
  Rng rng(5);
  struct Dims {
    int64_t n, in, out;
  };
  for (const Dims d : {Dims{1, 1, 1}, Dims{3, 17, 5}, Dims{33, 100, 10}, Dims{64, 257, 31}}) {
    for (int variant = 0; variant < 3; ++variant) {  // 0: bias, 1: bias + relu, 2: no bias
      INFO("n=", d.n, " in=", d.in, " out=", d.out, " variant=", variant);
      const bool relu = variant == 1, bias = variant != 2;
      const Tensor x = rand_t({d.n, d.in}, rng), w = rand_t({d.out, d.in}, rng), b = rand_t({d.out}, rng);
      const Tensor dy = rand_t({d.n, d.out}, rng), dw0 = rand_t({d.out, d.in}, rng), db0 = rand_t({d.out}, rng);
      const Tensor sx = on(Device::CUDA, x), sw = on(Device::CUDA, w), sb = on(Device::CUDA, b);
      Tensor sy = out(Device::CUDA, {d.n, d.out}), cy = out(Device::CPU, {d.n, d.out});
      sim().linear_forward(sx, sw, bias ? &sb : nullptr, sy, relu);
      cpu().linear_forward(x, w, bias ? &b : nullptr, cy, relu);
      expect_match(sy, cy, kNmse, "linear y");

      Tensor sdx = out(Device::CUDA, {d.n, d.in}), cdx = out(Device::CPU, {d.n, d.in});
      Tensor sdw = on(Device::CUDA, dw0), cdw = dw0.clone(), sdb = on(Device::CUDA, db0), cdb = db0.clone();
      sim().linear_backward(sx, sw, on(Device::CUDA, dy), &sdx, &sdw, bias ? &sdb : nullptr);
      cpu().linear_backward(x, w, dy, &cdx, &cdw, bias ? &cdb : nullptr);
      expect_match(sdx, cdx, kNmse, "linear dx");
      expect_match(sdw, cdw, kNmse, "linear dw (accumulated)");
      expect_match(sdb, cdb, kNmse, "linear db (accumulated)");
      check_guards();
    }
  }
}

CUDA_CASE("conv2d forward and backward match the cpu on both paths") {
  Rng rng(6);
  const std::vector<Conv2dGeom> geoms = {
      Conv2dGeom::make(2, 3, 8, 8, 4, 3, 3, 1, 1),    Conv2dGeom::make(3, 1, 28, 28, 6, 5, 5, 1, 0),
      Conv2dGeom::make(2, 4, 9, 7, 5, 3, 3, 2, 1),    Conv2dGeom::make(1, 2, 5, 5, 3, 1, 1, 1, 0),
      Conv2dGeom::make(5, 3, 6, 6, 8, 3, 3, 2, 0),    Conv2dGeom::make(2, 2, 11, 10, 3, 5, 5, 2, 2),
      Conv2dGeom::make(3, 16, 4, 4, 17, 3, 3, 1, 1),
  };
  for (const char* path : {"cudnn", "gemm"}) {
    Backend& s = sim(path);
    for (const Conv2dGeom& g : geoms) {
      for (int variant = 0; variant < 3; ++variant) {  // 0: bias, 1: bias + relu, 2: no bias
        INFO("path=", path, " n=", g.n, " c=", g.c, " h=", g.h, " w=", g.w, " o=", g.o, " k=", g.kh, " s=", g.stride,
             " p=", g.pad, " variant=", variant);
        const bool relu = variant == 1, bias = variant != 2;
        const Shape xs{g.n, g.c, g.h, g.w}, ws{g.o, g.c, g.kh, g.kw}, ys{g.n, g.o, g.ho, g.wo};
        const Tensor x = rand_t(xs, rng), w = rand_t(ws, rng), b = rand_t({g.o}, rng), dy = rand_t(ys, rng);
        const Tensor dw0 = rand_t(ws, rng), db0 = rand_t({g.o}, rng);
        const Tensor sx = on(Device::CUDA, x), sw = on(Device::CUDA, w), sb = on(Device::CUDA, b);
        std::unique_ptr<LayerState> sim_state, cpu_state;
        Tensor sy = out(Device::CUDA, ys), cy = out(Device::CPU, ys);
        s.conv2d_forward(sx, sw, bias ? &sb : nullptr, sy, g, relu, &sim_state);
        cpu().conv2d_forward(x, w, bias ? &b : nullptr, cy, g, relu, &cpu_state);
        expect_match(sy, cy, kNmse, "conv y");

        Tensor sdx = out(Device::CUDA, xs), cdx = out(Device::CPU, xs);
        Tensor sdw = on(Device::CUDA, dw0), cdw = dw0.clone(), sdb = on(Device::CUDA, db0), cdb = db0.clone();
        s.conv2d_backward(sx, sw, on(Device::CUDA, dy), &sdx, &sdw, bias ? &sdb : nullptr, g, &sim_state);
        cpu().conv2d_backward(x, w, dy, &cdx, &cdw, bias ? &cdb : nullptr, g, &cpu_state);
        expect_match(sdx, cdx, kNmse, "conv dx");
        expect_match(sdw, cdw, kNmse, "conv dw (accumulated)");
        expect_match(sdb, cdb, kNmse, "conv db (accumulated)");

        // State written by another backend (the CPU's) is ignored; no state at all works too.
        Tensor sdx2 = out(Device::CUDA, xs);
        s.conv2d_backward(sx, sw, on(Device::CUDA, dy), &sdx2, nullptr, nullptr, g, &cpu_state);
        expect_match(sdx2, cdx, kNmse, "conv dx with foreign state");
        Tensor sdx3 = out(Device::CUDA, xs);
        s.conv2d_backward(sx, sw, on(Device::CUDA, dy), &sdx3, nullptr, nullptr, g, nullptr);
        expect_match(sdx3, cdx, kNmse, "conv dx without state");
        check_guards();
      }
    }
  }
}

CUDA_CASE("max pooling matches the cpu exactly with argmax ties and NaN") {
  Rng rng(7);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Pool2dGeom> geoms = {
      Pool2dGeom::make(2, 3, 8, 8, 2, 2, 2, 0),   Pool2dGeom::make(2, 3, 7, 9, 3, 3, 2, 1),
      Pool2dGeom::make(1, 2, 5, 5, 3, 3, 1, 1),   Pool2dGeom::make(3, 5, 13, 11, 2, 2, 2, 0),
      Pool2dGeom::make(1, 1, 4, 4, 4, 4, 1, 0),   Pool2dGeom::make(2, 1, 6, 6, 3, 3, 3, 1),
  };
  for (const Pool2dGeom& g : geoms) {
    for (bool with_nan : {false, true}) {
      INFO("n=", g.n, " c=", g.c, " h=", g.h, " w=", g.w, " k=", g.kh, " s=", g.stride, " p=", g.pad,
           " nan=", with_nan);
      const Shape xs{g.n, g.c, g.h, g.w}, ys{g.n, g.c, g.ho, g.wo};
      std::vector<float> xv = rand_t(xs, rng).to_vector();
      // Ties (first maximum wins) and NaN (wins the window).
      for (size_t i = 0; i < xv.size(); i += 5) xv[i] = 0.5f;
      if (with_nan)
        for (size_t i = 3; i < xv.size(); i += 17) xv[i] = nan;
      const Tensor x = Tensor::from_vector(xv, xs), dy = rand_t(ys, rng);
      Tensor sy = out(Device::CUDA, ys), cy = out(Device::CPU, ys);
      Tensor si = out(Device::CUDA, ys, DType::I64), ci = out(Device::CPU, ys, DType::I64);
      sim().maxpool2d_forward(on(Device::CUDA, x), sy, &si, g);
      cpu().maxpool2d_forward(x, cy, &ci, g);
      expect_match(sy, cy, kExact, "maxpool y", with_nan);
      expect_match(si, ci, kExact, "maxpool argmax");
      Tensor sy2 = out(Device::CUDA, ys);
      sim().maxpool2d_forward(on(Device::CUDA, x), sy2, nullptr, g);
      expect_match(sy2, cy, kExact, "maxpool y without argmax", with_nan);

      Tensor sdx = out(Device::CUDA, xs), cdx = out(Device::CPU, xs);
      sim().maxpool2d_backward(si, on(Device::CUDA, dy), sdx, g);
      cpu().maxpool2d_backward(ci, dy, cdx, g);
      expect_match(sdx, cdx, kExact, "maxpool dx");
      check_guards();
    }
  }
}

CUDA_CASE("average pooling matches the cpu") {
  Rng rng(8);
  const std::vector<Pool2dGeom> geoms = {
      Pool2dGeom::make(2, 3, 8, 8, 2, 2, 2, 0),  Pool2dGeom::make(2, 3, 7, 9, 3, 3, 2, 1),
      Pool2dGeom::make(3, 7, 4, 4, 4, 4, 1, 0),  Pool2dGeom::make(1, 2, 9, 9, 3, 3, 3, 1),
      Pool2dGeom::make(2, 5, 5, 6, 2, 3, 1, 1),
  };
  for (const Pool2dGeom& g : geoms) {
    INFO("n=", g.n, " c=", g.c, " h=", g.h, " w=", g.w, " k=", g.kh, "x", g.kw, " s=", g.stride, " p=", g.pad);
    const Shape xs{g.n, g.c, g.h, g.w}, ys{g.n, g.c, g.ho, g.wo};
    const Tensor x = rand_t(xs, rng), dy = rand_t(ys, rng);
    Tensor sy = out(Device::CUDA, ys), cy = out(Device::CPU, ys);
    sim().avgpool2d_forward(on(Device::CUDA, x), sy, g);
    cpu().avgpool2d_forward(x, cy, g);
    expect_match(sy, cy, kExact, "avgpool y");
    Tensor sdx = out(Device::CUDA, xs), cdx = out(Device::CPU, xs);
    sim().avgpool2d_backward(on(Device::CUDA, dy), sdx, g);
    cpu().avgpool2d_backward(dy, cdx, g);
    // Overlapping windows sum several dy/k terms; the CPU build contracts them to FMA under -march=native.
    expect_match(sdx, cdx, 1e-12, "avgpool dx");
    check_guards();
  }
}

CUDA_CASE("batchnorm train and eval match the cpu") {
  Rng rng(9);
  for (const Shape& xs : {Shape{1, 2, 1, 1}, Shape{4, 3, 5, 5}, Shape{8, 5, 13, 11}, Shape{2, 16, 1, 1},
                          Shape{3, 2, 40, 40}}) {
    for (int mode = 0; mode < 3; ++mode) {  // 0: train, 1: train + relu, 2: eval
      INFO("shape=", shape_str(xs), " mode=", mode);
      const bool train = mode != 2, relu = mode == 1;
      const int64_t c = xs[1];
      const Tensor x = rand_t(xs, rng, -2.0f, 3.0f), gamma = rand_t({c}, rng), beta = rand_t({c}, rng);
      const Tensor rm0 = rand_t({c}, rng), rv0 = rand_t({c}, rng, 0.5f, 2.0f), dy = rand_t(xs, rng);
      const Tensor dg0 = rand_t({c}, rng), db0 = rand_t({c}, rng);
      Tensor srm = on(Device::CUDA, rm0), srv = on(Device::CUDA, rv0), crm = rm0.clone(), crv = rv0.clone();
      Tensor sy = out(Device::CUDA, xs), cy = out(Device::CPU, xs);
      Tensor ssm = out(Device::CUDA, {c}), ssi = out(Device::CUDA, {c}), csm = out(Device::CPU, {c}),
             csi = out(Device::CPU, {c});
      const Tensor sx = on(Device::CUDA, x), sg = on(Device::CUDA, gamma);
      sim().batchnorm2d_forward(sx, sg, on(Device::CUDA, beta), srm, srv, train, 0.1f, 1e-5f, sy, ssm, ssi, relu);
      cpu().batchnorm2d_forward(x, gamma, beta, crm, crv, train, 0.1f, 1e-5f, cy, csm, csi, relu);
      expect_match(sy, cy, kNmse, "batchnorm y");
      expect_match(srm, crm, kNmse, "running mean");
      expect_match(srv, crv, kNmse, "running var");
      expect_match(ssm, csm, kNmse, "save_mean");
      expect_match(ssi, csi, kNmse, "save_invstd");

      Tensor sdx = out(Device::CUDA, xs), cdx = out(Device::CPU, xs);
      Tensor sdg = on(Device::CUDA, dg0), cdg = dg0.clone(), sdb = on(Device::CUDA, db0), cdb = db0.clone();
      sim().batchnorm2d_backward(sx, sg, ssm, ssi, on(Device::CUDA, dy), train, &sdx, &sdg, &sdb);
      cpu().batchnorm2d_backward(x, gamma, csm, csi, dy, train, &cdx, &cdg, &cdb);
      expect_match(sdx, cdx, kNmse, "batchnorm dx");
      expect_match(sdg, cdg, kNmse, "batchnorm dgamma (accumulated)");
      expect_match(sdb, cdb, kNmse, "batchnorm dbeta (accumulated)");
      check_guards();
    }
  }
}

CUDA_CASE("softmax cross-entropy softmax log-softmax and argmax match the cpu") {
  Rng rng(10);
  struct Dims {
    int64_t n, k;
  };
  for (const Dims d : {Dims{1, 1}, Dims{7, 10}, Dims{33, 100}, Dims{5, 257}, Dims{70, 3}}) {
    INFO("n=", d.n, " k=", d.k);
    const Tensor logits = rand_t({d.n, d.k}, rng, -5.0f, 5.0f), labels = test::random_labels(d.n, d.k, rng);
    const Tensor sl = on(Device::CUDA, logits), slab = on(Device::CUDA, labels);
    for (bool labels_on_device : {true, false}) {
      Tensor sp = out(Device::CUDA, {d.n, d.k}), cp = out(Device::CPU, {d.n, d.k});
      const double sloss = sim().softmax_xent_forward(sl, labels_on_device ? slab : labels, sp);
      const double closs = cpu().softmax_xent_forward(logits, labels, cp);
      CHECK(std::abs(sloss - closs) <= 1e-6 * (1.0 + std::abs(closs)));
      expect_match(sp, cp, kNmse, "xent probs");
      Tensor sd = out(Device::CUDA, {d.n, d.k}), cd = out(Device::CPU, {d.n, d.k});
      sim().softmax_xent_backward(sp, labels_on_device ? slab : labels, 1.0f / float(d.n), sd);
      cpu().softmax_xent_backward(cp, labels, 1.0f / float(d.n), cd);
      expect_match(sd, cd, kNmse, "xent dlogits");
    }
    Tensor sp = out(Device::CUDA, {d.n, d.k}), cp = out(Device::CPU, {d.n, d.k});
    sim().softmax(sl, sp);
    cpu().softmax(logits, cp);
    expect_match(sp, cp, kNmse, "softmax");
    Tensor so = out(Device::CUDA, {d.n, d.k}), co = out(Device::CPU, {d.n, d.k});
    sim().log_softmax(sl, so);
    cpu().log_softmax(logits, co);
    expect_match(so, co, kNmse, "log_softmax");
    Tensor sa = out(Device::CUDA, {d.n}, DType::I64), ca = out(Device::CPU, {d.n}, DType::I64);
    sim().argmax_rows(sl, sa);
    cpu().argmax_rows(logits, ca);
    expect_match(sa, ca, kExact, "argmax");
    check_guards();
  }
}

CUDA_CASE("argmax breaks ties and treats NaN as the cpu does") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const int64_t k = 40;
  std::vector<float> v(size_t(6 * k), 0.0f);
  v[0 * k + 33] = 2.0f, v[0 * k + 7] = 2.0f;  // tie: first wins
  v[1 * k + 0] = nan, v[1 * k + 5] = 9.0f;    // NaN at 0 keeps index 0
  v[2 * k + 3] = nan, v[2 * k + 39] = 1.0f;   // NaN elsewhere never wins
  v[3 * k + 20] = inf;
  for (int64_t j = 0; j < k; ++j) v[size_t(4 * k + j)] = -inf;  // all equal: index 0
  for (int64_t j = 0; j < k; ++j) v[size_t(5 * k + j)] = j == 0 ? -1.0f : nan;
  const Tensor logits = Tensor::from_vector(v, {6, k});
  Tensor sa = out(Device::CUDA, {6}, DType::I64), ca = out(Device::CPU, {6}, DType::I64);
  sim().argmax_rows(on(Device::CUDA, logits), sa);
  cpu().argmax_rows(logits, ca);
  expect_match(sa, ca, kExact, "argmax special values");
  CHECK(test::to_doubles(sa) == Values{7, 0, 39, 20, 0, 0});
  check_guards();
}

CUDA_CASE("a label out of range is an error on the device path too") {
  const Tensor logits = Tensor::from_vector({0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, {2, 3});
  const Tensor bad = Tensor::from_labels({1, 3});
  Tensor sp = out(Device::CUDA, {2, 3});
  const Tensor sl = on(Device::CUDA, logits), sbad = on(Device::CUDA, bad);
  CHECK(test::contains(test::error_of<Error>([&] { sim().softmax_xent_forward(sl, sbad, sp); }), "outside [0, 3)"));
  CHECK(test::contains(test::error_of<Error>([&] { sim().softmax_xent_forward(sl, bad, sp); }), "outside [0, 3)"));
  Tensor sd = out(Device::CUDA, {2, 3});
  CHECK(test::contains(test::error_of<Error>([&] { sim().softmax_xent_backward(sp, sbad, 0.5f, sd); }),
                       "outside [0, 3)"));
  guarded_list().clear();
}

CUDA_CASE("the fused optimizer steps match the cpu") {
  Rng rng(11);
  for (int64_t n : kSizes) {
    INFO("n = ", n);
    const Tensor p = rand_t({n}, rng), g = rand_t({n}, rng), m = rand_t({n}, rng), v = rand_t({n}, rng, 0.0f, 1.0f);
    for (int variant = 0; variant < 3; ++variant) {
      const kernels::SgdHyper h{0.05f, variant == 0 ? 0.0f : 0.9f, 0.1f, 5e-4f, variant == 2, variant == 1};
      Tensor sp = on(Device::CUDA, p), sm = on(Device::CUDA, m), cp = p.clone(), cm = m.clone();
      sim().sgd_step(sp, on(Device::CUDA, g), sm, h);
      cpu().sgd_step(cp, g, cm, h);
      expect_match(sp, cp, kFma, "sgd params");
      expect_match(sm, cm, kFma, "sgd momentum");
    }
    for (bool decoupled : {false, true}) {
      const float t = 3.0f;
      const kernels::AdamHyper h{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, decoupled, 1.0f - std::pow(0.9f, t),
                                 std::sqrt(1.0f - std::pow(0.999f, t))};
      Tensor sp = on(Device::CUDA, p), sm = on(Device::CUDA, m), sv = on(Device::CUDA, v);
      Tensor cp = p.clone(), cm = m.clone(), cv = v.clone();
      sim().adam_step(sp, on(Device::CUDA, g), sm, sv, h);
      cpu().adam_step(cp, g, cm, cv, h);
      expect_match(sp, cp, kFma, "adam params");
      expect_match(sm, cm, kFma, "adam m");
      expect_match(sv, cv, kFma, "adam v");
    }
    check_guards();
  }
}

CUDA_CASE("the fused ascent step matches the cpu") {
  Rng rng(13);
  for (int64_t n : {int64_t(1), int64_t(255), int64_t(257), int64_t(1000), int64_t(100003)}) {
    INFO("n = ", n);
    const Tensor p = rand_t({n}, rng), g = rand_t({n}, rng, -2.0f, 2.0f);
    const double norm = std::sqrt(cpu().sum_squares(g));
    for (int variant = 0; variant < 6; ++variant) {
      INFO("variant ", variant);
      kernels::AscentHyper h{0.05f};
      h.sign = variant % 2 == 0 ? 1.0f : -1.0f;
      h.max_norm = variant >= 2 && variant < 4 ? static_cast<float>(0.3 * norm) : variant == 4 ? 1e6f : 0.0f;
      h.noise_std = variant >= 3 ? 0.02f : 0.0f;
      h.seed = 77 + uint64_t(variant);
      h.stream = uint64_t(n);
      Tensor sp = on(Device::CUDA, p), cp = p.clone();
      const Tensor sg = on(Device::CUDA, g);
      const double sim_norm = sim().ascent_step(sp, sg, h), cpu_norm = cpu().ascent_step(cp, g, h);
      // The norms sum in different orders; the clip coefficient may differ by an ulp, hence kFma on the update.
      CHECK(std::abs(sim_norm - cpu_norm) <= 1e-12 * cpu_norm);
      CHECK(std::abs(sim_norm - norm) <= 1e-12 * norm);
      expect_match(sp, cp, kFma, "ascent params");
      expect_match(sg, g, kExact, "ascent grads untouched");
    }
    check_guards();
  }
  // A NaN in the gradient: the norm is NaN, nothing is clipped (c = 1) and the NaN reaches its parameter on both.
  // Values whose update is exact (0.5 + 0.25·1), so both sides must agree bit for bit whatever they contract.
  Tensor p = Tensor::empty({300}), g = Tensor::empty({300});
  test::set_values(p, std::vector<float>(300, 0.5f));
  test::set_values(g, std::vector<float>(300, 1.0f));
  g.f32()[123] = std::numeric_limits<float>::quiet_NaN();
  kernels::AscentHyper h{0.25f};
  h.max_norm = 0.01f;
  Tensor sp = on(Device::CUDA, p), cp = p.clone();
  CHECK(std::isnan(sim().ascent_step(sp, on(Device::CUDA, g), h)));
  CHECK(std::isnan(cpu().ascent_step(cp, g, h)));
  expect_match(sp, cp, kExact, "ascent params with a NaN gradient", /*allow_nonfinite=*/true);
  CHECK(test::count_nonfinite(sp) == 1);
  check_guards();
}

CUDA_CASE("Philox fills give the cpu's streams") {
  for (int64_t n : kSizes) {
    INFO("n = ", n);
    // The draws themselves ([0, 1) and N(0, 1): no multiply-add) exactly, the affine maps within kFma.
    Tensor su = out(Device::CUDA, {n}), cu = out(Device::CPU, {n});
    sim().fill_uniform(su, 0.0f, 1.0f, 42, 7);
    cpu().fill_uniform(cu, 0.0f, 1.0f, 42, 7);
    expect_match(su, cu, kExact, "fill_uniform draws");
    sim().fill_uniform(su, -0.25f, 0.75f, 42, 7);
    cpu().fill_uniform(cu, -0.25f, 0.75f, 42, 7);
    expect_match(su, cu, kFma, "fill_uniform");
    Tensor sn = out(Device::CUDA, {n}), cn = out(Device::CPU, {n});
    sim().fill_normal(sn, 0.0f, 1.0f, 42, 9);
    cpu().fill_normal(cn, 0.0f, 1.0f, 42, 9);
    expect_match(sn, cn, kHostMath, "fill_normal draws");
    sim().fill_normal(sn, 0.5f, 2.0f, 42, 9);
    cpu().fill_normal(cn, 0.5f, 2.0f, 42, 9);
    expect_match(sn, cn, kFma, "fill_normal");
    check_guards();
  }
}

CUDA_CASE("clamp and the image prior's gradient give the cpu's values") {
  Rng rng(63);
  for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{3, 1, 28, 28}, Shape{5, 3, 17, 9}}) {
    INFO("shape ", shape[0], "x", shape[1], "x", shape[2], "x", shape[3]);
    const Tensor x = rand_t(shape, rng, -0.5f, 1.5f), dx = rand_t(shape, rng);
    Tensor s_dx = on(Device::CUDA, dx), c_dx = dx.clone();
    sim().add_image_prior_grad(on(Device::CUDA, x), s_dx, 0.3f, 0.01f);
    cpu().add_image_prior_grad(x, c_dx, 0.3f, 0.01f);
    expect_match(s_dx, c_dx, kFma, "image prior gradient");
    Tensor s_y = on(Device::CUDA, x), c_y = x.clone();
    sim().clamp(s_y, 0.0f, 1.0f);
    cpu().clamp(c_y, 0.0f, 1.0f);
    expect_match(s_y, c_y, kExact, "clamp");
    check_guards();
  }
}

// The radix select must return the very element nth_element picks on the CPU (ties, zeros, both signs included), and
// pruning at that threshold must zero the same weights.
CUDA_CASE("magnitude pruning selects and prunes like the cpu") {
  Rng rng(67);
  for (const int64_t n : {int64_t{1}, int64_t{255}, int64_t{4099}, int64_t{70001}}) {
    INFO("n ", n);
    Tensor w = rand_t({n}, rng, -3.0f, 3.0f);
    float* p = w.f32();
    for (int64_t i = 0; i < n; i += 7) p[i] = 0.0f;
    for (int64_t i = 2; i < n; i += 13) p[i] = -p[i - 1];
    const Tensor sw = on(Device::CUDA, w);
    for (const int64_t k : {int64_t{0}, n / 4, n / 2, n - 1}) {
      INFO("k ", k);
      const float threshold = cpu().magnitude_kth(w, k);
      CHECK(sim().magnitude_kth(sw, k) == threshold);
      Tensor s_pruned = on(Device::CUDA, w), c_pruned = w.clone();
      sim().prune_magnitude(s_pruned, threshold);
      cpu().prune_magnitude(c_pruned, threshold);
      expect_match(s_pruned, c_pruned, kExact, "prune_magnitude");
    }
    check_guards();
  }
}

// ZOO's query images and coordinate-Adam step (kernels/zoo.h): the same probes, draws and logits give the same bits
// (on a device, the step to within kHostMath);
// a subset of probes is active, so idle rows must stay untouched, and the state starts mid-run (powers below 1).
CUDA_CASE("ZOO queries and coordinate Adam step like the cpu") {
  Rng rng(68);
  struct Case {
    int64_t probes, active, pixels, per_probe, classes;
  };
  for (const Case c : {Case{1, 1, 1, 1, 2}, Case{7, 4, 50, 17, 10}, Case{12, 12, 196, 196, 10}}) {
    INFO("M ", c.probes, " A ", c.active, " D ", c.pixels, " S ", c.per_probe);
    const Tensor x = rand_t({c.probes, c.pixels}, rng, 0.0f, 1.0f);
    std::vector<int64_t> rows(static_cast<size_t>(c.active));
    for (int64_t a = 0; a < c.active; ++a) rows[static_cast<size_t>(a)] = (a * 5 + 2) % c.probes;
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    const int64_t active = static_cast<int64_t>(rows.size());
    Tensor coords = Tensor::empty({active, c.per_probe}, DType::I64);
    for (int64_t a = 0; a < active; ++a)
      for (int64_t j = 0; j < c.per_probe; ++j) coords.i64()[a * c.per_probe + j] = (j + 3 * a) % c.pixels;
    const Tensor row_t = Tensor::from_labels(rows);
    const int64_t query_rows = active * 2 * c.per_probe;
    Tensor s_queries = out(Device::CUDA, {query_rows, c.pixels}), c_queries = out(Device::CPU, {query_rows, c.pixels});
    kernels::ZooHyper hp;
    hp.h = 0.01f;
    sim().zoo_queries(on(Device::CUDA, x), on(Device::CUDA, row_t), on(Device::CUDA, coords), hp.h, s_queries);
    cpu().zoo_queries(x, row_t, coords, hp.h, c_queries);
    expect_match(s_queries, c_queries, kExact, "ZOO queries");

    const Tensor logits = rand_t({query_rows, c.classes}, rng, -5.0f, 5.0f);
    std::vector<int64_t> labels(static_cast<size_t>(c.probes));
    for (int64_t m = 0; m < c.probes; ++m) labels[static_cast<size_t>(m)] = m % c.classes;
    const Tensor label_t = Tensor::from_labels(labels);
    const Tensor lr = rand_t({c.probes}, rng, 0.01f, 0.1f);
    Tensor state = rand_t({4, c.probes, c.pixels}, rng, 0.0f, 0.5f);
    Tensor s_x = on(Device::CUDA, x), c_x = x.clone(), s_state = on(Device::CUDA, state), c_state = state.clone();
    sim().zoo_step(s_x, on(Device::CUDA, row_t), on(Device::CUDA, coords), on(Device::CUDA, logits),
                   on(Device::CUDA, label_t), on(Device::CUDA, lr), s_state, hp);
    cpu().zoo_step(c_x, row_t, coords, logits, label_t, lr, c_state, hp);
    // The estimate's log-sum-exp is double exp/log: the device's libm may differ from the host's by an ulp.
    expect_match(s_x, c_x, kHostMath, "ZOO probes after a step");
    expect_match(s_state, c_state, kHostMath, "ZOO Adam state");
    check_guards();
  }
}

// The GA's operators take only exactly rounded steps (kernels/ga.h), so from the same population, fitness and seed the
// simulated CUDA kernels must breed the CPU's next generation bit for bit, parents included; fitness values have
// ties and NaNs so the ranking rules are exercised too.
CUDA_CASE("GA operators breed the cpu's next generation bit for bit") {
  Rng rng(61);
  struct Shape3 {
    int64_t classes, population, genes;
  };
  for (const Shape3 sh : {Shape3{1, 1, 1}, Shape3{3, 37, 50}, Shape3{10, 64, 196}, Shape3{2, 300, 257}}) {
    for (const kernels::Crossover cross : {kernels::Crossover::Uniform, kernels::Crossover::Blend}) {
      for (const int64_t elites : {int64_t{0}, int64_t{3}, sh.population}) {
        kernels::GaHyper h;
        h.classes = sh.classes;
        h.population = sh.population;
        h.genes = sh.genes;
        h.elites = std::min(elites, sh.population);
        h.tournament = elites == 3 ? 1 : 3;
        h.crossover = cross;
        h.mutation_rate = 0.3f;
        h.sigma = 0.2f;
        h.seed = 99;
        h.generation = 5;
        INFO("K = ", h.classes, ", P = ", h.population, ", G = ", h.genes, ", elites = ", h.elites,
             ", blend = ", cross == kernels::Crossover::Blend);
        const int64_t members = h.classes * h.population;
        Tensor genomes = rand_t({members, h.genes}, rng, 0.0f, 1.0f);
        Tensor fitness = rand_t({members}, rng, -3.0f, 0.0f);
        std::vector<float> fit_values(static_cast<size_t>(members));
        copy_bytes(fit_values.data(), Device::CPU, fitness.raw(), Device::CPU, fitness.nbytes());
        for (size_t i = 0; i + 7 < fit_values.size(); i += 7) fit_values[i + 1] = fit_values[i];  // ties
        if (members > 5) fit_values[5] = std::numeric_limits<float>::quiet_NaN();
        test::set_values(fitness, fit_values);

        Tensor s_parents = out(Device::CUDA, {members, 2}, DType::I64);
        Tensor c_parents = out(Device::CPU, {members, 2}, DType::I64);
        Tensor s_next = out(Device::CUDA, {members, h.genes}), c_next = out(Device::CPU, {members, h.genes});
        sim().ga_next_generation(on(Device::CUDA, genomes), on(Device::CUDA, fitness), s_parents, s_next, h);
        cpu().ga_next_generation(genomes, fitness, c_parents, c_next, h);
        expect_match(s_parents, c_parents, kExact, "GA parents");
        expect_match(s_next, c_next, kExact, "GA next generation");
        check_guards();
      }
    }
  }
}

CUDA_CASE("GA fitness extraction gives the cpu's log p_k") {
  Rng rng(62);
  for (const int64_t population : {int64_t{1}, int64_t{37}, int64_t{1024}}) {
    INFO("P = ", population);
    const int64_t classes = 10, rows = classes * population;
    const Tensor logits = rand_t({rows, classes}, rng, -8.0f, 8.0f);
    Tensor s_fit = out(Device::CUDA, {rows}), c_fit = out(Device::CPU, {rows});
    sim().ga_fitness(on(Device::CUDA, logits), population, s_fit);
    cpu().ga_fitness(logits, population, c_fit);
    expect_match(s_fit, c_fit, kExact, "GA fitness");
    check_guards();
  }
}

// The four sums per (aux vector, segment) as four vectors, one per quantity, so each is compared on its own scale.
std::vector<Values> compare_columns(const std::vector<kernels::SegmentStats>& stats) {
  std::vector<Values> cols(4);
  for (const kernels::SegmentStats& st : stats) {
    cols[0].push_back(st.dot);
    cols[1].push_back(st.aux_sq);
    cols[2].push_back(st.target_sq);
    cols[3].push_back(st.diff_sq);
  }
  return cols;
}

// Both backends on the same inputs, per quantity within kNmse; all finite (NaN poison lies outside the bounds).
void expect_compare_match(const Tensor& target, const Tensor& bank, const std::vector<int64_t>& bounds,
                          const std::string& what) {
  INFO(what);
  sim();  // the backend installs the device allocator before any device tensor is made
  const std::vector<kernels::SegmentStats> c = cpu().compare_params(target, bank, bounds);
  for (bool aligned : {true, false}) {
    INFO(std::string(aligned ? "16-byte aligned device tensors (float4 loads)" : "unaligned device views (scalar loads)"));
    const Tensor st = aligned ? test::to_device(target, Device::CUDA) : on(Device::CUDA, target);
    const Tensor sb = aligned ? test::to_device(bank, Device::CUDA) : on(Device::CUDA, bank);
    const std::vector<kernels::SegmentStats> s = sim().compare_params(st, sb, bounds);
    REQUIRE(s.size() == c.size());
    const std::vector<Values> sc = compare_columns(s), cc = compare_columns(c);
    const char* names[4] = {"dot", "aux_sq", "target_sq", "diff_sq"};
    for (int q = 0; q < 4; ++q) {
      INFO(names[q]);
      CHECK(test::count_nonfinite(sc[size_t(q)]) == 0);
      CHECK(test::nmse(sc[size_t(q)], cc[size_t(q)]) <= kNmse);
    }
    const std::vector<kernels::SegmentStats> again = sim().compare_params(st, sb, bounds);
    CHECK(std::memcmp(again.data(), s.data(), s.size() * sizeof(kernels::SegmentStats)) == 0);  // deterministic
  }
  check_guards();
}

// target [p] and aux [n, ld] uniform in [-1, 1), aux 0 close to the target; NaN outside the bounds and in the padding.
void compare_inputs(int64_t p, int64_t n, int64_t ld, const std::vector<int64_t>& bounds, Rng& rng, Tensor& target,
                    Tensor& bank) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> t(static_cast<size_t>(p)), a(static_cast<size_t>(n * ld));
  for (int64_t i = 0; i < p; ++i) t[size_t(i)] = i < bounds.front() || i >= bounds.back() ? nan : rng.uniform(-1, 1);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < ld; ++i)
      a[size_t(j * ld + i)] = i < bounds.front() || i >= bounds.back()   ? nan
                              : j == 0                                   ? t[size_t(i)] + rng.uniform(-1e-3f, 1e-3f)
                                                                         : rng.uniform(-1, 1);
  target = Tensor::from_vector(t, {p});
  bank = Tensor::from_vector(a, {n, ld});
}

CUDA_CASE("compare_params compare_items_kernel and compare_segments_kernel match the cpu") {
  Rng rng(14);
  struct Layout {
    int64_t p;
    std::vector<int64_t> bounds;
  };
  const std::vector<Layout> layouts = {
      {1, {0, 1}},
      {1001, {3, 4, 5, 90, 91, 1001}},                    // one-element segments, unaligned heads and tails
      {850, {0, 84, 168, 252, 336, 420, 504, 588, 672, 756, 840, 841, 842, 843, 844, 845, 846, 847, 848, 849, 850}},
      {9001, {1, 4095, 4096, 4097, 8193, 9001}},          // around the tile boundaries
      {20003, {7, 20001}},                                // several tiles in one segment
  };
  for (const Layout& l : layouts)
    for (int64_t n : {int64_t(1), int64_t(3), int64_t(16), int64_t(17), int64_t(35)}) {
      if (l.p > 9001 && n != 17) continue;  // the long vector once, with a group of 16 and a remainder
      for (int64_t extra : {int64_t(0), int64_t(3)}) {  // ld = compare_row_stride(P), and ld % 4 != 0 (scalar loads)
        if (extra && n != 3) continue;
        const int64_t ld = kernels::compare_row_stride(l.p) + extra;
        Tensor target, bank;
        compare_inputs(l.p, n, ld, l.bounds, rng, target, bank);
        expect_compare_match(target, bank, l.bounds,
                             "P=" + std::to_string(l.p) + " N=" + std::to_string(n) + " ld=" + std::to_string(ld) +
                                 " segments=" + std::to_string(l.bounds.size() - 1));
      }
    }
}

CUDA_CASE("compare_params propagates a NaN to its segment only and checks its arguments") {
  Rng rng(15);
  const int64_t p = 5003, n = 3, ld = kernels::compare_row_stride(p);
  const std::vector<int64_t> bounds = {2, 100, 101, 4100, 5003};
  Tensor target, bank;
  compare_inputs(p, n, ld, bounds, rng, target, bank);
  sim();  // the backend installs the device allocator before any device tensor is made
  bank.f32()[2 * ld + 4500] = std::numeric_limits<float>::quiet_NaN();  // aux 2, segment 3
  target.f32()[100] = std::numeric_limits<float>::quiet_NaN();          // segment 1
  const std::vector<kernels::SegmentStats> c = cpu().compare_params(target, bank, bounds);
  const std::vector<kernels::SegmentStats> s =
      sim().compare_params(test::to_device(target, Device::CUDA), test::to_device(bank, Device::CUDA), bounds);
  REQUIRE(s.size() == c.size());
  for (size_t i = 0; i < s.size(); ++i) {
    INFO("aux ", i / 4, " segment ", i % 4);
    CHECK(std::isnan(s[i].dot) == std::isnan(c[i].dot));
    CHECK(std::isnan(s[i].aux_sq) == std::isnan(c[i].aux_sq));
    CHECK(std::isnan(s[i].target_sq) == std::isnan(c[i].target_sq));
    CHECK(std::isnan(s[i].diff_sq) == std::isnan(c[i].diff_sq));
    CHECK(std::isnan(s[i].diff_sq) == (i % 4 == 1 || i == 2 * 4 + 3));
  }
  const Tensor st = test::to_device(target, Device::CUDA), sb = test::to_device(bank, Device::CUDA);
  CHECK(test::contains(test::error_of<Error>([&] { sim().compare_params(st, sb, {0, 6, 5}); }), "increase strictly"));
  CHECK(test::contains(test::error_of<Error>([&] { sim().compare_params(st, sb, {0, p + 1}); }), "past the target"));
  CHECK(test::contains(test::error_of<Error>([&] { sim().compare_params(target, sb, {0, 5}); }),
                       "not on the CUDA device"));
  CHECK(sim().compare_params(st, test::to_device(Tensor::empty({0, ld}), Device::CUDA), {0, p}).empty());
}

CUDA_CASE("a training step allocates nothing new from the device once warm") {
  Rng rng(12);
  Backend& s = sim();
  const Conv2dGeom g = Conv2dGeom::make(4, 3, 10, 10, 6, 3, 3, 1, 1);
  const Tensor x = on(Device::CUDA, rand_t({4, 3, 10, 10}, rng)), w = on(Device::CUDA, rand_t({6, 3, 3, 3}, rng));
  const Tensor labels = on(Device::CUDA, test::random_labels(4, 10, rng));
  const Tensor fc = on(Device::CUDA, rand_t({10, 600}, rng));
  std::unique_ptr<LayerState> state;
  auto step = [&] {
    Tensor y = Tensor::empty({4, 6, 10, 10}, DType::F32, Device::CUDA);
    s.conv2d_forward(x, w, nullptr, y, g, true, &state);
    Tensor logits = Tensor::empty({4, 10}, DType::F32, Device::CUDA), probs = Tensor::empty({4, 10}, DType::F32, Device::CUDA);
    s.linear_forward(y.reshape({4, 600}), fc, nullptr, logits, false);
    s.softmax_xent_forward(logits, labels, probs);
    Tensor dl = Tensor::empty({4, 10}, DType::F32, Device::CUDA), dy = Tensor::empty({4, 600}, DType::F32, Device::CUDA);
    Tensor dfc = Tensor::zeros({10, 600}, DType::F32, Device::CUDA), dw = Tensor::zeros({6, 3, 3, 3}, DType::F32, Device::CUDA);
    s.softmax_xent_backward(probs, labels, 0.25f, dl);
    s.linear_backward(y.reshape({4, 600}), fc, dl, &dy, &dfc, nullptr);
    Tensor dx = Tensor::empty({4, 3, 10, 10}, DType::F32, Device::CUDA);
    s.conv2d_backward(x, w, dy.reshape({4, 6, 10, 10}), &dx, &dw, nullptr, g, &state);
    (void)s.sum_squares(dw);
  };
  step();
  step();
  const auto before = cuda_impl::device_memory_stats();
  for (int i = 0; i < 3; ++i) step();
  const auto after = cuda_impl::device_memory_stats();
  CHECK(after.device_mallocs == before.device_mallocs);
  CHECK(after.device_frees == before.device_frees);
  CHECK(after.cache_hits > before.cache_hits);
  guarded_list().clear();
}

#if !defined(LETHE_CUDA_PARITY_ON_DEVICE)
// The simulator's NVTX stand-in counts open ranges per thread, so the backend's ranges can be checked to close.
#include <nvtx3/nvToolsExt.h>

CUDA_CASE("NVTX ranges from the backend nest and every one closes") {
  const int before = lethe::sim::nvtx_api::nvtx_depth();
  cuda_impl::push_range("audit: train original");
  cuda_impl::push_range("unlearn");
  CHECK(lethe::sim::nvtx_api::nvtx_depth() == before + 2);
  cuda_impl::pop_range();
  cuda_impl::pop_range();
  CHECK(lethe::sim::nvtx_api::nvtx_depth() == before);
}
#endif
