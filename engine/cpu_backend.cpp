// The CPU backend: shape checks, then the CPU twins in kernels/cpu.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/backend.h"

#if LETHE_HAVE_CUDA_BACKEND
#include "engine/cuda_backend.h"
#endif
#include "kernels/cpu/cpu_ops.h"

namespace lethe {

namespace k = kernels::cpu;

namespace {

void expect_shape(const Tensor& t, const Shape& s, const char* what) {
  LETHE_CHECK(t.shape() == s, std::string(what) + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(s));
}
void expect_cpu_f32(const Tensor& t, const char* what) {
  LETHE_CHECK(t.defined(), std::string(what) + " is undefined");
  LETHE_CHECK(t.device() == Device::CPU, std::string(what) + " is not on the CPU");
  LETHE_CHECK(t.dtype() == DType::F32, std::string(what) + " is not F32");
}
// ZOO's indices, which the kernels trust: active rows distinct and in range, each row's pixels distinct and in range.
void check_zoo_indices(const Tensor& x, const Tensor& rows, const Tensor& coords) {
  const int64_t probes = x.dim(0), pixels = x.dim(1), per_probe = coords.dim(1);
  std::vector<char> seen(static_cast<size_t>(std::max(probes, pixels)), 0);
  for (int64_t a = 0; a < rows.numel(); ++a) {
    const int64_t r = rows.i64()[a];
    LETHE_CHECK(r >= 0 && r < probes && !seen[static_cast<size_t>(r)], "ZOO rows must be distinct probes");
    seen[static_cast<size_t>(r)] = 1;
  }
  for (int64_t a = 0; a < rows.numel(); ++a) {
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t j = 0; j < per_probe; ++j) {
      const int64_t c = coords.i64()[a * per_probe + j];
      LETHE_CHECK(c >= 0 && c < pixels && !seen[static_cast<size_t>(c)], "ZOO coords must be distinct pixels");
      seen[static_cast<size_t>(c)] = 1;
    }
  }
}
void expect_same_numel(const Tensor& a, const Tensor& b, const char* what) {
  LETHE_CHECK(a.numel() == b.numel(), std::string(what) + ": " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}
void expect_labels(const Tensor& labels, int64_t n, int64_t k) {
  LETHE_CHECK(labels.dtype() == DType::I64 && labels.numel() == n, "labels must be I64 [" + std::to_string(n) + "]");
  const int64_t* l = labels.i64();
  for (int64_t i = 0; i < n; ++i)
    LETHE_CHECK(l[i] >= 0 && l[i] < k, "label " + std::to_string(l[i]) + " outside [0, " + std::to_string(k) + ")");
}
Shape conv_out_shape(const Conv2dGeom& g) { return {g.n, g.o, g.ho, g.wo}; }
Shape pool_out_shape(const Pool2dGeom& g) { return {g.n, g.c, g.ho, g.wo}; }

// A convolution's im2col columns from forward, valid for one input tensor, geometry and thread count.
struct ConvColumns final : LayerState {
  Tensor columns;
  const void* input = nullptr;
  Conv2dGeom geom;
  int threads = 0;
  bool matches(const Tensor& x, const Conv2dGeom& g, int t) const {
    return input == x.raw() && t == threads && std::memcmp(&geom, &g, sizeof g) == 0;
  }
};
// Above this, backward rebuilds the columns rather than holding them (ResNet-sized layers at large batches).
constexpr int64_t kMaxSavedColumnBytes = int64_t(64) << 20;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : threads_(threads), ws_(threads) { k::init_blas_single_thread(); }
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }
  int threads() const override { return threads_; }

