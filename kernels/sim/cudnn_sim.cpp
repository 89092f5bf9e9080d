// Host implementation of the cuDNN stand-in (kernels/sim/include/cudnn.h). See the header for the contract.
// Loops are parallelised with OpenMP only over independent outputs, so results do not depend on the thread count.
#include <cudnn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_set>
#include <vector>

#include "kernels/sim/omp.h"

namespace lethe::sim::cudnn_api {

struct cudnnContext {
  cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t data_type = CUDNN_DATA_FLOAT;
  int dims[4] = {0, 0, 0, 0};     // n, c, h, w
  int strides[4] = {0, 0, 0, 0};  // in elements
};

struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t data_type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int dims[4] = {0, 0, 0, 0};  // k, c, r (height), s (width); stored packed KCRS
};

struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute_type = CUDNN_DATA_FLOAT;
  cudnnMathType_t math_type = CUDNN_DEFAULT_MATH;
  int group_count = 1;
};

namespace {

// cuDNN limits a tensor to 2^31 - 1 elements; spans beyond this cap are refused so offsets never overflow.
constexpr int64_t kMaxElements = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxSpan = int64_t{1} << 40;

// Every live handle and descriptor. Destroyed or never-created objects are rejected instead of dereferenced.
// Immortal (never destroyed), so backends held in statics can still release their descriptors at exit.
std::mutex& registry_mutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}
std::unordered_set<const void*>& live_objects() {
  static auto* objects = new std::unordered_set<const void*>;
  return *objects;
}

bool is_live(const void* object) {
  if (object == nullptr) return false;
  std::lock_guard<std::mutex> lock(registry_mutex());
  return live_objects().count(object) != 0;
}

template <typename T>
cudnnStatus_t create_object(T** out) {
  if (out == nullptr) return CUDNN_STATUS_BAD_PARAM;
  T* object = new T();
  std::lock_guard<std::mutex> lock(registry_mutex());
  live_objects().insert(object);
  *out = object;
  return CUDNN_STATUS_SUCCESS;
}

template <typename T>
cudnnStatus_t destroy_object(T* object) {
  if (object == nullptr) return CUDNN_STATUS_SUCCESS;  // cuDNN accepts destroying NULL
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    if (live_objects().erase(object) == 0) return CUDNN_STATUS_BAD_PARAM;
  }
  delete object;
  return CUDNN_STATUS_SUCCESS;
}

bool tensor_ready(const cudnnTensorStruct* t) { return is_live(t) && t->set; }
bool filter_ready(const cudnnFilterStruct* f) { return is_live(f) && f->set; }
bool conv_ready(const cudnnConvolutionStruct* c) { return is_live(c) && c->set; }

// Only FP32 is implemented; a known but different type is "not supported", an out-of-range value a bad parameter.
cudnnStatus_t check_data_type(cudnnDataType_t type) {
  if (type == CUDNN_DATA_FLOAT) return CUDNN_STATUS_SUCCESS;
  const int value = static_cast<int>(type);
  if (value >= 0 && value <= CUDNN_DATA_COMPLEX_FP64) return CUDNN_STATUS_NOT_SUPPORTED;
  return CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t set_tensor(cudnnTensorStruct* t, cudnnDataType_t type, const int dims[4], const int strides[4]) {
  if (!is_live(t)) return CUDNN_STATUS_BAD_PARAM;
  int64_t elements = 1, span = 1;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] <= 0 || strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
    elements *= dims[i];
    if (elements > kMaxElements) return CUDNN_STATUS_NOT_SUPPORTED;
    span += static_cast<int64_t>(dims[i] - 1) * strides[i];
    if (span > kMaxSpan) return CUDNN_STATUS_NOT_SUPPORTED;
  }
  const cudnnStatus_t type_status = check_data_type(type);
  if (type_status != CUDNN_STATUS_SUCCESS) return type_status;
  t->data_type = type;
  std::copy(dims, dims + 4, t->dims);
  std::copy(strides, strides + 4, t->strides);
  t->set = true;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t set_filter(cudnnFilterStruct* f, cudnnDataType_t type, cudnnTensorFormat_t format, const int dims[4]) {
  if (!is_live(f)) return CUDNN_STATUS_BAD_PARAM;
  int64_t elements = 1;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
    elements *= dims[i];
    if (elements > kMaxElements) return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (format != CUDNN_TENSOR_NCHW) {
    return (format == CUDNN_TENSOR_NHWC || format == CUDNN_TENSOR_NCHW_VECT_C) ? CUDNN_STATUS_NOT_SUPPORTED
                                                                              : CUDNN_STATUS_BAD_PARAM;
  }
  const cudnnStatus_t type_status = check_data_type(type);
  if (type_status != CUDNN_STATUS_SUCCESS) return type_status;
  f->data_type = type;
  f->format = format;
  std::copy(dims, dims + 4, f->dims);
  f->set = true;
  return CUDNN_STATUS_SUCCESS;
}

// A 4-d tensor view with element strides.
struct View {
  int n = 0, c = 0, h = 0, w = 0;
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;
  int64_t at(int64_t in, int64_t ic, int64_t ih, int64_t iw) const { return in * sn + ic * sc + ih * sh + iw * sw; }
};

View view_of(const cudnnTensorStruct* t) {
  return View{t->dims[0], t->dims[1], t->dims[2], t->dims[3], t->strides[0], t->strides[1], t->strides[2],
              t->strides[3]};
}

// Convolution output size along one axis; nullopt when the dilated filter does not fit the padded input.
std::optional<int> output_extent(int in, int filter, int pad, int stride, int dilation) {
  const int64_t padded = static_cast<int64_t>(in) + 2 * static_cast<int64_t>(pad);
  const int64_t effective = static_cast<int64_t>(filter - 1) * dilation + 1;
  if (padded < effective) return std::nullopt;
  return static_cast<int>((padded - effective) / stride + 1);
}

cudnnStatus_t forward_output_dims(const cudnnConvolutionStruct* conv, const cudnnTensorStruct* x,
                                  const cudnnFilterStruct* w, int out[4]) {
  if (!conv_ready(conv) || !tensor_ready(x) || !filter_ready(w)) return CUDNN_STATUS_BAD_PARAM;
  if (x->dims[1] != w->dims[1] * conv->group_count) return CUDNN_STATUS_BAD_PARAM;
  const auto oh = output_extent(x->dims[2], w->dims[2], conv->pad_h, conv->stride_h, conv->dilation_h);
  const auto ow = output_extent(x->dims[3], w->dims[3], conv->pad_w, conv->stride_w, conv->dilation_w);
  if (!oh || !ow) return CUDNN_STATUS_BAD_PARAM;
  out[0] = x->dims[0];
  out[1] = w->dims[0];
  out[2] = *oh;
  out[3] = *ow;
  return CUDNN_STATUS_SUCCESS;
}

