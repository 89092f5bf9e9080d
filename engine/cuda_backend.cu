// The CUDA backend: shape checks, then the kernels in kernels/cuda, cuBLAS for GEMMs and cuDNN for convolutions.
// All work goes on one stream; host round trips happen only where an op returns a value to the host (dot, losses)
// or must report bad labels.
#include "kernels/device.h"
#include "kernels/launch.h"

#include "engine/cuda_backend.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <nvtx3/nvToolsExt.h>

#include "kernels/cuda/allocator.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {

#if defined(LETHE_CUDA_SIM)
constexpr const char* kBackendName = "cuda-sim";
#else
constexpr const char* kBackendName = "cuda";
#endif

// ---------------------------------------------------------------------------------------------------------------
// Process-wide device state: stream, allocator, pinned staging, library handles.

// Host <-> device copies go through pinned buffers of this size, two of them so filling one overlaps the previous
// transfer.
constexpr size_t kStagingBytes = size_t(8) << 20;

class DeviceContext {
 public:
  explicit DeviceContext(int device) : device_(device) {
    LETHE_CUDA_CHECK(cudaSetDevice(device));
    LETHE_CUDA_CHECK(cudaStreamCreate(&stream_));
    for (Staging& s : staging_) {
      LETHE_CUDA_CHECK(cudaMallocHost(&s.host, kStagingBytes));
      LETHE_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    LETHE_CUDA_CHECK(cudaMallocHost(&readback_, kReadbackBytes));
    LETHE_CUBLAS_CHECK(cublasCreate(&cublas_));
    LETHE_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  // Never destroyed (see context()): tensors may be freed during static destruction, after any destructor here.

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator() { return allocator_; }
  cublasHandle_t cublas() const { return cublas_; }
  cudnnHandle_t cudnn() {  // created on first use: cuDNN's initialisation is slow and the GEMM path needs none
    std::lock_guard<std::mutex> lock(mutex_);
    if (!cudnn_) {
      LETHE_CUDNN_CHECK(cudnnCreate(&cudnn_));
      LETHE_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    }
    return cudnn_;
  }

  // Any direction. Host -> device returns once the bytes are staged (the transfer runs on the stream); device ->
  // host waits for the stream, so the host sees every earlier kernel's result.
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if (bytes == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (dst_dev == Device::CPU && src_dev == Device::CPU) {
      std::memmove(dst, src, bytes);
    } else if (dst_dev == Device::CUDA && src_dev == Device::CUDA) {
      LETHE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
    } else if (dst_dev == Device::CUDA) {
      for (size_t done = 0; done < bytes; done += kStagingBytes) {
        const size_t chunk = std::min(kStagingBytes, bytes - done);
        Staging& st = staging_[next_staging_];
        next_staging_ ^= 1;
        LETHE_CUDA_CHECK(cudaEventSynchronize(st.done));  // the buffer's previous transfer has finished
        std::memcpy(st.host, s + done, chunk);
        LETHE_CUDA_CHECK(cudaMemcpyAsync(d + done, st.host, chunk, cudaMemcpyHostToDevice, stream_));
        LETHE_CUDA_CHECK(cudaEventRecord(st.done, stream_));
      }
    } else {
      Staging& st = staging_[0];
      for (size_t done = 0; done < bytes; done += kStagingBytes) {
        const size_t chunk = std::min(kStagingBytes, bytes - done);
        LETHE_CUDA_CHECK(cudaMemcpyAsync(st.host, s + done, chunk, cudaMemcpyDeviceToHost, stream_));
        LETHE_CUDA_CHECK(cudaStreamSynchronize(stream_));
        std::memcpy(d + done, st.host, chunk);
      }
    }
  }

  // Waits for the stream and copies `bytes` (at most kReadbackBytes) of device memory to the host.
  void read_back(void* host, const void* device_ptr, size_t bytes) {
    LETHE_CHECK(bytes <= kReadbackBytes, "read_back of " + std::to_string(bytes) + " bytes");
    std::lock_guard<std::mutex> lock(mutex_);
    LETHE_CUDA_CHECK(cudaMemcpyAsync(readback_, device_ptr, bytes, cudaMemcpyDeviceToHost, stream_));
    LETHE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(host, readback_, bytes);
  }

 private:
  static constexpr size_t kReadbackBytes = 1024;  // a radix select's 256 counts
  struct Staging {
    void* host = nullptr;
    cudaEvent_t done = nullptr;
  };
  int device_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator allocator_;
  Staging staging_[2];
  int next_staging_ = 0;
  void* readback_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::mutex mutex_;
};

std::mutex g_context_mutex;
DeviceContext* g_context = nullptr;  // deliberately leaked: see DeviceContext

void* tensor_alloc(size_t bytes) { return g_context->allocator().allocate(bytes); }
void tensor_free(void* p) { g_context->allocator().release(p); }
void tensor_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  g_context->copy(dst, dst_dev, src, src_dev, bytes);
}

#if defined(LETHE_CUDA_SIM)
constexpr DeviceMemory kTensorMemory{"cuda-sim", tensor_alloc, tensor_free, tensor_copy};
#else
constexpr DeviceMemory kTensorMemory{"cuda", tensor_alloc, tensor_free, tensor_copy};
#endif

DeviceContext& context(int device) {
  std::lock_guard<std::mutex> lock(g_context_mutex);
  if (!g_context) {
    auto created = std::make_unique<DeviceContext>(device);
    register_device_memory(kTensorMemory);  // throws if the other CUDA implementation owns this process
    g_context = created.release();
  }
  if (g_context->device() != device)
    throw UsageError("CUDA device " + std::to_string(device) + " requested, but this process already uses device " +
                     std::to_string(g_context->device()) + " (one device per process)");
  return *g_context;
}

// Device memory for one op's intermediates, back to the cache when the op returns (stream order keeps that safe).
class Scratch {
 public:
  Scratch(CachingAllocator& a, size_t bytes) : alloc_(a), ptr_(a.allocate(bytes == 0 ? 1 : bytes)) {}
  ~Scratch() { alloc_.release(ptr_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  CachingAllocator& alloc_;
  void* ptr_;
};

// ---------------------------------------------------------------------------------------------------------------
// Shape checks (as the CPU backend's, plus the device).

void expect_shape(const Tensor& t, const Shape& s, const char* what) {
  LETHE_CHECK(t.shape() == s, std::string(what) + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(s));
}
void expect_cuda(const Tensor& t, DType dtype, const char* what) {
  LETHE_CHECK(t.defined(), std::string(what) + " is undefined");
  LETHE_CHECK(t.device() == Device::CUDA, std::string(what) + " is not on the CUDA device");
  LETHE_CHECK(t.dtype() == dtype, std::string(what) + " is not " + dtype_name(dtype));
}
void expect_f32(const Tensor& t, const char* what) { expect_cuda(t, DType::F32, what); }
void expect_same_numel(const Tensor& a, const Tensor& b, const char* what) {
  LETHE_CHECK(a.numel() == b.numel(), std::string(what) + ": " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}
Shape conv_out_shape(const Conv2dGeom& g) { return {g.n, g.o, g.ho, g.wo}; }
Shape pool_out_shape(const Pool2dGeom& g) { return {g.n, g.c, g.ho, g.wo}; }
int as_int(int64_t v, const char* what) {
  LETHE_CHECK(v >= 0 && v <= INT_MAX, std::string(what) + " = " + std::to_string(v) + " exceeds int");
  return static_cast<int>(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Convolution plans: cuDNN descriptors and the algorithms chosen for one geometry, made once and cached.

enum class ConvPath { Cudnn, Gemm };

ConvPath conv_path_from_env() {
  const char* env = std::getenv("LETHE_CONV");
  if (!env || !*env || std::strcmp(env, "cudnn") == 0) return ConvPath::Cudnn;
  if (std::strcmp(env, "gemm") == 0) return ConvPath::Gemm;
  throw UsageError(std::string("LETHE_CONV='") + env + "': expected cudnn or gemm");
}

// Largest workspace an algorithm may ask for; costlier algorithms are passed over.
constexpr size_t kMaxConvWorkspace = size_t(512) << 20;

bool tensor_core_math(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The first usable entry of a heuristic ranking: succeeded, fits the workspace cap, full FP32 (no TF32, so results
// stay comparable with the CPU), and deterministic when asked (the backward passes, so training is reproducible).
template <class Perf>
const Perf* choose_algorithm(const Perf* perf, int count, bool need_deterministic) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const Perf& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxConvWorkspace || tensor_core_math(p.mathType)) continue;
      if (pass == 0 && need_deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
      return &p;
    }
    if (!need_deterministic) break;
  }
  return nullptr;
}

struct CudnnPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  cudnnMathType_t fwd_math = CUDNN_FMA_MATH, bwd_data_math = CUDNN_FMA_MATH, bwd_filter_math = CUDNN_FMA_MATH;
  size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;

  CudnnPlan(cudnnHandle_t h, const Conv2dGeom& g) {
    LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    LETHE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    LETHE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, as_int(g.n, "conv N"),
                                                 as_int(g.c, "conv C"), as_int(g.h, "conv H"), as_int(g.w, "conv W")));
    LETHE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, as_int(g.o, "conv O"),
                                                 as_int(g.c, "conv C"), as_int(g.kh, "conv KH"),
                                                 as_int(g.kw, "conv KW")));
    // PyTorch's Conv2d is a cross-correlation.
    LETHE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, as_int(g.pad, "pad"), as_int(g.pad, "pad"),
                                                      as_int(g.stride, "stride"), as_int(g.stride, "stride"), 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    int on = 0, oc = 0, oh = 0, ow = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &on, &oc, &oh, &ow));
    LETHE_CHECK(on == g.n && oc == g.o && oh == g.ho && ow == g.wo, "cuDNN's output shape disagrees with the geometry");
    LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));

    int returned = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd_perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, x, w, conv, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                             &returned, fwd_perf));
    const auto* f = choose_algorithm(fwd_perf, returned, false);
    LETHE_CHECK(f, "cuDNN offers no forward algorithm for this convolution");
    fwd = f->algo;
    fwd_math = f->mathType;
    cudnnConvolutionBwdDataAlgoPerf_t data_perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w, y, conv, x,
                                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned,
                                                                  data_perf));
    const auto* d = choose_algorithm(data_perf, returned, true);
    LETHE_CHECK(d, "cuDNN offers no backward-data algorithm for this convolution");
    bwd_data = d->algo;
    bwd_data_math = d->mathType;
    cudnnConvolutionBwdFilterAlgoPerf_t filter_perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x, y, conv, w,
                                                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                    &returned, filter_perf));
    const auto* wf = choose_algorithm(filter_perf, returned, true);
    LETHE_CHECK(wf, "cuDNN offers no backward-filter algorithm for this convolution");
    bwd_filter = wf->algo;
    bwd_filter_math = wf->mathType;

    // The sizes for the math type each algorithm runs with.
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, fwd_math));
    LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, fwd, &fwd_bytes));
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, bwd_data_math));
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, w, y, conv, x, bwd_data, &bwd_data_bytes));
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, bwd_filter_math));
    LETHE_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x, y, conv, w, bwd_filter, &bwd_filter_bytes));
  }
  ~CudnnPlan() {
    // Destruction cannot fail in a way worth reporting; statuses are ignored.
    if (conv) (void)cudnnDestroyConvolutionDescriptor(conv);
    if (w) (void)cudnnDestroyFilterDescriptor(w);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (x) (void)cudnnDestroyTensorDescriptor(x);
  }
  CudnnPlan(const CudnnPlan&) = delete;
  CudnnPlan& operator=(const CudnnPlan&) = delete;
};