  void fill(Tensor& t, float value) override {
    expect_cpu_f32(t, "fill target");
    k::fill(t.f32(), t.numel(), value, threads_);
  }
  void copy(const Tensor& src, Tensor& dst) override {
    LETHE_CHECK(src.dtype() == dst.dtype(), "copy between dtypes");
    expect_same_numel(src, dst, "copy");
    copy_bytes(dst.raw(), dst.device(), src.raw(), src.device(), src.nbytes());
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) override {
    expect_same_numel(a, b, "add");
    expect_same_numel(a, y, "add output");
    k::add(a.f32(), b.f32(), y.f32(), a.numel(), threads_);
  }
  void axpy(float alpha, const Tensor& x, Tensor& y) override {
    expect_same_numel(x, y, "axpy");
    k::axpy(alpha, x.f32(), y.f32(), x.numel(), threads_);
  }
  void scale(Tensor& y, float alpha) override { k::scale(y.f32(), y.numel(), alpha, threads_); }
  float magnitude_kth(const Tensor& w, int64_t k) override {
    expect_cpu_f32(w, "magnitude_kth input");
    LETHE_CHECK(k >= 0 && k < w.numel(), "magnitude_kth: rank out of range");
    return k::magnitude_kth(w.f32(), w.numel(), k, threads_);
  }
  void prune_magnitude(Tensor& w, float threshold) override {
    expect_cpu_f32(w, "prune_magnitude target");
    k::prune_magnitude(w.f32(), w.numel(), threshold, threads_);
  }
  void clamp(Tensor& y, float lo, float hi) override {
    expect_cpu_f32(y, "clamp target");
    k::clamp(y.f32(), y.numel(), lo, hi, threads_);
  }
  void add_image_prior_grad(const Tensor& x, Tensor& dx, float tv, float l2) override {
    expect_cpu_f32(x, "image prior x");
    expect_cpu_f32(dx, "image prior dx");
    LETHE_CHECK(x.ndim() == 4, "image prior: x must be [N, C, H, W]");
    expect_shape(dx, x.shape(), "image prior dx");
    LETHE_CHECK(dx.raw() != x.raw(), "image prior: dx must not alias x");
    k::add_image_prior_grad(x.f32(), dx.f32(), x.numel(), x.dim(2), x.dim(3), tv, l2, threads_);
  }
  double dot(const Tensor& a, const Tensor& b) override {
    expect_same_numel(a, b, "dot");
    return k::dot(a.f32(), b.f32(), a.numel(), threads_);
  }
  double sum_squares(const Tensor& a) override { return k::dot(a.f32(), a.f32(), a.numel(), threads_); }