// Everything one convolution needs, checked for consistency between the four descriptors.
struct Geometry {
  View x, y;
  int N = 0, C = 0, H = 0, W = 0, K = 0, R = 0, S = 0, OH = 0, OW = 0;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool flip = false;  // CUDNN_CONVOLUTION flips the filter; CUDNN_CROSS_CORRELATION does not
  int64_t crs() const { return static_cast<int64_t>(C) * R * S; }
  int64_t pixels() const { return static_cast<int64_t>(OH) * OW; }
  // Filter tap that pairs with input offset r (s): the filter is flipped for true convolution.
  int tap_r(int r) const { return flip ? R - 1 - r : r; }
  int tap_s(int s) const { return flip ? S - 1 - s : s; }
  // Input row read by output row oh through filter row r; may lie in the padding.
  int64_t in_h(int oh, int r) const {
    return static_cast<int64_t>(oh) * stride_h - pad_h + static_cast<int64_t>(tap_r(r)) * dilation_h;
  }
  int64_t in_w(int ow, int s) const {
    return static_cast<int64_t>(ow) * stride_w - pad_w + static_cast<int64_t>(tap_s(s)) * dilation_w;
  }
  int64_t filter_at(int k, int c, int r, int s) const { return ((static_cast<int64_t>(k) * C + c) * R + r) * S + s; }
};

cudnnStatus_t resolve(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* conv,
                      const cudnnTensorStruct* y, Geometry& g) {
  if (!tensor_ready(y)) return CUDNN_STATUS_BAD_PARAM;
  int out[4];
  const cudnnStatus_t status = forward_output_dims(conv, x, w, out);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  for (int i = 0; i < 4; ++i)
    if (y->dims[i] != out[i]) return CUDNN_STATUS_BAD_PARAM;
  g.x = view_of(x);
  g.y = view_of(y);
  g.N = x->dims[0];
  g.C = x->dims[1];
  g.H = x->dims[2];
  g.W = x->dims[3];
  g.K = w->dims[0];
  g.R = w->dims[2];
  g.S = w->dims[3];
  g.OH = out[2];
  g.OW = out[3];
  g.pad_h = conv->pad_h;
  g.pad_w = conv->pad_w;
  g.stride_h = conv->stride_h;
  g.stride_w = conv->stride_w;
  g.dilation_h = conv->dilation_h;
  g.dilation_w = conv->dilation_w;
  g.flip = conv->mode == CUDNN_CONVOLUTION;
  return CUDNN_STATUS_SUCCESS;
}

// dst = alpha * result + beta * dst; with beta == 0 the old value is not read (cuDNN's scaling rule).
inline void blend(float& dst, float result, float alpha, float beta) {
  dst = beta == 0.0f ? alpha * result : alpha * result + beta * dst;
}

constexpr uint64_t kFloat = sizeof(float);

// Workspace sizes in bytes; nullopt for an algorithm this stand-in does not implement.
std::optional<uint64_t> forward_workspace(const Geometry& g, cudnnConvolutionFwdAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return 0;
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      return static_cast<uint64_t>(g.pixels()) * g.R * g.S * sizeof(int64_t);
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return static_cast<uint64_t>(g.crs()) * g.pixels() * kFloat;
    default: return std::nullopt;
  }
}

std::optional<uint64_t> backward_data_workspace(const Geometry& g, cudnnConvolutionBwdDataAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return 0;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:
      return (static_cast<uint64_t>(g.crs()) * g.pixels() + static_cast<uint64_t>(g.C) * g.H * g.W) * kFloat;
    default: return std::nullopt;
  }
}

std::optional<uint64_t> backward_filter_workspace(const Geometry& g, cudnnConvolutionBwdFilterAlgo_t algo) {
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return 0;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1:
      return (static_cast<uint64_t>(g.crs()) * g.pixels() + static_cast<uint64_t>(g.K) * g.crs()) * kFloat;
    default: return std::nullopt;
  }
}

// A workspace the algorithm needs must be present, at least as large as the query said, and aligned for the 8-byte
// offsets kept in it (cudaMalloc returns 256-byte aligned memory; a misaligned sub-allocation is a backend bug).
cudnnStatus_t check_workspace(const void* workspace, size_t given, uint64_t needed) {
  if (needed == 0) return CUDNN_STATUS_SUCCESS;
  if (workspace == nullptr || given < needed) return CUDNN_STATUS_BAD_PARAM;
  if (reinterpret_cast<uintptr_t>(workspace) % alignof(int64_t) != 0) return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
  return CUDNN_STATUS_SUCCESS;
}

// Dot product in a fixed order: eight interleaved partial sums (element i goes to lane i % 8), combined pairwise.
// Deterministic for any thread count, and the independent lanes let the compiler vectorise.
inline float dot_fixed_order(const float* a, const float* b, int64_t count) {
  float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int lane = 0; lane < 8; ++lane) lanes[lane] += a[i + lane] * b[i + lane];
  for (int lane = 0; i < count; ++i, ++lane) lanes[lane] += a[i] * b[i];
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// One image's im2col matrix, one row per output pixel: col[p * CRS + (c * R + r) * S + s], zero in the padding.
void im2col(const Geometry& g, const float* x, int n, float* col) {
  const int64_t crs = g.crs();
  LETHE_SIM_OMP(omp parallel for schedule(static))
  for (int oh = 0; oh < g.OH; ++oh)
    for (int ow = 0; ow < g.OW; ++ow) {
      float* row = col + (static_cast<int64_t>(oh) * g.OW + ow) * crs;
      for (int c = 0; c < g.C; ++c)
        for (int r = 0; r < g.R; ++r) {
          const int64_t h = g.in_h(oh, r);
          for (int s = 0; s < g.S; ++s) {
            const int64_t w = g.in_w(ow, s);
            const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
            *row++ = inside ? x[g.x.at(n, c, h, w)] : 0.0f;
          }
        }
    }
}