using GeomKey = std::array<int64_t, 11>;
GeomKey geom_key(const Conv2dGeom& g) { return {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.stride, g.pad, g.ho, g.wo}; }

// What a conv layer keeps between forward and backward: its plan, valid for one backend and one geometry.
struct CudnnConvState final : LayerState {
  uint64_t owner = 0;
  GeomKey key{};
  CudnnPlan* plan = nullptr;
};

std::atomic<uint64_t> g_backend_ids{1};

// Images per group of the GEMM path: the group's im2col columns stay within this many floats.
constexpr int64_t kMaxColumnFloats = int64_t(16) << 20;

// ---------------------------------------------------------------------------------------------------------------

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(DeviceContext& ctx) : ctx_(ctx), conv_path_(conv_path_from_env()) {}

  Device device() const override { return Device::CUDA; }
  std::string name() const override { return kBackendName; }
  int threads() const override { return 1; }

  // --- memory and elementwise
  void fill(Tensor& t, float value) override {
    expect_f32(t, "fill target");
    LETHE_CUDA_NS::fill(t.f32(), t.numel(), value, stream());
  }
  void copy(const Tensor& src, Tensor& dst) override {
    LETHE_CHECK(src.dtype() == dst.dtype(), "copy between dtypes");
    expect_same_numel(src, dst, "copy");
    ctx_.copy(dst.raw(), dst.device(), src.raw(), src.device(), src.nbytes());
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) override {
    expect_f32(a, "add a");
    expect_f32(b, "add b");
    expect_f32(y, "add output");
    expect_same_numel(a, b, "add");
    expect_same_numel(a, y, "add output");
    LETHE_CUDA_NS::add(a.f32(), b.f32(), y.f32(), a.numel(), stream());
  }
  void axpy(float alpha, const Tensor& x, Tensor& y) override {
    expect_f32(x, "axpy x");
    expect_f32(y, "axpy y");
    expect_same_numel(x, y, "axpy");
    LETHE_CUDA_NS::axpy(alpha, x.f32(), y.f32(), x.numel(), stream());
  }
  void scale(Tensor& y, float alpha) override {
    expect_f32(y, "scale target");
    LETHE_CUDA_NS::scale(y.f32(), y.numel(), alpha, stream());
  }
  float magnitude_kth(const Tensor& w, int64_t k) override {
    expect_f32(w, "magnitude_kth input");
    LETHE_CHECK(k >= 0 && k < w.numel(), "magnitude_kth: rank out of range");
    Scratch hist(alloc(), kernels::kRadixBins * sizeof(uint32_t));
    return kernels::radix_select_kth(k, [&](uint32_t prefix, int pass, uint32_t* counts) {
      LETHE_CUDA_NS::magnitude_histogram(w.f32(), w.numel(), prefix, pass, hist.as<uint32_t>(), stream());
      ctx_.read_back(counts, hist.as<uint32_t>(), kernels::kRadixBins * sizeof(uint32_t));
    });
  }
  void prune_magnitude(Tensor& w, float threshold) override {
    expect_f32(w, "prune_magnitude target");
    LETHE_CUDA_NS::prune_magnitude(w.f32(), w.numel(), threshold, stream());
  }
  void clamp(Tensor& y, float lo, float hi) override {
    expect_f32(y, "clamp target");
    LETHE_CUDA_NS::clamp(y.f32(), y.numel(), lo, hi, stream());
  }
  void add_image_prior_grad(const Tensor& x, Tensor& dx, float tv, float l2) override {
    expect_f32(x, "image prior x");
    expect_f32(dx, "image prior dx");
    LETHE_CHECK(x.ndim() == 4, "image prior: x must be [N, C, H, W]");
    expect_shape(dx, x.shape(), "image prior dx");
    LETHE_CHECK(dx.raw() != x.raw(), "image prior: dx must not alias x");
    LETHE_CUDA_NS::add_image_prior_grad(x.f32(), dx.f32(), x.numel(), x.dim(2), x.dim(3), tv, l2, stream());
  }
  double dot(const Tensor& a, const Tensor& b) override {
    expect_f32(a, "dot a");
    expect_f32(b, "dot b");
    expect_same_numel(a, b, "dot");
    return dot_on_device(a.f32(), b.f32(), a.numel());
  }
  double sum_squares(const Tensor& a) override {
    expect_f32(a, "sum_squares input");
    return dot_on_device(a.f32(), a.f32(), a.numel());
  }

  // The norm on the device, then a clip kernel that reads it there: one host round trip (to return the norm).
  double clip_grad_norm(Tensor& grads, float max_norm) {
    expect_f32(grads, "clip_grad_norm gradients");
    const int64_t n = grads.numel();
    if (n == 0) return 0.0;
    Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(reduce_partials(n)));
    Scratch total(alloc(), sizeof(double));
    LETHE_CUDA_NS::dot(grads.f32(), grads.f32(), n, partials.as<double>(), total.as<double>(), stream());
    LETHE_CUDA_NS::clip_by_norm(grads.f32(), n, total.as<double>(), max_norm, stream());
    double sum = 0.0;
    ctx_.read_back(&sum, total.as<double>(), sizeof sum);
    return std::sqrt(sum);
  }

  void normalize_forward(const Tensor& x, const Tensor& mean, const Tensor& inv_std, Tensor& y) override {
    expect_f32(x, "normalize input");
    expect_f32(mean, "normalize mean");
    expect_f32(inv_std, "normalize inv_std");
    expect_f32(y, "normalize output");
    LETHE_CHECK(x.ndim() == 4 && mean.numel() == x.dim(1) && inv_std.numel() == x.dim(1), "normalize shapes");
    expect_same_numel(x, y, "normalize output");
    LETHE_CUDA_NS::normalize_forward(x.f32(), mean.f32(), inv_std.f32(), y.f32(), x.dim(0), x.dim(1),
                                     x.dim(2) * x.dim(3), stream());
  }
  void normalize_backward(const Tensor& dy, const Tensor& inv_std, Tensor& dx) override {
    expect_f32(dy, "normalize_backward dy");
    expect_f32(inv_std, "normalize_backward inv_std");
    expect_f32(dx, "normalize_backward dx");
    LETHE_CHECK(dy.ndim() == 4 && inv_std.numel() == dy.dim(1), "normalize_backward shapes");
    expect_same_numel(dy, dx, "normalize_backward output");
    LETHE_CUDA_NS::normalize_backward(dy.f32(), inv_std.f32(), dx.f32(), dy.dim(0), dy.dim(1), dy.dim(2) * dy.dim(3),
                                      stream());
  }

  // --- dense
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, bool relu) override {
    expect_f32(x, "linear input");
    expect_f32(w, "linear weight");
    expect_f32(y, "linear output");
    LETHE_CHECK(w.ndim() == 2 && x.ndim() >= 1, "linear weight must be [out, in]");
    const int64_t n = x.dim(0), out = w.dim(0), in = w.dim(1);
    LETHE_CHECK(x.numel() == n * in, "linear input " + shape_str(x.shape()) + " vs weight " + shape_str(w.shape()));
    if (b) {
      expect_f32(*b, "linear bias");
      expect_shape(*b, {out}, "linear bias");
    }
    expect_shape(y, {n, out}, "linear output");
    gemm_rowmajor(ctx_.cublas(), stream(), false, true, n, out, in, 1.0f, x.f32(), in, w.f32(), in, 0.0f, y.f32(),
                  out);
    bias_activation(y.f32(), b ? b->f32() : nullptr, n * out, out, 1, relu, stream());
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                       Tensor* db) override {
    expect_f32(x, "linear input");
    expect_f32(w, "linear weight");
    expect_f32(dy, "linear dy");
    const int64_t n = x.dim(0), out = w.dim(0), in = w.dim(1);
    expect_shape(dy, {n, out}, "linear dy");
    if (dx) {
      expect_f32(*dx, "linear dx");
      expect_same_numel(*dx, x, "linear dx");
      gemm_rowmajor(ctx_.cublas(), stream(), false, false, n, in, out, 1.0f, dy.f32(), out, w.f32(), in, 0.0f,
                    dx->f32(), in);
    }
    if (dw) {
      expect_f32(*dw, "linear dw");
      expect_shape(*dw, w.shape(), "linear dw");
      gemm_rowmajor(ctx_.cublas(), stream(), true, false, out, in, n, 1.0f, dy.f32(), out, x.f32(), in, 1.0f,
                    dw->f32(), in);
    }
    if (db) {
      expect_f32(*db, "linear db");
      expect_shape(*db, {out}, "linear db");
      accumulate_channel_sum(dy.f32(), n, out, 1, db->f32());
    }
  }

  // --- convolution
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, const Conv2dGeom& g, bool relu,
                      std::unique_ptr<LayerState>* state) override {
    expect_f32(x, "conv input");
    expect_f32(w, "conv weight");
    expect_f32(y, "conv output");
    expect_shape(x, {g.n, g.c, g.h, g.w}, "conv input");
    expect_shape(w, {g.o, g.c, g.kh, g.kw}, "conv weight");
    if (b) {
      expect_f32(*b, "conv bias");
      expect_shape(*b, {g.o}, "conv bias");
    }
    expect_shape(y, conv_out_shape(g), "conv output");
    const float* bias = b ? b->f32() : nullptr;
    const int64_t P = g.ho * g.wo;
    if (y.numel() == 0) return;
    if (conv_path_ == ConvPath::Gemm) {
      const int64_t K = g.c * g.kh * g.kw, group = images_per_group(g);
      Scratch col(alloc(), sizeof(float) * static_cast<size_t>(K * group * P));
      Scratch out(alloc(), sizeof(float) * static_cast<size_t>(g.o * group * P));
      for (int64_t n0 = 0; n0 < g.n; n0 += group) {
        const int64_t cnt = std::min(group, g.n - n0), cols = cnt * P;
        im2col(x.f32(), col.as<float>(), g, n0, cnt, stream());
        gemm_rowmajor(ctx_.cublas(), stream(), false, false, g.o, cols, K, 1.0f, w.f32(), K, col.as<float>(), cols,
                      0.0f, out.as<float>(), cols);
        columns_to_nchw(out.as<float>(), bias, y.f32(), g, n0, cnt, relu, stream());
      }
      return;
    }
    CudnnPlan& plan = cudnn_plan(g, state);
    cudnnHandle_t h = ctx_.cudnn();
    Scratch workspace(alloc(), plan.fwd_bytes);
    const float one = 1.0f, zero = 0.0f;
    LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.fwd_math));
    LETHE_CUDNN_CHECK(cudnnConvolutionForward(h, &one, plan.x, x.f32(), plan.w, w.f32(), plan.conv, plan.fwd,
                                              workspace.as<void>(), plan.fwd_bytes, &zero, plan.y, y.f32()));
    bias_activation(y.f32(), bias, y.numel(), g.o, P, relu, stream());
  }

  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw, Tensor* db,
                       const Conv2dGeom& g, std::unique_ptr<LayerState>* state) override {
    expect_f32(x, "conv input");
    expect_f32(w, "conv weight");
    expect_f32(dy, "conv dy");
    expect_shape(x, {g.n, g.c, g.h, g.w}, "conv input");
    expect_shape(w, {g.o, g.c, g.kh, g.kw}, "conv weight");
    expect_shape(dy, conv_out_shape(g), "conv dy");
    if (dx) {
      expect_f32(*dx, "conv dx");
      expect_shape(*dx, x.shape(), "conv dx");
    }
    if (dw) {
      expect_f32(*dw, "conv dw");
      expect_shape(*dw, w.shape(), "conv dw");
    }
    if (db) {
      expect_f32(*db, "conv db");
      expect_shape(*db, {g.o}, "conv db");
    }
    const int64_t P = g.ho * g.wo;
    if (db) accumulate_channel_sum(dy.f32(), g.n, g.o, P, db->f32());
    if (!dx && !dw) return;
    if (dy.numel() == 0 || x.numel() == 0) {  // nothing flows back; dx (overwritten) is zero
      if (dx) LETHE_CUDA_NS::fill(dx->f32(), dx->numel(), 0.0f, stream());
      return;
    }
    if (conv_path_ == ConvPath::Gemm) {
      const int64_t K = g.c * g.kh * g.kw, group = images_per_group(g);
      Scratch dyg(alloc(), sizeof(float) * static_cast<size_t>(g.o * group * P));
      Scratch col(alloc(), sizeof(float) * static_cast<size_t>(K * group * P));
      for (int64_t n0 = 0; n0 < g.n; n0 += group) {
        const int64_t cnt = std::min(group, g.n - n0), cols = cnt * P;
        nchw_to_columns(dy.f32(), dyg.as<float>(), g, n0, cnt, stream());
        if (dw) {
          im2col(x.f32(), col.as<float>(), g, n0, cnt, stream());
          gemm_rowmajor(ctx_.cublas(), stream(), false, true, g.o, K, cols, 1.0f, dyg.as<float>(), cols,
                        col.as<float>(), cols, 1.0f, dw->f32(), K);
        }
        if (dx) {  // the column buffer is free again: the dW GEMM that read it precedes this on the stream
          gemm_rowmajor(ctx_.cublas(), stream(), true, false, K, cols, g.o, 1.0f, w.f32(), K, dyg.as<float>(), cols,
                        0.0f, col.as<float>(), cols);
          col2im(col.as<float>(), dx->f32(), g, n0, cnt, stream());
        }
      }
      return;
    }
    CudnnPlan& plan = cudnn_plan(g, state);
    cudnnHandle_t h = ctx_.cudnn();
    Scratch workspace(alloc(), std::max(plan.bwd_data_bytes, plan.bwd_filter_bytes));
    const float one = 1.0f, zero = 0.0f;
    if (dx) {
      LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.bwd_data_math));
      LETHE_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, plan.w, w.f32(), plan.y, dy.f32(), plan.conv,
                                                     plan.bwd_data, workspace.as<void>(), plan.bwd_data_bytes, &zero,
                                                     plan.x, dx->f32()));
    }
    if (dw) {  // beta = 1: parameter gradients accumulate
      LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.bwd_filter_math));
      LETHE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, plan.x, x.f32(), plan.y, dy.f32(), plan.conv,
                                                       plan.bwd_filter, workspace.as<void>(), plan.bwd_filter_bytes,
                                                       &one, plan.w, dw->f32()));
    }
  }

  // --- pooling
  void maxpool2d_forward(const Tensor& x, Tensor& y, Tensor* argmax, const Pool2dGeom& g) override {
    expect_f32(x, "pool input");
    expect_f32(y, "pool output");
    expect_shape(x, {g.n, g.c, g.h, g.w}, "pool input");
    expect_shape(y, pool_out_shape(g), "pool output");
    if (argmax) {
      expect_cuda(*argmax, DType::I64, "pool argmax");
      LETHE_CHECK(argmax->shape() == y.shape(), "pool argmax shape");
    }
    LETHE_CUDA_NS::maxpool2d_forward(x.f32(), y.f32(), argmax ? argmax->i64() : nullptr, g, stream());
  }
  void maxpool2d_backward(const Tensor& argmax, const Tensor& dy, Tensor& dx, const Pool2dGeom& g) override {
    expect_f32(dy, "pool dy");
    expect_f32(dx, "pool dx");
    expect_cuda(argmax, DType::I64, "pool argmax");
    expect_shape(dy, pool_out_shape(g), "pool dy");
    LETHE_CHECK(argmax.shape() == dy.shape(), "pool argmax shape");
    expect_shape(dx, {g.n, g.c, g.h, g.w}, "pool dx");
    LETHE_CUDA_NS::maxpool2d_backward(argmax.i64(), dy.f32(), dx.f32(), g, stream());
  }
  void avgpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeom& g) override {
    expect_f32(x, "pool input");
    expect_f32(y, "pool output");
    expect_shape(x, {g.n, g.c, g.h, g.w}, "pool input");
    expect_shape(y, pool_out_shape(g), "pool output");
    LETHE_CUDA_NS::avgpool2d_forward(x.f32(), y.f32(), g, stream());
  }
  void avgpool2d_backward(const Tensor& dy, Tensor& dx, const Pool2dGeom& g) override {
    expect_f32(dy, "pool dy");
    expect_f32(dx, "pool dx");
    expect_shape(dy, pool_out_shape(g), "pool dy");
    expect_shape(dx, {g.n, g.c, g.h, g.w}, "pool dx");
    LETHE_CUDA_NS::avgpool2d_backward(dy.f32(), dx.f32(), g, stream());
  }

  // --- batch norm
  void batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                           Tensor& running_var, bool batch_stats, float momentum, float eps, Tensor& y,
                           Tensor& save_mean, Tensor& save_invstd, bool relu) override {
    expect_f32(x, "batchnorm input");
    expect_f32(y, "batchnorm output");
    LETHE_CHECK(x.ndim() == 4, "batchnorm input must be NCHW");
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
    for (const Tensor* t : {&gamma, &beta, static_cast<const Tensor*>(&running_mean),
                            static_cast<const Tensor*>(&running_var), static_cast<const Tensor*>(&save_mean),
                            static_cast<const Tensor*>(&save_invstd)}) {
      expect_f32(*t, "batchnorm per-channel tensor");
      expect_shape(*t, {c}, "batchnorm per-channel tensor");
    }
    expect_shape(y, x.shape(), "batchnorm output");
    if (batch_stats) {
      const int splits = channel_splits(n, hw);
      Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(2 * c * splits));
      Scratch sums(alloc(), sizeof(double) * static_cast<size_t>(2 * c));
      Scratch mean(alloc(), sizeof(double) * static_cast<size_t>(c));
      // Two passes, as the CPU: the mean, then the centred squares (no catastrophic cancellation).
      channel_sums(ChannelSum::X, x.f32(), nullptr, nullptr, nullptr, nullptr, n, c, hw, partials.as<double>(),
                   sums.as<double>(), stream());
      batchnorm_mean(sums.as<double>(), n * hw, mean.as<double>(), c, stream());
      channel_sums(ChannelSum::CenteredSquare, x.f32(), nullptr, mean.as<double>(), nullptr, nullptr, n, c, hw,
                   partials.as<double>(), sums.as<double>(), stream());
      batchnorm_finish_stats(mean.as<double>(), sums.as<double>(), n * hw, momentum, eps, running_mean.f32(),
                             running_var.f32(), save_mean.f32(), save_invstd.f32(), c, stream());
    } else {
      batchnorm_eval_stats(running_mean.f32(), running_var.f32(), eps, save_mean.f32(), save_invstd.f32(), c,
                           stream());
    }
    batchnorm_apply(x.f32(), gamma.f32(), beta.f32(), save_mean.f32(), save_invstd.f32(), y.f32(), n, c, hw, relu,
                    stream());
  }
  void batchnorm2d_backward(const Tensor& x, const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd,
                            const Tensor& dy, bool batch_stats, Tensor* dx, Tensor* dgamma, Tensor* dbeta) override {
    expect_f32(x, "batchnorm input");
    expect_f32(dy, "batchnorm dy");
    LETHE_CHECK(x.ndim() == 4, "batchnorm input must be NCHW");
    const int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
    for (const Tensor* t : {&gamma, &save_mean, &save_invstd}) {
      expect_f32(*t, "batchnorm per-channel tensor");
      expect_shape(*t, {c}, "batchnorm per-channel tensor");
    }
    expect_shape(dy, x.shape(), "batchnorm dy");
    if (dx) {
      expect_f32(*dx, "batchnorm dx");
      expect_shape(*dx, x.shape(), "batchnorm dx");
    }
    if (dgamma) {
      expect_f32(*dgamma, "batchnorm dgamma");
      expect_shape(*dgamma, {c}, "batchnorm dgamma");
    }
    if (dbeta) {
      expect_f32(*dbeta, "batchnorm dbeta");
      expect_shape(*dbeta, {c}, "batchnorm dbeta");
    }
    if (!dx && !dgamma && !dbeta) return;
    const int splits = channel_splits(n, hw);
    Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(2 * c * splits));
    Scratch sums(alloc(), sizeof(double) * static_cast<size_t>(2 * c));
    channel_sums(ChannelSum::DyAndDyXhat, x.f32(), dy.f32(), nullptr, save_mean.f32(), save_invstd.f32(), n, c, hw,
                 partials.as<double>(), sums.as<double>(), stream());
    if (dgamma) accumulate_channel_sums(sums.as<double>(), 1, dgamma->f32(), c, stream());
    if (dbeta) accumulate_channel_sums(sums.as<double>(), 0, dbeta->f32(), c, stream());
    if (dx)
      batchnorm_backward_dx(x.f32(), gamma.f32(), save_mean.f32(), save_invstd.f32(), dy.f32(), sums.as<double>(),
                            batch_stats, dx->f32(), n, c, hw, stream());
  }

  // --- activations
  void relu_forward(const Tensor& x, Tensor& y) override {
    expect_f32(x, "relu input");
    expect_f32(y, "relu output");
    expect_same_numel(x, y, "relu");
    LETHE_CUDA_NS::relu_forward(x.f32(), y.f32(), x.numel(), stream());
  }
  void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    expect_f32(y, "relu_backward y");
    expect_f32(dy, "relu_backward dy");
    expect_f32(dx, "relu_backward dx");
    expect_same_numel(y, dy, "relu_backward");
    expect_same_numel(y, dx, "relu_backward dx");
    LETHE_CUDA_NS::relu_backward(y.f32(), dy.f32(), dx.f32(), y.numel(), stream());
  }

  // --- losses and outputs
  double softmax_xent_forward(const Tensor& logits, const Tensor& labels, Tensor& probs) override {
    expect_f32(logits, "logits");
    expect_f32(probs, "probs");
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    const int64_t n = logits.dim(0), k = logits.dim(1);
    expect_shape(probs, logits.shape(), "probs");
    LabelsOnDevice y(*this, labels, n, k);
    if (n == 0) return 0.0;
    // rows' losses, then the total and the bad-label flag side by side so one read brings both back
    Scratch buf(alloc(), sizeof(double) * static_cast<size_t>(n + 2));
    double* row_loss = buf.as<double>();
    double* total = row_loss + n;
    int* bad = reinterpret_cast<int*>(total + 1);
    LETHE_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), stream()));
    LETHE_CUDA_NS::softmax_xent_forward(logits.f32(), y.ptr, probs.f32(), row_loss, bad, n, k, stream());
    sum_f64(row_loss, n, total, stream());
    unsigned char result[sizeof(double) + sizeof(int)];  // the total and the flag, adjacent on the device
    ctx_.read_back(result, total, sizeof result);
    double sum = 0.0;
    int bad_label = 0;
    std::memcpy(&sum, result, sizeof sum);
    std::memcpy(&bad_label, result + sizeof(double), sizeof bad_label);
    LETHE_CHECK(bad_label == 0, "a label lies outside [0, " + std::to_string(k) + ")");
    return sum / static_cast<double>(n);
  }
  void softmax_xent_backward(const Tensor& probs, const Tensor& labels, float scale, Tensor& dlogits) override {
    expect_f32(probs, "probs");
    expect_f32(dlogits, "dlogits");
    LETHE_CHECK(probs.ndim() == 2, "probs must be [N, K]");
    const int64_t n = probs.dim(0), k = probs.dim(1);
    expect_shape(dlogits, probs.shape(), "dlogits");
    LabelsOnDevice y(*this, labels, n, k);
    if (n == 0) return;
    Scratch flag(alloc(), sizeof(int));
    LETHE_CUDA_CHECK(cudaMemsetAsync(flag.as<int>(), 0, sizeof(int), stream()));
    LETHE_CUDA_NS::softmax_xent_backward(probs.f32(), y.ptr, scale, dlogits.f32(), flag.as<int>(), n, k, stream());
    if (!y.checked_on_host) {
      int bad = 0;
      ctx_.read_back(&bad, flag.as<int>(), sizeof bad);
      LETHE_CHECK(bad == 0, "a label lies outside [0, " + std::to_string(k) + ")");
    }
  }
  void softmax(const Tensor& logits, Tensor& probs) override {
    expect_f32(logits, "logits");
    expect_f32(probs, "probs");
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    expect_shape(probs, logits.shape(), "probs");
    LETHE_CUDA_NS::softmax(logits.f32(), probs.f32(), logits.dim(0), logits.dim(1), stream());
  }
  void log_softmax(const Tensor& logits, Tensor& out) override {
    expect_f32(logits, "logits");
    expect_f32(out, "log_softmax output");
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    expect_shape(out, logits.shape(), "log_softmax output");
    LETHE_CUDA_NS::log_softmax(logits.f32(), out.f32(), logits.dim(0), logits.dim(1), stream());
  }
  void argmax_rows(const Tensor& logits, Tensor& out) override {
    expect_f32(logits, "logits");
    LETHE_CHECK(logits.ndim() == 2, "logits must be [N, K]");
    expect_cuda(out, DType::I64, "argmax output");
    LETHE_CHECK(out.numel() == logits.dim(0), "argmax output must be I64 [N]");
    LETHE_CUDA_NS::argmax_rows(logits.f32(), out.i64(), logits.dim(0), logits.dim(1), stream());
  }

  // --- optimizers
  void sgd_step(Tensor& params, const Tensor& grads, Tensor& momentum_buf, const kernels::SgdHyper& h) override {
    expect_f32(params, "sgd params");
    expect_f32(grads, "sgd grads");
    expect_f32(momentum_buf, "sgd momentum buffer");
    expect_same_numel(params, grads, "sgd grads");
    expect_same_numel(params, momentum_buf, "sgd momentum buffer");
    LETHE_CUDA_NS::sgd_step(params.f32(), grads.f32(), momentum_buf.f32(), params.numel(), h, stream());
  }
  void adam_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const kernels::AdamHyper& h) override {
    expect_f32(params, "adam params");
    expect_f32(grads, "adam grads");
    expect_f32(m, "adam m");
    expect_f32(v, "adam v");
    expect_same_numel(params, grads, "adam grads");
    expect_same_numel(params, m, "adam m");
    expect_same_numel(params, v, "adam v");
    LETHE_CUDA_NS::adam_step(params.f32(), grads.f32(), m.f32(), v.f32(), params.numel(), h, stream());
  }
  // The norm on the device, then one kernel that reads it there, clips and updates: the only host round trip
  // returns the norm.
  double ascent_step(Tensor& params, const Tensor& grads, const kernels::AscentHyper& h) override {
    expect_f32(params, "ascent params");
    expect_f32(grads, "ascent grads");
    expect_same_numel(params, grads, "ascent grads");
    check_ascent_hyper(h);
    const int64_t n = params.numel();
    if (n == 0) return 0.0;
    Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(reduce_partials(n)));
    Scratch total(alloc(), sizeof(double));
    LETHE_CUDA_NS::dot(grads.f32(), grads.f32(), n, partials.as<double>(), total.as<double>(), stream());
    LETHE_CUDA_NS::ascent_step(params.f32(), grads.f32(), n, total.as<double>(), h, stream());
    double sum = 0.0;
    ctx_.read_back(&sum, total.as<double>(), sizeof sum);
    return std::sqrt(sum);
  }

  // The plan is made on the host and uploaded with the inputs' offsets; the stats come back in one copy.
  void ga_fitness(const Tensor& logits, int64_t population, Tensor& fitness) override {
    expect_f32(logits, "GA logits");
    expect_f32(fitness, "GA fitness");
    LETHE_CHECK(logits.ndim() == 2 && population >= 1 && logits.dim(0) == logits.dim(1) * population,
                "GA logits must be [classes * population, classes]");
    LETHE_CHECK(fitness.numel() == logits.dim(0), "GA fitness: one value per logits row");
    LETHE_CUDA_NS::ga_fitness(logits.f32(), fitness.f32(), logits.dim(0), logits.dim(1), population, stream());
  }
  void ga_next_generation(const Tensor& genomes, const Tensor& fitness, Tensor& parents, Tensor& next,
                          const kernels::GaHyper& h) override {
    expect_f32(genomes, "GA genomes");
    expect_f32(fitness, "GA fitness");
    expect_f32(next, "GA next generation");
    expect_cuda(parents, DType::I64, "GA parents");
    check_ga_generation(genomes, fitness, parents, next, h);
    LETHE_CUDA_NS::ga_next_generation(genomes.f32(), fitness.f32(), parents.i64(), next.f32(), h, stream());
  }

  void zoo_queries(const Tensor& x, const Tensor& rows, const Tensor& coords, float h, Tensor& queries) override {
    expect_f32(x, "ZOO probes");
    expect_cuda(rows, DType::I64, "ZOO rows");
    expect_cuda(coords, DType::I64, "ZOO coords");
    expect_f32(queries, "ZOO queries");
    check_zoo_shapes(x, rows, coords, &queries, nullptr);
    LETHE_CUDA_NS::zoo_queries(x.f32(), rows.i64(), coords.i64(), rows.numel(), coords.dim(1), x.dim(1), h,
                               queries.f32(), stream());
  }
  void zoo_step(Tensor& x, const Tensor& rows, const Tensor& coords, const Tensor& logits, const Tensor& labels,
                const Tensor& lr, Tensor& state, const kernels::ZooHyper& hp) override {
    expect_f32(x, "ZOO probes");
    expect_cuda(rows, DType::I64, "ZOO rows");
    expect_cuda(coords, DType::I64, "ZOO coords");
    expect_f32(logits, "ZOO logits");
    expect_cuda(labels, DType::I64, "ZOO labels");
    expect_f32(lr, "ZOO rates");
    expect_f32(state, "ZOO state");
    check_zoo_shapes(x, rows, coords, nullptr, &logits);
    check_zoo_step(x, logits, labels, lr, state);
    LETHE_CUDA_NS::zoo_step(x.f32(), rows.i64(), coords.i64(), logits.f32(), labels.i64(), lr.f32(), state.f32(),
                            x.dim(0), rows.numel(), coords.dim(1), x.dim(1), logits.dim(1), hp, stream());
  }

  std::vector<kernels::SegmentStats> compare_params(const Tensor& target, const Tensor& aux,
                                                    const std::vector<int64_t>& bounds) override {
    expect_f32(target, "compare target");
    expect_f32(aux, "compare aux bank");
    LETHE_CHECK(aux.ndim() == 2, "compare aux bank must be [N, ld], got " + shape_str(aux.shape()));
    const int64_t n = aux.dim(0), ld = aux.dim(1);
    const std::string error = kernels::compare_args_error(target.numel(), ld, bounds);
    LETHE_CHECK(error.empty(), "compare_params: " + error);
    const kernels::ComparePlan plan = kernels::make_compare_plan(bounds);
    const int64_t items = plan.items(), segments = plan.segments();
    std::vector<kernels::SegmentStats> out(static_cast<size_t>(n * segments));
    if (n == 0) return out;
    const size_t cut_bytes = sizeof(int64_t) * plan.cuts.size(), seg_bytes = sizeof(int64_t) * plan.seg_items.size();
    Scratch offsets(alloc(), cut_bytes + seg_bytes);
    int64_t* cuts = offsets.as<int64_t>();
    int64_t* seg_items = cuts + plan.cuts.size();
    ctx_.copy(cuts, Device::CUDA, plan.cuts.data(), Device::CPU, cut_bytes);
    ctx_.copy(seg_items, Device::CUDA, plan.seg_items.data(), Device::CPU, seg_bytes);
    Scratch partials(alloc(), sizeof(double) * 4 * static_cast<size_t>(items * n));
    Scratch result(alloc(), sizeof(kernels::SegmentStats) * out.size());
    LETHE_CUDA_NS::compare_params(target.f32(), aux.f32(), n, ld, cuts, items, seg_items, segments,
                                  partials.as<double>(), result.as<double>(), stream());
    ctx_.copy(out.data(), Device::CPU, result.as<void>(), Device::CUDA, sizeof(kernels::SegmentStats) * out.size());
    return out;
  }

  // --- random fills
  void fill_uniform(Tensor& t, float lo, float hi, uint64_t seed, uint64_t philox_stream) override {
    expect_f32(t, "fill_uniform target");
    LETHE_CUDA_NS::fill_uniform(t.f32(), t.numel(), lo, hi, seed, philox_stream, stream());
  }
  void fill_normal(Tensor& t, float mean, float stddev, uint64_t seed, uint64_t philox_stream) override {
    expect_f32(t, "fill_normal target");
    LETHE_CUDA_NS::fill_normal(t.f32(), t.numel(), mean, stddev, seed, philox_stream, stream());
  }

 private:
  // Labels as a device pointer: device labels are range-checked by the kernels (a flag read back afterwards);
  // host labels are checked here and uploaded.
  struct LabelsOnDevice {
    const int64_t* ptr = nullptr;
    bool checked_on_host = false;
    std::unique_ptr<Scratch> upload;
    LabelsOnDevice(CudaBackend& be, const Tensor& labels, int64_t n, int64_t k) {
      LETHE_CHECK(labels.defined() && labels.dtype() == DType::I64 && labels.numel() == n,
                  "labels must be I64 [" + std::to_string(n) + "]");
      if (labels.device() == Device::CUDA) {
        ptr = labels.i64();
        return;
      }
      const int64_t* l = labels.i64();
      for (int64_t i = 0; i < n; ++i)
        LETHE_CHECK(l[i] >= 0 && l[i] < k, "label " + std::to_string(l[i]) + " outside [0, " + std::to_string(k) + ")");
      checked_on_host = true;
      upload = std::make_unique<Scratch>(be.alloc(), labels.nbytes());
      be.ctx_.copy(upload->as<void>(), Device::CUDA, l, Device::CPU, labels.nbytes());
      ptr = upload->as<int64_t>();
    }
  };

  cudaStream_t stream() const { return ctx_.stream(); }
  CachingAllocator& alloc() { return ctx_.allocator(); }

  double dot_on_device(const float* a, const float* b, int64_t n) {
    if (n == 0) return 0.0;
    Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(reduce_partials(n)));
    Scratch total(alloc(), sizeof(double));
    LETHE_CUDA_NS::dot(a, b, n, partials.as<double>(), total.as<double>(), stream());
    double result = 0.0;
    ctx_.read_back(&result, total.as<double>(), sizeof result);
    return result;
  }

  // dst[ch] += Σ over x [n, c, hw] of channel ch (bias gradients), deterministic.
  void accumulate_channel_sum(const float* x, int64_t n, int64_t c, int64_t hw, float* dst) {
    if (c == 0) return;
    const int splits = channel_splits(n, hw);
    Scratch partials(alloc(), sizeof(double) * static_cast<size_t>(2 * c * splits));
    Scratch sums(alloc(), sizeof(double) * static_cast<size_t>(2 * c));
    channel_sums(ChannelSum::X, x, nullptr, nullptr, nullptr, nullptr, n, c, hw, partials.as<double>(),
                 sums.as<double>(), stream());
    accumulate_channel_sums(sums.as<double>(), 0, dst, c, stream());
  }

  int64_t images_per_group(const Conv2dGeom& g) const {
    const int64_t per_image = std::max<int64_t>(1, std::max(g.c * g.kh * g.kw, g.o) * g.ho * g.wo);
    return std::clamp<int64_t>(kMaxColumnFloats / per_image, 1, std::max<int64_t>(g.n, 1));
  }

  // The plan for this geometry: from the layer's state when it is ours and matches, else from the cache (made on
  // first use); the layer's state is then pointed at it.
  CudnnPlan& cudnn_plan(const Conv2dGeom& g, std::unique_ptr<LayerState>* state) {
    const GeomKey key = geom_key(g);
    if (state) {
      if (auto* s = dynamic_cast<CudnnConvState*>(state->get()); s && s->owner == id_ && s->key == key)
        return *s->plan;
    }
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, std::make_unique<CudnnPlan>(ctx_.cudnn(), g)).first;
    if (state) {
      auto s = std::make_unique<CudnnConvState>();
      s->owner = id_;
      s->key = key;
      s->plan = it->second.get();
      *state = std::move(s);
    }
    return *it->second;
  }

  DeviceContext& ctx_;
  ConvPath conv_path_;
  uint64_t id_ = g_backend_ids.fetch_add(1);
  std::map<GeomKey, std::unique_ptr<CudnnPlan>> plans_;
};

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver: not an error for the caller, just no device
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  const int count = device_count();
  std::string name = "--device cuda:";
  name += std::to_string(device_index);
  if (count == 0) throw UsageError(name + ": no CUDA device is available (no driver or no GPU)");
  if (device_index < 0 || device_index >= count)
    throw UsageError(name + ": device " + std::to_string(device_index) + " does not exist (" +
                     std::to_string(count) + " present)");
  return std::make_unique<CudaBackend>(context(device_index));
}

double clip_grad_norm(Backend& backend, Tensor& grads, float max_norm) {
  if (auto* cuda = dynamic_cast<CudaBackend*>(&backend)) return cuda->clip_grad_norm(grads, max_norm);
  const double sum_squares = backend.sum_squares(grads);
  const float coef = kernels::clip_coefficient(sum_squares, max_norm);
  if (coef != 1.0f) backend.scale(grads, coef);
  return std::sqrt(sum_squares);
}

// NVTX 3 is header-only: without a profiler attached these calls return at once.
void push_range(const char* name) { nvtxRangePushA(name); }
void pop_range() { nvtxRangePop(); }

DeviceMemoryStats device_memory_stats() {
  std::lock_guard<std::mutex> lock(g_context_mutex);
  DeviceMemoryStats s;
  if (!g_context) return s;
  const AllocatorCounters c = g_context->allocator().counters();
  s.bytes_in_use = c.bytes_in_use;
  s.bytes_cached = c.bytes_cached;
  s.device_mallocs = c.device_mallocs;
  s.device_frees = c.device_frees;
  s.cache_hits = c.cache_hits;
  return s;
}

}  // namespace lethe::LETHE_CUDA_NS