  void normalize_forward(const Tensor& x, const Tensor& mean, const Tensor& inv_std, Tensor& y) override {
    LETHE_CHECK(x.ndim() == 4 && mean.numel() == x.dim(1) && inv_std.numel() == x.dim(1), "normalize shapes");
    expect_same_numel(x, y, "normalize output");
    k::normalize_forward(x.f32(), mean.f32(), inv_std.f32(), y.f32(), x.dim(0), x.dim(1), x.dim(2) * x.dim(3),
                         threads_);
  }
  void normalize_backward(const Tensor& dy, const Tensor& inv_std, Tensor& dx) override {
    LETHE_CHECK(dy.ndim() == 4 && inv_std.numel() == dy.dim(1), "normalize_backward shapes");
    expect_same_numel(dy, dx, "normalize_backward output");
    k::normalize_backward(dy.f32(), inv_std.f32(), dx.f32(), dy.dim(0), dy.dim(1), dy.dim(2) * dy.dim(3), threads_);
  }

  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, bool relu) override {
    expect_cpu_f32(x, "linear input");
    const int64_t n = x.dim(0), out = w.dim(0), in = w.dim(1);
    LETHE_CHECK(x.numel() == n * in, "linear input " + shape_str(x.shape()) + " vs weight " + shape_str(w.shape()));
    if (b) expect_shape(*b, {out}, "linear bias");
    expect_shape(y, {n, out}, "linear output");
    k::linear_forward(x.f32(), w.f32(), b ? b->f32() : nullptr, y.f32(), n, in, out, relu, threads_);
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                       Tensor* db) override {
    const int64_t n = x.dim(0), out = w.dim(0), in = w.dim(1);
    expect_shape(dy, {n, out}, "linear dy");
    if (dx) expect_same_numel(*dx, x, "linear dx");
    if (dw) expect_shape(*dw, w.shape(), "linear dw");
    if (db) expect_shape(*db, {out}, "linear db");
    k::linear_backward(x.f32(), w.f32(), dy.f32(), dx ? dx->f32() : nullptr, dw ? dw->f32() : nullptr,
                       db ? db->f32() : nullptr, n, in, out, threads_);
  }

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, const Conv2dGeom& g,
                      bool relu, std::unique_ptr<LayerState>* state) override {
    expect_cpu_f32(x, "conv input");
    expect_shape(x, {g.n, g.c, g.h, g.w}, "conv input");
    expect_shape(w, {g.o, g.c, g.kh, g.kw}, "conv weight");
    if (b) expect_shape(*b, {g.o}, "conv bias");
    expect_shape(y, conv_out_shape(g), "conv output");
    float* saved = nullptr;
    const int64_t column_floats = k::conv2d_columns_size(g);
    if (state && column_floats * int64_t(sizeof(float)) <= kMaxSavedColumnBytes) {
      auto* cols = dynamic_cast<ConvColumns*>(state->get());
      if (!cols) {
        *state = std::make_unique<ConvColumns>();
        cols = static_cast<ConvColumns*>(state->get());
      }
      Tensor::ensure(cols->columns, {column_floats});
      cols->input = x.raw();
      cols->geom = g;
      cols->threads = threads_;
      saved = cols->columns.f32();
    } else if (state) {
      state->reset();
    }
    k::conv2d_forward(x.f32(), w.f32(), b ? b->f32() : nullptr, y.f32(), g, relu, saved, ws_, threads_);
  }
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw, Tensor* db,
                       const Conv2dGeom& g, std::unique_ptr<LayerState>* state) override {
    expect_shape(x, {g.n, g.c, g.h, g.w}, "conv input");
    expect_shape(dy, conv_out_shape(g), "conv dy");
    if (dx) expect_shape(*dx, x.shape(), "conv dx");
    if (dw) expect_shape(*dw, w.shape(), "conv dw");
    if (db) expect_shape(*db, {g.o}, "conv db");
    const auto* cols = state ? dynamic_cast<const ConvColumns*>(state->get()) : nullptr;
    const float* saved = cols && cols->matches(x, g, threads_) ? cols->columns.f32() : nullptr;
    k::conv2d_backward(x.f32(), w.f32(), dy.f32(), dx ? dx->f32() : nullptr, dw ? dw->f32() : nullptr,
                       db ? db->f32() : nullptr, g, saved, ws_, threads_);
  }

  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor* argmax, const Pool2dGeom& g) override {
    expect_shape(x, {g.n, g.c, g.h, g.w}, "pool input");
    expect_shape(y, pool_out_shape(g), "pool output");
    if (argmax) LETHE_CHECK(argmax->dtype() == DType::I64 && argmax->shape() == y.shape(), "pool argmax shape");
    k::maxpool2d_forward(x.f32(), y.f32(), argmax ? argmax->i64() : nullptr, g, threads_);
  }
  void maxpool2d_backward(const Tensor& argmax, const Tensor& dy, Tensor& dx, const Pool2dGeom& g) override {
    expect_shape(dy, pool_out_shape(g), "pool dy");
    LETHE_CHECK(argmax.dtype() == DType::I64 && argmax.shape() == dy.shape(), "pool argmax shape");
    expect_shape(dx, {g.n, g.c, g.h, g.w}, "pool dx");
    k::maxpool2d_backward(argmax.i64(), dy.f32(), dx.f32(), g, threads_);
  }
  void avgpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeom& g) override {
    expect_shape(x, {g.n, g.c, g.h, g.w}, "pool input");
    expect_shape(y, pool_out_shape(g), "pool output");
    k::avgpool2d_forward(x.f32(), y.f32(), g, threads_);
  }
  void avgpool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeom& g) override {
    expect_shape(dy, pool_out_shape(g), "pool dy");
    expect_shape(dx, {g.n, g.c, g.h, g.w}, "pool dx");
    k::avgpool2d_backward(dy.f32(), dx.f32(), g, threads_);
  }

  void batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                           Tensor& running_var, bool batch_stats, float momentum, float eps, Tensor& y,
                           Tensor& save_mean, Tensor& save_invstd, bool relu) override {
    LETHE_CHECK(x.ndim() == 4, "batchnorm input must be NCHW");
    const int64_t c = x.dim(1);
    for (const Tensor* t : {&gamma, &beta, static_cast<const Tensor*>(&running_mean), static_cast<const Tensor*>(&running_var),
                            static_cast<const Tensor*>(&save_mean), static_cast<const Tensor*>(&save_invstd)})
      expect_shape(*t, {c}, "batchnorm per-channel tensor");
    expect_shape(y, x.shape(), "batchnorm output");
    k::batchnorm_forward(x.f32(), gamma.f32(), beta.f32(), running_mean.f32(), running_var.f32(), batch_stats,
                         momentum, eps, y.f32(), save_mean.f32(), save_invstd.f32(), x.dim(0), c,
                         x.dim(2) * x.dim(3), relu, threads_);
  }
  void batchnorm2d_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd,
                            const Tensor& dy, bool batch_stats, Tensor* dx, Tensor* dgamma, Tensor* dbeta) override {
    const int64_t c = x.dim(1);
    expect_shape(dy, x.shape(), "batchnorm dy");
    if (dx) expect_shape(*dx, x.shape(), "batchnorm dx");
    if (dgamma) expect_shape(*dgamma, {c}, "batchnorm dgamma");
    if (dbeta) expect_shape(*dbeta, {c}, "batchnorm dbeta");
    k::batchnorm_backward(x.f32(), gamma.f32(), save_mean.f32(), save_invstd.f32(), dy.f32(), batch_stats,
                          dx ? dx->f32() : nullptr, dgamma ? dgamma->f32() : nullptr, dbeta ? dbeta->f32() : nullptr,
                          x.dim(0), c, x.dim(2) * x.dim(3), threads_);
  }

  void relu_forward(const Tensor& x, Tensor& y) override {
    expect_same_numel(x, y, "relu");
    k::relu_forward(x.f32(), y.f32(), x.numel(), threads_);
  }
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    expect_same_numel(y, dy, "relu_backward");
    expect_same_numel(y, dx, "relu_backward dx");
    k::relu_backward(y.f32(), dy.f32(), dx.f32(), y.numel(), threads_);
  }

  double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) override {
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    const int64_t n = logits.dim(0), kk = logits.dim(1);
    expect_labels(labels, n, kk);
    expect_shape(probs, logits.shape(), "probs");
    if (n == 0) return 0.0;
    return k::softmax_xent_forward(logits.f32(), labels.i64(), probs.f32(), n, kk, threads_) /
           static_cast<double>(n);
  }
  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale, Tensor& dlogits) override {
    const int64_t n = probs.dim(0), kk = probs.dim(1);
    expect_labels(labels, n, kk);
    expect_shape(dlogits, probs.shape(), "dlogits");
    k::softmax_xent_backward(probs.f32(), labels.i64(), scale, dlogits.f32(), n, kk, threads_);
  }
  void softmax(const Tensor& logits, Tensor& probs) override {
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    expect_shape(probs, logits.shape(), "probs");
    k::softmax(logits.f32(), probs.f32(), logits.dim(0), logits.dim(1), threads_);
  }
  void log_softmax(const Tensor& logits, Tensor& out) override {
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    expect_shape(out, logits.shape(), "log_softmax output");
    k::log_softmax(logits.f32(), out.f32(), logits.dim(0), logits.dim(1), threads_);
  }
  void argmax_rows(const Tensor& logits, Tensor& out) override {
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    LETHE_CHECK(out.dtype() == DType::I64 && out.numel() == logits.dim(0), "argmax output must be I64 [N]");
    k::argmax_rows(logits.f32(), out.i64(), logits.dim(0), logits.dim(1), threads_);
  }

  void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const kernels::SgdHyper& h) override {
    expect_same_numel(params, grads, "sgd grads");
    expect_same_numel(params, momentum_buf, "sgd momentum buffer");
    k::sgd_step(params.f32(), grads.f32(), momentum_buf.f32(), params.numel(), h, threads_);
  }
  void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const kernels::AdamHyper& h) override {
    expect_same_numel(params, grads, "adam grads");
    expect_same_numel(params, m, "adam m");
    expect_same_numel(params, v, "adam v");
    k::adam_step(params.f32(), grads.f32(), m.f32(), v.f32(), params.numel(), h, threads_);
  }
  double ascent_step(Tensor& params, const Tensor& grads, const kernels::AscentHyper& h) override {
    expect_cpu_f32(params, "ascent params");
    expect_cpu_f32(grads, "ascent grads");
    expect_same_numel(params, grads, "ascent grads");
    check_ascent_hyper(h);
    return k::ascent_step(params.f32(), grads.f32(), params.numel(), h, threads_);
  }

  void ga_fitness(const Tensor& logits, int64_t population, Tensor& fitness) override {
    expect_cpu_f32(logits, "GA logits");
    expect_cpu_f32(fitness, "GA fitness");
    LETHE_CHECK(logits.ndim() == 2 && population >= 1 && logits.dim(0) == logits.dim(1) * population,
                "GA logits must be [classes * population, classes]");
    LETHE_CHECK(fitness.numel() == logits.dim(0), "GA fitness: one value per logits row");
    k::ga_fitness(logits.f32(), fitness.f32(), logits.dim(0), logits.dim(1), population, threads_);
  }
  void ga_next_generation(const Tensor& genomes, const Tensor& fitness, Tensor& parents, Tensor& next,
                          const kernels::GaHyper& h) override {
    for (const Tensor* t : std::initializer_list<const Tensor*>{&genomes, &fitness, &parents, &next})
      LETHE_CHECK(t->device() == Device::CPU, "GA tensors must be on the CPU");
    check_ga_generation(genomes, fitness, parents, next, h);
    k::ga_next_generation(genomes.f32(), fitness.f32(), parents.i64(), next.f32(), h, threads_);
  }

  void zoo_queries(const Tensor& x, const Tensor& rows, const Tensor& coords, float h, Tensor& queries) override {
    for (const Tensor* t : {&x, &rows, &coords, static_cast<const Tensor*>(&queries)})
      LETHE_CHECK(t->device() == Device::CPU, "ZOO tensors must be on the CPU");
    check_zoo_shapes(x, rows, coords, &queries, nullptr);
    check_zoo_indices(x, rows, coords);
    k::zoo_queries(x.f32(), rows.i64(), coords.i64(), rows.numel(), coords.dim(1), x.dim(1), h, queries.f32(),
                   threads_);
  }
  void zoo_step(Tensor& x, const Tensor& rows, const Tensor& coords, const Tensor& logits, const Tensor& labels,
                const Tensor& lr, Tensor& state, const kernels::ZooHyper& hp) override {
    for (const Tensor* t : {static_cast<const Tensor*>(&x), &rows, &coords, &logits, &labels, &lr,
                            static_cast<const Tensor*>(&state)})
      LETHE_CHECK(t->device() == Device::CPU, "ZOO tensors must be on the CPU");
    check_zoo_shapes(x, rows, coords, nullptr, &logits);
    check_zoo_step(x, logits, labels, lr, state);
    check_zoo_indices(x, rows, coords);
    k::zoo_step(x.f32(), rows.i64(), coords.i64(), logits.f32(), labels.i64(), lr.f32(), state.f32(), x.dim(0),
                rows.numel(), coords.dim(1), x.dim(1), logits.dim(1), hp, threads_);
  }

  std::vector<kernels::SegmentStats> compare_params(const Tensor& target, const Tensor& aux,
                                                    const std::vector<int64_t>& bounds) override {
    expect_cpu_f32(target, "compare target");
    expect_cpu_f32(aux, "compare aux bank");
    LETHE_CHECK(aux.ndim() == 2, "compare aux bank must be [N, ld], got " + shape_str(aux.shape()));
    const int64_t n = aux.dim(0), ld = aux.dim(1);
    const std::string error = kernels::compare_args_error(target.numel(), ld, bounds);
    LETHE_CHECK(error.empty(), "compare_params: " + error);
    const kernels::ComparePlan plan = kernels::make_compare_plan(bounds);
    std::vector<kernels::SegmentStats> out(static_cast<size_t>(n * plan.segments()));
    k::compare_params(target.f32(), aux.f32(), n, ld, plan, out.data(), threads_);
    return out;
  }

  void fill_uniform(Tensor& t, float lo, float hi, uint64_t seed, uint64_t stream) override {
    expect_cpu_f32(t, "fill_uniform target");
    k::fill_uniform(t.f32(), t.numel(), lo, hi, seed, stream, threads_);
  }
  void fill_normal(Tensor& t, float mean, float stddev, uint64_t seed, uint64_t stream) override {
    expect_cpu_f32(t, "fill_normal target");
    k::fill_normal(t.f32(), t.numel(), mean, stddev, seed, stream, threads_);
  }

 private:
  int threads_;
  k::Workspace ws_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(threads);
}