void forward_implicit(const Geometry& g, float alpha, const float* x, const float* wt, float beta, float* y) {
  LETHE_SIM_OMP(omp parallel for collapse(2) schedule(static))
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k)
      for (int oh = 0; oh < g.OH; ++oh)
        for (int ow = 0; ow < g.OW; ++ow) {
          float sum = 0.0f;
          for (int c = 0; c < g.C; ++c)
            for (int r = 0; r < g.R; ++r) {
              const int64_t h = g.in_h(oh, r);
              if (h < 0 || h >= g.H) continue;
              for (int s = 0; s < g.S; ++s) {
                const int64_t w = g.in_w(ow, s);
                if (w < 0 || w >= g.W) continue;
                sum += x[g.x.at(n, c, h, w)] * wt[g.filter_at(k, c, r, s)];
              }
            }
          blend(y[g.y.at(n, k, oh, ow)], sum, alpha, beta);
        }
}

// The offset table (input h/w offset per output pixel and tap, -1 in the padding) lives in the workspace.
void forward_precomp(const Geometry& g, float alpha, const float* x, const float* wt, float beta, float* y,
                     void* workspace) {
  auto* table = static_cast<int64_t*>(workspace);
  const int64_t taps = static_cast<int64_t>(g.R) * g.S;
  for (int oh = 0; oh < g.OH; ++oh)
    for (int ow = 0; ow < g.OW; ++ow)
      for (int r = 0; r < g.R; ++r)
        for (int s = 0; s < g.S; ++s) {
          const int64_t h = g.in_h(oh, r), w = g.in_w(ow, s);
          const bool inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
          table[(static_cast<int64_t>(oh) * g.OW + ow) * taps + r * g.S + s] = inside ? h * g.x.sh + w * g.x.sw : -1;
        }
  LETHE_SIM_OMP(omp parallel for collapse(2) schedule(static))
  for (int n = 0; n < g.N; ++n)
    for (int k = 0; k < g.K; ++k)
      for (int oh = 0; oh < g.OH; ++oh)
        for (int ow = 0; ow < g.OW; ++ow) {
          const int64_t* offsets = table + (static_cast<int64_t>(oh) * g.OW + ow) * taps;
          float sum = 0.0f;
          for (int c = 0; c < g.C; ++c) {
            const float* plane = x + g.x.at(n, c, 0, 0);
            for (int64_t t = 0; t < taps; ++t)
              if (offsets[t] >= 0) sum += plane[offsets[t]] * wt[g.filter_at(k, c, 0, 0) + t];
          }
          blend(y[g.y.at(n, k, oh, ow)], sum, alpha, beta);
        }
}

void forward_gemm(const Geometry& g, float alpha, const float* x, const float* wt, float beta, float* y,
                  void* workspace) {
  auto* col = static_cast<float*>(workspace);
  const int64_t crs = g.crs();
  for (int n = 0; n < g.N; ++n) {
    im2col(g, x, n, col);
    LETHE_SIM_OMP(omp parallel for schedule(static))
    for (int k = 0; k < g.K; ++k) {
      const float* filter = wt + k * crs;
      for (int oh = 0; oh < g.OH; ++oh)
        for (int ow = 0; ow < g.OW; ++ow) {
          const float* row = col + (static_cast<int64_t>(oh) * g.OW + ow) * crs;
          const float sum = dot_fixed_order(filter, row, crs);
          blend(y[g.y.at(n, k, oh, ow)], sum, alpha, beta);
        }
    }
  }
}

// dx gathered per input element: deterministic, no workspace.
void backward_data_direct(const Geometry& g, float alpha, const float* wt, const float* dy, float beta, float* dx) {
  LETHE_SIM_OMP(omp parallel for collapse(2) schedule(static))
  for (int n = 0; n < g.N; ++n)
    for (int c = 0; c < g.C; ++c)
      for (int h = 0; h < g.H; ++h)
        for (int w = 0; w < g.W; ++w) {
          float sum = 0.0f;
          for (int k = 0; k < g.K; ++k)
            for (int r = 0; r < g.R; ++r) {
              const int64_t th = static_cast<int64_t>(h) + g.pad_h - static_cast<int64_t>(g.tap_r(r)) * g.dilation_h;
              if (th < 0 || th % g.stride_h != 0) continue;
              const int64_t oh = th / g.stride_h;
              if (oh >= g.OH) continue;
              for (int s = 0; s < g.S; ++s) {
                const int64_t tw =
                    static_cast<int64_t>(w) + g.pad_w - static_cast<int64_t>(g.tap_s(s)) * g.dilation_w;
                if (tw < 0 || tw % g.stride_w != 0) continue;
                const int64_t ow = tw / g.stride_w;
                if (ow >= g.OW) continue;
                sum += dy[g.y.at(n, k, oh, ow)] * wt[g.filter_at(k, c, r, s)];
              }
            }
          blend(dx[g.x.at(n, c, h, w)], sum, alpha, beta);
        }
}

// Column buffer dcol = W^T * dy, then col2im into a packed image accumulator; both in the workspace.
void backward_data_gemm(const Geometry& g, float alpha, const float* wt, const float* dy, float beta, float* dx,
                        void* workspace) {
  const int64_t crs = g.crs(), pixels = g.pixels();
  auto* dcol = static_cast<float*>(workspace);
  float* image = dcol + crs * pixels;
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  for (int n = 0; n < g.N; ++n) {
    LETHE_SIM_OMP(omp parallel for schedule(static))
    for (int oh = 0; oh < g.OH; ++oh)
      for (int ow = 0; ow < g.OW; ++ow) {
        // Row q of W^T times this pixel's dy, accumulated over k in order (contiguous, vectorisable).
        float* row = dcol + (static_cast<int64_t>(oh) * g.OW + ow) * crs;
        std::fill(row, row + crs, 0.0f);
        for (int k = 0; k < g.K; ++k) {
          const float d = dy[g.y.at(n, k, oh, ow)];
          const float* filter = wt + k * crs;
          for (int64_t q = 0; q < crs; ++q) row[q] += filter[q] * d;
        }
      }
    std::fill(image, image + g.C * plane, 0.0f);
    for (int oh = 0; oh < g.OH; ++oh)
      for (int ow = 0; ow < g.OW; ++ow) {
        const float* row = dcol + (static_cast<int64_t>(oh) * g.OW + ow) * crs;
        for (int c = 0; c < g.C; ++c)
          for (int r = 0; r < g.R; ++r) {
            const int64_t h = g.in_h(oh, r);
            for (int s = 0; s < g.S; ++s) {
              const int64_t w = g.in_w(ow, s);
              const float value = *row++;
              if (h >= 0 && h < g.H && w >= 0 && w < g.W) image[c * plane + h * g.W + w] += value;
            }
          }
      }
    for (int c = 0; c < g.C; ++c)
      for (int h = 0; h < g.H; ++h)
        for (int w = 0; w < g.W; ++w) blend(dx[g.x.at(n, c, h, w)], image[c * plane + h * g.W + w], alpha, beta);
  }
}