bool cuda_built() { return LETHE_HAVE_CUDA_BACKEND != 0; }

bool cuda_available() {
#if LETHE_HAVE_CUDA_BACKEND
  return cuda::device_count() > 0;  // 0 without a driver: a CUDA-enabled binary runs anywhere
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") return make_cpu_backend(threads);
  // "cuda" is device 0, "cuda:K" device K (as torch names them).
  int index = -1;
  if (device == "cuda") {
    index = 0;
  } else if (device.rfind("cuda:", 0) == 0) {
    const char* first = device.data() + 5;
    const char* last = device.data() + device.size();
    const auto [end, ec] = std::from_chars(first, last, index);
    if (ec != std::errc() || end != last || first == last || index < 0)
      throw UsageError("--device " + device + ": expected cuda:K with K a device number (0, 1, ...)");
  }
#if LETHE_HAVE_CUDA_BACKEND
  if (index >= 0) return cuda::make_cuda_backend(index);  // a clear UsageError when there is no such device
  if (device == "auto") return cuda_available() ? cuda::make_cuda_backend(0) : make_cpu_backend(threads);
#else
  if (index >= 0)
    throw UsageError("--device " + device + ": this build of Lethe has no CUDA backend (it was built without nvcc; "
                     "use --device cpu)");
  if (device == "auto") return make_cpu_backend(threads);
#endif
  throw UsageError("unknown --device '" + device + "' (expected auto, cpu, cuda or cuda:K)");
}

}  // namespace lethe