void backward_filter_direct(const Geometry& g, float alpha, const float* x, const float* dy, float beta, float* dw) {
  LETHE_SIM_OMP(omp parallel for collapse(2) schedule(static))
  for (int k = 0; k < g.K; ++k)
    for (int c = 0; c < g.C; ++c)
      for (int r = 0; r < g.R; ++r)
        for (int s = 0; s < g.S; ++s) {
          float sum = 0.0f;
          for (int n = 0; n < g.N; ++n)
            for (int oh = 0; oh < g.OH; ++oh) {
              const int64_t h = g.in_h(oh, r);
              if (h < 0 || h >= g.H) continue;
              for (int ow = 0; ow < g.OW; ++ow) {
                const int64_t w = g.in_w(ow, s);
                if (w < 0 || w >= g.W) continue;
                sum += dy[g.y.at(n, k, oh, ow)] * x[g.x.at(n, c, h, w)];
              }
            }
          blend(dw[g.filter_at(k, c, r, s)], sum, alpha, beta);
        }
}

// Per image: im2col into the workspace, then accumulate dy * col into a K x CRS accumulator after it.
void backward_filter_gemm(const Geometry& g, float alpha, const float* x, const float* dy, float beta, float* dw,
                          void* workspace) {
  const int64_t crs = g.crs(), pixels = g.pixels();
  auto* col = static_cast<float*>(workspace);
  float* accumulator = col + crs * pixels;
  std::fill(accumulator, accumulator + g.K * crs, 0.0f);
  for (int n = 0; n < g.N; ++n) {
    im2col(g, x, n, col);
    LETHE_SIM_OMP(omp parallel for schedule(static))
    for (int k = 0; k < g.K; ++k) {
      float* acc = accumulator + k * crs;
      for (int oh = 0; oh < g.OH; ++oh)
        for (int ow = 0; ow < g.OW; ++ow) {
          const float d = dy[g.y.at(n, k, oh, ow)];
          const float* row = col + (static_cast<int64_t>(oh) * g.OW + ow) * crs;
          for (int64_t q = 0; q < crs; ++q) acc[q] += d * row[q];
        }
    }
  }
  for (int64_t i = 0; i < g.K * crs; ++i) blend(dw[i], accumulator[i], alpha, beta);
}

bool forward_in_range(cudnnConvolutionFwdAlgo_t algo) {
  return static_cast<int>(algo) >= 0 && algo < CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
}
bool backward_data_in_range(cudnnConvolutionBwdDataAlgo_t algo) {
  return static_cast<int>(algo) >= 0 && algo < CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
}
bool backward_filter_in_range(cudnnConvolutionBwdFilterAlgo_t algo) {
  return static_cast<int>(algo) >= 0 && algo < CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
}

cudnnStatus_t run_forward(const Geometry& g, cudnnConvolutionFwdAlgo_t algo, float alpha, const float* x,
                          const float* w, void* workspace, size_t workspace_bytes, float beta, float* y) {
  if (!forward_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  const auto needed = forward_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  const cudnnStatus_t status = check_workspace(workspace, workspace_bytes, *needed);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: forward_implicit(g, alpha, x, w, beta, y); break;
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: forward_precomp(g, alpha, x, w, beta, y, workspace); break;
    default: forward_gemm(g, alpha, x, w, beta, y, workspace); break;
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t run_backward_data(const Geometry& g, cudnnConvolutionBwdDataAlgo_t algo, float alpha, const float* w,
                                const float* dy, void* workspace, size_t workspace_bytes, float beta, float* dx) {
  if (!backward_data_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  const auto needed = backward_data_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  const cudnnStatus_t status = check_workspace(workspace, workspace_bytes, *needed);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  if (algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) backward_data_direct(g, alpha, w, dy, beta, dx);
  else backward_data_gemm(g, alpha, w, dy, beta, dx, workspace);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t run_backward_filter(const Geometry& g, cudnnConvolutionBwdFilterAlgo_t algo, float alpha,
                                  const float* x, const float* dy, void* workspace, size_t workspace_bytes,
                                  float beta, float* dw) {
  if (!backward_filter_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  const auto needed = backward_filter_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  const cudnnStatus_t status = check_workspace(workspace, workspace_bytes, *needed);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  if (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) backward_filter_direct(g, alpha, x, dy, beta, dw);
  else backward_filter_gemm(g, alpha, x, dy, beta, dw, workspace);
  return CUDNN_STATUS_SUCCESS;
}

// Heuristic order: implemented algorithms first (workspace users first, so backends exercise their workspace
// path), then the rest of the enum reported as CUDNN_STATUS_NOT_SUPPORTED, as cuDNN lists algorithms it cannot run.
constexpr cudnnConvolutionFwdAlgo_t kForwardOrder[] = {
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
    CUDNN_CONVOLUTION_FWD_ALGO_GEMM,                  CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT,                   CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,              CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED};
constexpr cudnnConvolutionBwdDataAlgo_t kBackwardDataOrder[] = {
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,        CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,      CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED};
constexpr cudnnConvolutionBwdFilterAlgo_t kBackwardFilterOrder[] = {
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT,      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3,
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING};

// As real cuDNN documents them: ALGO_0 of both backward passes accumulates with atomics on a GPU.
cudnnDeterminism_t determinism_of(cudnnConvolutionFwdAlgo_t) { return CUDNN_DETERMINISTIC; }
cudnnDeterminism_t determinism_of(cudnnConvolutionBwdDataAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
}
cudnnDeterminism_t determinism_of(cudnnConvolutionBwdFilterAlgo_t algo) {
  return (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3)
             ? CUDNN_NON_DETERMINISTIC
             : CUDNN_DETERMINISTIC;
}

template <typename Perf, typename Algo, size_t Count, typename WorkspaceFn>
void heuristic_list(const Geometry& g, cudnnMathType_t math, const Algo (&order)[Count], WorkspaceFn workspace,
                    int requested, int* returned, Perf* results) {
  const int count = std::min<int>(requested, static_cast<int>(Count));
  for (int i = 0; i < count; ++i) {
    Perf perf{};
    perf.algo = order[i];
    const auto needed = workspace(g, order[i]);
    perf.status = needed ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_NOT_SUPPORTED;
    perf.time = -1.0f;  // heuristics do not time anything
    perf.memory = needed ? static_cast<size_t>(*needed) : 0;
    perf.determinism = determinism_of(order[i]);
    perf.mathType = math;
    results[i] = perf;
  }
  *returned = count;
}

// Find*Ex: run every implemented algorithm that fits the given workspace, in the fixed heuristic order (not sorted
// by the measured time, so the choice is reproducible); the destination holds the last run's result afterwards.
template <typename Perf, typename Algo, size_t Count, typename WorkspaceFn, typename RunFn>
void find_list(const Geometry& g, cudnnMathType_t math, const Algo (&order)[Count], WorkspaceFn workspace,
               RunFn run, void* work, size_t work_bytes, int requested, int* returned, Perf* results) {
  std::vector<Perf> ran, too_big, unsupported;
  for (const Algo algo : order) {
    Perf perf{};
    perf.algo = algo;
    perf.determinism = determinism_of(algo);
    perf.mathType = math;
    perf.time = -1.0f;
    const auto needed = workspace(g, algo);
    if (!needed) {
      perf.status = CUDNN_STATUS_NOT_SUPPORTED;
      unsupported.push_back(perf);
      continue;
    }
    perf.memory = static_cast<size_t>(*needed);
    if (check_workspace(work, work_bytes, *needed) != CUDNN_STATUS_SUCCESS) {
      perf.status = CUDNN_STATUS_ALLOC_FAILED;
      too_big.push_back(perf);
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    perf.status = run(algo);
    perf.time = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - start).count();
    ran.push_back(perf);
  }
  ran.insert(ran.end(), too_big.begin(), too_big.end());
  ran.insert(ran.end(), unsupported.begin(), unsupported.end());
  const int count = std::min<int>(requested, static_cast<int>(ran.size()));
  std::copy(ran.begin(), ran.begin() + count, results);
  *returned = count;
}

// Elements a tensor's strides span (what a buffer for it must hold).
size_t span_elements(const View& v) {
  return static_cast<size_t>(1 + (v.n - 1) * v.sn + (v.c - 1) * v.sc + (v.h - 1) * v.sh + (v.w - 1) * v.sw);
}

// Buffers the non-Ex Find functions allocate themselves, as cuDNN does: zeroed x, filter, y and the largest
// workspace any implemented algorithm needs.
struct FindBuffers {
  std::vector<float> x, w, y;
  std::vector<int64_t> workspace;  // int64 elements keep the offset table aligned
  template <typename Algo, size_t Count, typename WorkspaceFn>
  FindBuffers(const Geometry& g, const Algo (&order)[Count], WorkspaceFn workspace_of)
      : x(span_elements(g.x)), w(static_cast<size_t>(g.K) * g.crs()), y(span_elements(g.y)) {
    uint64_t largest = 0;
    for (const Algo algo : order)
      if (const auto needed = workspace_of(g, algo)) largest = std::max(largest, *needed);
    workspace.resize((largest + sizeof(int64_t) - 1) / sizeof(int64_t));
  }
  void* workspace_data() { return workspace.empty() ? nullptr : workspace.data(); }
  size_t workspace_bytes() const { return workspace.size() * sizeof(int64_t); }
};

}  // namespace

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH: return "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH";
    case CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH: return "CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH";
    case CUDNN_STATUS_DEPRECATED: return "CUDNN_STATUS_DEPRECATED";
    case CUDNN_STATUS_LICENSE_ERROR: return "CUDNN_STATUS_LICENSE_ERROR";
    case CUDNN_STATUS_RUNTIME_IN_PROGRESS: return "CUDNN_STATUS_RUNTIME_IN_PROGRESS";
    case CUDNN_STATUS_RUNTIME_FP_OVERFLOW: return "CUDNN_STATUS_RUNTIME_FP_OVERFLOW";
    case CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED: return "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INVALID_VALUE: return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
    case CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND: return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT: return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
    case CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES: return "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES";
    case CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE: return "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE";
    case CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE: return "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN: return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER:
      return "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER";
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART: return "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART";
    case CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH: return "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING:
      return "CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING";
    case CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE:
      return "CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE";
    case CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT:
      return "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT";
    case CUDNN_STATUS_NOT_SUPPORTED_PADDING: return "CUDNN_STATUS_NOT_SUPPORTED_PADDING";
    case CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM: return "CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API:
      return "CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API";
    case CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE:
      return "CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE: return "CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE";
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM: return "CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM";
    case CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER: return "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER";
    case CUDNN_STATUS_EXECUTION_FAILED_CUBLAS: return "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS";
    case CUDNN_STATUS_EXECUTION_FAILED_CUDART: return "CUDNN_STATUS_EXECUTION_FAILED_CUDART";
    case CUDNN_STATUS_EXECUTION_FAILED_CURAND: return "CUDNN_STATUS_EXECUTION_FAILED_CURAND";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) { return create_object(handle); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return destroy_object(handle);
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (!is_live(handle)) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* streamId) {
  if (!is_live(handle) || streamId == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *streamId = handle->stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) { return create_object(tensorDesc); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) { return destroy_object(tensorDesc); }

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
  if (!is_live(tensorDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (format != CUDNN_TENSOR_NCHW) {
    return (format == CUDNN_TENSOR_NHWC || format == CUDNN_TENSOR_NCHW_VECT_C) ? CUDNN_STATUS_NOT_SUPPORTED
                                                                              : CUDNN_STATUS_BAD_PARAM;
  }
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  const int64_t hw = static_cast<int64_t>(h) * w, chw = hw * c;
  if (chw > kMaxElements) return CUDNN_STATUS_NOT_SUPPORTED;
  const int dims[4] = {n, c, h, w};
  const int strides[4] = {static_cast<int>(chw), static_cast<int>(hw), w, 1};
  return set_tensor(tensorDesc, dataType, dims, strides);
}

cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType, int n, int c,
                                           int h, int w, int nStride, int cStride, int hStride, int wStride) {
  const int dims[4] = {n, c, h, w};
  const int strides[4] = {nStride, cStride, hStride, wStride};
  return set_tensor(tensorDesc, dataType, dims, strides);
}

cudnnStatus_t cudnnGetTensor4dDescriptor(const cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t* dataType, int* n,
                                         int* c, int* h, int* w, int* nStride, int* cStride, int* hStride,
                                         int* wStride) {
  if (!tensor_ready(tensorDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (!dataType || !n || !c || !h || !w || !nStride || !cStride || !hStride || !wStride) return CUDNN_STATUS_BAD_PARAM;
  *dataType = tensorDesc->data_type;
  *n = tensorDesc->dims[0];
  *c = tensorDesc->dims[1];
  *h = tensorDesc->dims[2];
  *w = tensorDesc->dims[3];
  *nStride = tensorDesc->strides[0];
  *cStride = tensorDesc->strides[1];
  *hStride = tensorDesc->strides[2];
  *wStride = tensorDesc->strides[3];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType, int nbDims,
                                         const int dimA[], const int strideA[]) {
  if (!is_live(tensorDesc) || dimA == nullptr || strideA == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (nbDims < 3 || nbDims > CUDNN_DIM_MAX) return CUDNN_STATUS_BAD_PARAM;
  if (nbDims != 4) return CUDNN_STATUS_NOT_SUPPORTED;  // only 2-d convolutions are simulated
  return set_tensor(tensorDesc, dataType, dimA, strideA);
}

cudnnStatus_t cudnnGetTensorNdDescriptor(const cudnnTensorDescriptor_t tensorDesc, int nbDimsRequested,
                                         cudnnDataType_t* dataType, int* nbDims, int dimA[], int strideA[]) {
  if (!tensor_ready(tensorDesc) || nbDimsRequested < 0 || !dataType || !nbDims) return CUDNN_STATUS_BAD_PARAM;
  const int count = std::min(nbDimsRequested, 4);
  if (count > 0 && (dimA == nullptr || strideA == nullptr)) return CUDNN_STATUS_BAD_PARAM;
  *dataType = tensorDesc->data_type;
  *nbDims = 4;
  for (int i = 0; i < count; ++i) {
    dimA[i] = tensorDesc->dims[i];
    strideA[i] = tensorDesc->strides[i];
  }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetTensorSizeInBytes(const cudnnTensorDescriptor_t tensorDesc, size_t* size) {
  if (!tensor_ready(tensorDesc) || size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  int64_t span = 1;
  for (int i = 0; i < 4; ++i) span += static_cast<int64_t>(tensorDesc->dims[i] - 1) * tensorDesc->strides[i];
  *size = static_cast<size_t>(span) * sizeof(float);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t aDesc,
                             const void* A, const void* beta, const cudnnTensorDescriptor_t cDesc, void* C) {
  if (!is_live(handle) || !tensor_ready(aDesc) || !tensor_ready(cDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (alpha == nullptr || beta == nullptr || A == nullptr || C == nullptr) return CUDNN_STATUS_BAD_PARAM;
  // Each dimension of A either matches C's or is 1 (broadcast).
  for (int i = 0; i < 4; ++i)
    if (aDesc->dims[i] != cDesc->dims[i] && aDesc->dims[i] != 1) return CUDNN_STATUS_BAD_PARAM;
  const float a_scale = *static_cast<const float*>(alpha), c_scale = *static_cast<const float*>(beta);
  const auto* a = static_cast<const float*>(A);
  auto* c = static_cast<float*>(C);
  const View av = view_of(aDesc), cv = view_of(cDesc);
  for (int n = 0; n < cv.n; ++n)
    for (int ch = 0; ch < cv.c; ++ch)
      for (int h = 0; h < cv.h; ++h)
        for (int w = 0; w < cv.w; ++w) {
          const float value = a[av.at(av.n == 1 ? 0 : n, av.c == 1 ? 0 : ch, av.h == 1 ? 0 : h, av.w == 1 ? 0 : w)];
          blend(c[cv.at(n, ch, h, w)], value, a_scale, c_scale);
        }
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor(cudnnHandle_t handle, const cudnnTensorDescriptor_t yDesc, void* y,
                             const void* valuePtr) {
  if (!is_live(handle) || !tensor_ready(yDesc) || y == nullptr || valuePtr == nullptr) return CUDNN_STATUS_BAD_PARAM;
  const float value = *static_cast<const float*>(valuePtr);
  auto* out = static_cast<float*>(y);
  const View v = view_of(yDesc);
  for (int n = 0; n < v.n; ++n)
    for (int c = 0; c < v.c; ++c)
      for (int h = 0; h < v.h; ++h)
        for (int w = 0; w < v.w; ++w) out[v.at(n, c, h, w)] = value;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnScaleTensor(cudnnHandle_t handle, const cudnnTensorDescriptor_t yDesc, void* y,
                               const void* alpha) {
  if (!is_live(handle) || !tensor_ready(yDesc) || y == nullptr || alpha == nullptr) return CUDNN_STATUS_BAD_PARAM;
  const float scale = *static_cast<const float*>(alpha);
  auto* out = static_cast<float*>(y);
  const View v = view_of(yDesc);
  for (int n = 0; n < v.n; ++n)
    for (int c = 0; c < v.c; ++c)
      for (int h = 0; h < v.h; ++h)
        for (int w = 0; w < v.w; ++w) out[v.at(n, c, h, w)] *= scale;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) { return create_object(filterDesc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) { return destroy_object(filterDesc); }

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  const int dims[4] = {k, c, h, w};
  return set_filter(filterDesc, dataType, format, dims);
}

cudnnStatus_t cudnnGetFilter4dDescriptor(const cudnnFilterDescriptor_t filterDesc, cudnnDataType_t* dataType,
                                         cudnnTensorFormat_t* format, int* k, int* c, int* h, int* w) {
  if (!filter_ready(filterDesc) || !dataType || !format || !k || !c || !h || !w) return CUDNN_STATUS_BAD_PARAM;
  *dataType = filterDesc->data_type;
  *format = filterDesc->format;
  *k = filterDesc->dims[0];
  *c = filterDesc->dims[1];
  *h = filterDesc->dims[2];
  *w = filterDesc->dims[3];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilterNdDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int nbDims, const int filterDimA[]) {
  if (!is_live(filterDesc) || filterDimA == nullptr || nbDims < 3 || nbDims > CUDNN_DIM_MAX)
    return CUDNN_STATUS_BAD_PARAM;
  if (nbDims != 4) return CUDNN_STATUS_NOT_SUPPORTED;
  return set_filter(filterDesc, dataType, format, filterDimA);
}

cudnnStatus_t cudnnGetFilterSizeInBytes(const cudnnFilterDescriptor_t filterDesc, size_t* size) {
  if (!filter_ready(filterDesc) || size == nullptr) return CUDNN_STATUS_BAD_PARAM;
  size_t elements = 1;
  for (int i = 0; i < 4; ++i) elements *= static_cast<size_t>(filterDesc->dims[i]);
  *size = elements * sizeof(float);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
  return create_object(convDesc);
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
  return destroy_object(convDesc);
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
  if (!is_live(convDesc)) return CUDNN_STATUS_BAD_PARAM;
  const int value = static_cast<int>(mathType);
  if (value < CUDNN_DEFAULT_MATH || value > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
  convDesc->math_type = mathType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t* mathType) {
  if (!is_live(convDesc) || mathType == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *mathType = convDesc->math_type;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
  if (!is_live(convDesc) || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
  if (groupCount != 1) return CUDNN_STATUS_NOT_SUPPORTED;  // grouped convolution is not simulated
  convDesc->group_count = groupCount;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int* groupCount) {
  if (!is_live(convDesc) || groupCount == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *groupCount = convDesc->group_count;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
  if (!is_live(convDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
    return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
  const cudnnStatus_t type_status = check_data_type(computeType);
  if (type_status != CUDNN_STATUS_SUCCESS) return type_status;
  convDesc->pad_h = pad_h;
  convDesc->pad_w = pad_w;
  convDesc->stride_h = u;
  convDesc->stride_w = v;
  convDesc->dilation_h = dilation_h;
  convDesc->dilation_w = dilation_w;
  convDesc->mode = mode;
  convDesc->compute_type = computeType;
  convDesc->set = true;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dDescriptor(const cudnnConvolutionDescriptor_t convDesc, int* pad_h, int* pad_w,
                                              int* u, int* v, int* dilation_h, int* dilation_w,
                                              cudnnConvolutionMode_t* mode, cudnnDataType_t* computeType) {
  if (!conv_ready(convDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (!pad_h || !pad_w || !u || !v || !dilation_h || !dilation_w || !mode || !computeType)
    return CUDNN_STATUS_BAD_PARAM;
  *pad_h = convDesc->pad_h;
  *pad_w = convDesc->pad_w;
  *u = convDesc->stride_h;
  *v = convDesc->stride_w;
  *dilation_h = convDesc->dilation_h;
  *dilation_w = convDesc->dilation_w;
  *mode = convDesc->mode;
  *computeType = convDesc->compute_type;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionNdDescriptor(cudnnConvolutionDescriptor_t convDesc, int arrayLength,
                                              const int padA[], const int filterStrideA[], const int dilationA[],
                                              cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
  if (!is_live(convDesc) || !padA || !filterStrideA || !dilationA) return CUDNN_STATUS_BAD_PARAM;
  if (arrayLength < 1 || arrayLength > CUDNN_DIM_MAX - 2) return CUDNN_STATUS_BAD_PARAM;
  if (arrayLength != 2) return CUDNN_STATUS_NOT_SUPPORTED;
  return cudnnSetConvolution2dDescriptor(convDesc, padA[0], padA[1], filterStrideA[0], filterStrideA[1], dilationA[0],
                                         dilationA[1], mode, computeType);
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int* n, int* c, int* h,
                                                    int* w) {
  if (!n || !c || !h || !w) return CUDNN_STATUS_BAD_PARAM;
  int out[4];
  const cudnnStatus_t status = forward_output_dims(convDesc, inputTensorDesc, filterDesc, out);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  *n = out[0];
  *c = out[1];
  *h = out[2];
  *w = out[3];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionNdForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int nbDims,
                                                    int tensorOuputDimA[]) {
  if (nbDims != 4 || tensorOuputDimA == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return forward_output_dims(convDesc, inputTensorDesc, filterDesc, tensorOuputDimA);
}

// ---- forward ----

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int* returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(srcDesc, filterDesc, convDesc, destDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  heuristic_list(g, convDesc->math_type, kForwardOrder, forward_workspace, requestedAlgoCount, returnedAlgoCount,
                 perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                   const cudnnFilterDescriptor_t wDesc,
                                                   const cudnnConvolutionDescriptor_t convDesc,
                                                   const cudnnTensorDescriptor_t yDesc, const int requestedAlgoCount,
                                                   int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, wDesc, convDesc, yDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  FindBuffers buffers(g, kForwardOrder, forward_workspace);
  return cudnnFindConvolutionForwardAlgorithmEx(handle, xDesc, buffers.x.data(), wDesc, buffers.w.data(), convDesc,
                                                yDesc, buffers.y.data(), requestedAlgoCount, returnedAlgoCount,
                                                perfResults, buffers.workspace_data(), buffers.workspace_bytes());
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                     const void* x, const cudnnFilterDescriptor_t wDesc,
                                                     const void* w, const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t yDesc, void* y,
                                                     const int requestedAlgoCount, int* returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t* perfResults, void* workSpace,
                                                     size_t workSpaceSizeInBytes) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  if (!x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, wDesc, convDesc, yDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  auto run = [&](cudnnConvolutionFwdAlgo_t algo) {
    return run_forward(g, algo, 1.0f, static_cast<const float*>(x), static_cast<const float*>(w), workSpace,
                       workSpaceSizeInBytes, 0.0f, static_cast<float*>(y));
  };
  find_list(g, convDesc->math_type, kForwardOrder, forward_workspace, run, workSpace, workSpaceSizeInBytes,
            requestedAlgoCount, returnedAlgoCount, perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  if (!is_live(handle) || sizeInBytes == nullptr || !forward_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, wDesc, convDesc, yDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  const auto needed = forward_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  *sizeInBytes = static_cast<size_t>(*needed);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void* x, const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void* workSpace, size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  if (!is_live(handle) || !alpha || !beta || !x || !w || !y) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, wDesc, convDesc, yDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  return run_forward(g, algo, *static_cast<const float*>(alpha), static_cast<const float*>(x),
                     static_cast<const float*>(w), workSpace, workSpaceSizeInBytes, *static_cast<const float*>(beta),
                     static_cast<float*>(y));
}

// ---- backward data ----

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t filterDesc,
                                                          const cudnnTensorDescriptor_t diffDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t gradDesc,
                                                          const int requestedAlgoCount, int* returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(gradDesc, filterDesc, convDesc, diffDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  heuristic_list(g, convDesc->math_type, kBackwardDataOrder, backward_data_workspace, requestedAlgoCount,
                 returnedAlgoCount, perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                        const cudnnTensorDescriptor_t dyDesc,
                                                        const cudnnConvolutionDescriptor_t convDesc,
                                                        const cudnnTensorDescriptor_t dxDesc,
                                                        const int requestedAlgoCount, int* returnedAlgoCount,
                                                        cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(dxDesc, wDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  FindBuffers buffers(g, kBackwardDataOrder, backward_data_workspace);
  return cudnnFindConvolutionBackwardDataAlgorithmEx(handle, wDesc, buffers.w.data(), dyDesc, buffers.y.data(),
                                                     convDesc, dxDesc, buffers.x.data(), requestedAlgoCount,
                                                     returnedAlgoCount, perfResults, buffers.workspace_data(),
                                                     buffers.workspace_bytes());
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void* w, const cudnnTensorDescriptor_t dyDesc,
    const void* dy, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void* dx,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults,
    void* workSpace, size_t workSpaceSizeInBytes) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  if (!w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(dxDesc, wDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  auto run = [&](cudnnConvolutionBwdDataAlgo_t algo) {
    return run_backward_data(g, algo, 1.0f, static_cast<const float*>(w), static_cast<const float*>(dy), workSpace,
                             workSpaceSizeInBytes, 0.0f, static_cast<float*>(dx));
  };
  find_list(g, convDesc->math_type, kBackwardDataOrder, backward_data_workspace, run, workSpace, workSpaceSizeInBytes,
            requestedAlgoCount, returnedAlgoCount, perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* sizeInBytes) {
  if (!is_live(handle) || sizeInBytes == nullptr || !backward_data_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(dxDesc, wDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  const auto needed = backward_data_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  *sizeInBytes = static_cast<size_t>(*needed);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  if (!is_live(handle) || !alpha || !beta || !w || !dy || !dx) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(dxDesc, wDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  return run_backward_data(g, algo, *static_cast<const float*>(alpha), static_cast<const float*>(w),
                           static_cast<const float*>(dy), workSpace, workSpaceSizeInBytes,
                           *static_cast<const float*>(beta), static_cast<float*>(dx));
}

// ---- backward filter and bias ----

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle,
                                                            const cudnnTensorDescriptor_t srcDesc,
                                                            const cudnnTensorDescriptor_t diffDesc,
                                                            const cudnnConvolutionDescriptor_t convDesc,
                                                            const cudnnFilterDescriptor_t gradDesc,
                                                            const int requestedAlgoCount, int* returnedAlgoCount,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(srcDesc, gradDesc, convDesc, diffDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  heuristic_list(g, convDesc->math_type, kBackwardFilterOrder, backward_filter_workspace, requestedAlgoCount,
                 returnedAlgoCount, perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                          const cudnnTensorDescriptor_t dyDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnFilterDescriptor_t dwDesc,
                                                          const int requestedAlgoCount, int* returnedAlgoCount,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, dwDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  FindBuffers buffers(g, kBackwardFilterOrder, backward_filter_workspace);
  return cudnnFindConvolutionBackwardFilterAlgorithmEx(handle, xDesc, buffers.x.data(), dyDesc, buffers.y.data(),
                                                       convDesc, dwDesc, buffers.w.data(), requestedAlgoCount,
                                                       returnedAlgoCount, perfResults, buffers.workspace_data(),
                                                       buffers.workspace_bytes());
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnTensorDescriptor_t dyDesc,
    const void* y, const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void* dw,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults,
    void* workSpace, size_t workSpaceSizeInBytes) {
  if (!is_live(handle) || requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults) return CUDNN_STATUS_BAD_PARAM;
  if (!x || !y || !dw) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, dwDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  auto run = [&](cudnnConvolutionBwdFilterAlgo_t algo) {
    return run_backward_filter(g, algo, 1.0f, static_cast<const float*>(x), static_cast<const float*>(y), workSpace,
                               workSpaceSizeInBytes, 0.0f, static_cast<float*>(dw));
  };
  find_list(g, convDesc->math_type, kBackwardFilterOrder, backward_filter_workspace, run, workSpace,
            workSpaceSizeInBytes, requestedAlgoCount, returnedAlgoCount, perfResults);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                             const cudnnTensorDescriptor_t dyDesc,
                                                             const cudnnConvolutionDescriptor_t convDesc,
                                                             const cudnnFilterDescriptor_t gradDesc,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t* sizeInBytes) {
  if (!is_live(handle) || sizeInBytes == nullptr || !backward_filter_in_range(algo)) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, gradDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  const auto needed = backward_filter_workspace(g, algo);
  if (!needed) return CUDNN_STATUS_NOT_SUPPORTED;
  *sizeInBytes = static_cast<size_t>(*needed);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  if (!is_live(handle) || !alpha || !beta || !x || !dy || !dw) return CUDNN_STATUS_BAD_PARAM;
  Geometry g;
  const cudnnStatus_t status = resolve(xDesc, dwDesc, convDesc, dyDesc, g);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  return run_backward_filter(g, algo, *static_cast<const float*>(alpha), static_cast<const float*>(x),
                             static_cast<const float*>(dy), workSpace, workSpaceSizeInBytes,
                             *static_cast<const float*>(beta), static_cast<float*>(dw));
}

cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t handle, const void* alpha,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy, const void* beta,
                                           const cudnnTensorDescriptor_t dbDesc, void* db) {
  if (!is_live(handle) || !tensor_ready(dyDesc) || !tensor_ready(dbDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (!alpha || !beta || !dy || !db) return CUDNN_STATUS_BAD_PARAM;
  // The bias gradient is 1 x K x 1 x 1 for a dy of N x K x H x W.
  if (dbDesc->dims[0] != 1 || dbDesc->dims[1] != dyDesc->dims[1] || dbDesc->dims[2] != 1 || dbDesc->dims[3] != 1)
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const auto* grad = static_cast<const float*>(dy);
  auto* out = static_cast<float*>(db);
  const View v = view_of(dyDesc), bv = view_of(dbDesc);
  for (int k = 0; k < v.c; ++k) {
    float sum = 0.0f;
    for (int n = 0; n < v.n; ++n)
      for (int h = 0; h < v.h; ++h)
        for (int w = 0; w < v.w; ++w) sum += grad[v.at(n, k, h, w)];
    blend(out[bv.at(0, k, 0, 0)], sum, a, b);
  }
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace lethe::sim::cudnn_api
