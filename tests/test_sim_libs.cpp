// The host stand-ins for cuBLAS, cuDNN and CUB (kernels/sim/include) against double-precision references and the
// documented status codes, so a wrong leading dimension, transpose, descriptor or workspace size in the CUDA backend
// fails on a machine without a GPU.
#include <cublas_v2.h>
#include <cudnn.h>
#include <cub/cub.cuh>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = 12345.0f;

std::vector<float> random_values(size_t count, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (float& v : values) v = dist(engine);
  return values;
}

// ---------------------------------------------------------------- cuBLAS helpers

struct BlasHandle {
  cublasHandle_t handle = nullptr;
  BlasHandle() { REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS); }
  ~BlasHandle() { cublasDestroy(handle); }
};

// Element (row, col) of op(X) for a column-major X with leading dimension ld.
double op_at(const std::vector<float>& x, int ld, bool transposed, int row, int col) {
  return transposed ? x[col + static_cast<size_t>(row) * ld] : x[row + static_cast<size_t>(col) * ld];
}

// Checks C (m x n, leading dimension ldc) against alpha * op(A) op(B) + beta * C0 computed in double; entries between
// row m and ldc must keep the sentinel they were filled with.
void check_gemm(const std::vector<float>& c, const std::vector<float>& c0, const std::vector<float>& a,
                const std::vector<float>& b, bool ta, bool tb, int m, int n, int k, int lda, int ldb, int ldc,
                float alpha, float beta) {
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double sum = 0.0, magnitude = 0.0;
      for (int p = 0; p < k; ++p) {
        const double term = op_at(a, lda, ta, i, p) * op_at(b, ldb, tb, p, j);
        sum += term;
        magnitude += std::fabs(term);
      }
      const double old = c0[i + static_cast<size_t>(j) * ldc];
      double expected = alpha * sum;
      magnitude = std::fabs(alpha) * magnitude;
      if (beta != 0.0f) {
        expected += beta * old;
        magnitude += std::fabs(beta * old);
      }
      const float got = c[i + static_cast<size_t>(j) * ldc];
      INFO("i=", i, " j=", j, " ta=", ta, " tb=", tb, " alpha=", alpha, " beta=", beta);
      REQUIRE(std::isfinite(got));
      CHECK(std::fabs(got - expected) <= 1e-5 * magnitude + 1e-6);
    }
    for (int i = m; i < ldc; ++i) CHECK(c[i + static_cast<size_t>(j) * ldc] == kSentinel);
  }
}

// ---------------------------------------------------------------- cuDNN helpers

struct ConvCase {
  int N, C, H, W, K, R, S;
  int pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  int out_h() const { return (H + 2 * pad_h - ((R - 1) * dilation_h + 1)) / stride_h + 1; }
  int out_w() const { return (W + 2 * pad_w - ((S - 1) * dilation_w + 1)) / stride_w + 1; }
  size_t x_size() const { return static_cast<size_t>(N) * C * H * W; }
  size_t w_size() const { return static_cast<size_t>(K) * C * R * S; }
  size_t y_size() const { return static_cast<size_t>(N) * K * out_h() * out_w(); }
};

const ConvCase kConvCases[] = {
    {2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1},                          // "same" 3x3
    {2, 3, 9, 8, 5, 3, 3, 1, 1, 2, 2, 1, 1},                          // stride 2 with padding
    {1, 2, 9, 9, 3, 3, 3, 2, 2, 1, 1, 2, 2},                          // dilation 2
    {3, 4, 5, 5, 6, 1, 1, 0, 0, 1, 1, 1, 1},                          // 1x1
    {2, 3, 7, 5, 2, 3, 2, 1, 0, 2, 1, 1, 1},                          // non-square everything
    {1, 2, 6, 7, 3, 2, 3, 0, 1, 1, 2, 2, 1, CUDNN_CONVOLUTION},       // true convolution (flipped filter)
};

// The reference visits (output pixel, filter tap) pairs; for true convolution the filter is indexed flipped.
template <typename Visit>
void for_each_tap(const ConvCase& cs, Visit visit) {
  const int OH = cs.out_h(), OW = cs.out_w();
  for (int n = 0; n < cs.N; ++n)
    for (int k = 0; k < cs.K; ++k)
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow)
          for (int c = 0; c < cs.C; ++c)
            for (int r = 0; r < cs.R; ++r)
              for (int s = 0; s < cs.S; ++s) {
                const int h = oh * cs.stride_h - cs.pad_h + r * cs.dilation_h;
                const int w = ow * cs.stride_w - cs.pad_w + s * cs.dilation_w;
                if (h < 0 || h >= cs.H || w < 0 || w >= cs.W) continue;
                const int fr = cs.mode == CUDNN_CONVOLUTION ? cs.R - 1 - r : r;
                const int fs = cs.mode == CUDNN_CONVOLUTION ? cs.S - 1 - s : s;
                const size_t xi = ((static_cast<size_t>(n) * cs.C + c) * cs.H + h) * cs.W + w;
                const size_t wi = ((static_cast<size_t>(k) * cs.C + c) * cs.R + fr) * cs.S + fs;
                const size_t yi = ((static_cast<size_t>(n) * cs.K + k) * OH + oh) * OW + ow;
                visit(xi, wi, yi);
              }
}

struct Reference {
  std::vector<double> value, magnitude;
};

Reference reference_forward(const ConvCase& cs, const std::vector<float>& x, const std::vector<float>& w) {
  Reference ref{std::vector<double>(cs.y_size()), std::vector<double>(cs.y_size())};
  for_each_tap(cs, [&](size_t xi, size_t wi, size_t yi) {
    ref.value[yi] += double(x[xi]) * w[wi];
    ref.magnitude[yi] += std::fabs(double(x[xi]) * w[wi]);
  });
  return ref;
}

Reference reference_backward_data(const ConvCase& cs, const std::vector<float>& w, const std::vector<float>& dy) {
  Reference ref{std::vector<double>(cs.x_size()), std::vector<double>(cs.x_size())};
  for_each_tap(cs, [&](size_t xi, size_t wi, size_t yi) {
    ref.value[xi] += double(dy[yi]) * w[wi];
    ref.magnitude[xi] += std::fabs(double(dy[yi]) * w[wi]);
  });
  return ref;
}

Reference reference_backward_filter(const ConvCase& cs, const std::vector<float>& x, const std::vector<float>& dy) {
  Reference ref{std::vector<double>(cs.w_size()), std::vector<double>(cs.w_size())};
  for_each_tap(cs, [&](size_t xi, size_t wi, size_t yi) {
    ref.value[wi] += double(dy[yi]) * x[xi];
    ref.magnitude[wi] += std::fabs(double(dy[yi]) * x[xi]);
  });
  return ref;
}

// out must equal alpha * ref + beta * before (before not used when beta == 0).
void check_blend(const std::vector<float>& out, const Reference& ref, const std::vector<float>& before, float alpha,
                 float beta) {
  REQUIRE(out.size() == ref.value.size());
  for (size_t i = 0; i < out.size(); ++i) {
    double expected = alpha * ref.value[i];
    double magnitude = std::fabs(alpha) * ref.magnitude[i];
    if (beta != 0.0f) {
      expected += beta * double(before[i]);
      magnitude += std::fabs(beta * double(before[i]));
    }
    INFO("index ", i);
    REQUIRE(std::isfinite(out[i]));
    CHECK(std::fabs(out[i] - expected) <= 1e-5 * magnitude + 1e-6);
  }
}

struct DnnHandle {
  cudnnHandle_t handle = nullptr;
  DnnHandle() { REQUIRE(cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS); }
  ~DnnHandle() { cudnnDestroy(handle); }
};

// Descriptors for one ConvCase, packed NCHW / KCRS.
struct ConvDescriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit ConvDescriptors(const ConvCase& cs) {
    REQUIRE(cudnnCreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&y) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N, cs.C, cs.H, cs.W) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, cs.K, cs.C, cs.R, cs.S) ==
            CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolution2dDescriptor(conv, cs.pad_h, cs.pad_w, cs.stride_h, cs.stride_w, cs.dilation_h,
                                            cs.dilation_w, cs.mode, CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N, cs.K, cs.out_h(), cs.out_w()) ==
            CUDNN_STATUS_SUCCESS);
  }
  ~ConvDescriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
};

struct BlendCase {
  float alpha, beta;
};
const BlendCase kBlends[] = {{1.0f, 0.0f}, {0.5f, 0.25f}, {-2.0f, 1.0f}};

// Output buffer for one blend case: NaN when beta == 0 (must not be read), random otherwise.
std::vector<float> initial_output(size_t count, float beta, uint32_t seed) {
  return beta == 0.0f ? std::vector<float>(count, kNaN) : random_values(count, seed);
}

}  // namespace

// ================================================================ cuBLAS

TEST_CASE("sim libs: sgemm matches a double reference for every transpose pair with padded leading dims") {
  BlasHandle blas;
  const int m = 5, n = 7, k = 3;
  const BlendCase blends[] = {{1.0f, 0.0f}, {0.5f, -1.5f}, {2.0f, 1.0f}, {-1.0f, 0.0f}};
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const BlendCase& blend : blends) {
        // Stored A is m x k (k x m when transposed); leading dimensions are larger than the minimum.
        const int a_rows = ta ? k : m, a_cols = ta ? m : k;
        const int b_rows = tb ? n : k, b_cols = tb ? k : n;
        const int lda = a_rows + 2, ldb = b_rows + 3, ldc = m + 4;
        const auto a = random_values(static_cast<size_t>(lda) * a_cols, 11 + ta);
        const auto b = random_values(static_cast<size_t>(ldb) * b_cols, 21 + tb);
        std::vector<float> c0 = initial_output(static_cast<size_t>(ldc) * n, blend.beta, 31);
        for (int j = 0; j < n; ++j)
          for (int i = m; i < ldc; ++i) c0[i + static_cast<size_t>(j) * ldc] = kSentinel;
        std::vector<float> c = c0;
        const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        REQUIRE(cublasSgemm(blas.handle, opa, opb, m, n, k, &blend.alpha, a.data(), lda, b.data(), ldb, &blend.beta,
                            c.data(), ldc) == CUBLAS_STATUS_SUCCESS);
        check_gemm(c, c0, a, b, ta, tb, m, n, k, lda, ldb, ldc, blend.alpha, blend.beta);
      }
}

TEST_CASE("sim libs: sgemm CUBLAS_OP_C equals CUBLAS_OP_T for real data and the result is deterministic") {
  BlasHandle blas;
  const int m = 4, n = 3, k = 300;
  const auto a = random_values(static_cast<size_t>(k) * m, 5);
  const auto b = random_values(static_cast<size_t>(k) * n, 6);
  const float alpha = 1.0f, beta = 0.0f;
  std::vector<float> ct(m * n), cc(m * n), again(m * n);
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data(), k, b.data(), k, &beta,
                      ct.data(), m) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_C, CUBLAS_OP_N, m, n, k, &alpha, a.data(), k, b.data(), k, &beta,
                      cc.data(), m) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data(), k, b.data(), k, &beta,
                      again.data(), m) == CUBLAS_STATUS_SUCCESS);
  CHECK(std::memcmp(ct.data(), cc.data(), ct.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(ct.data(), again.data(), ct.size() * sizeof(float)) == 0);
}

TEST_CASE("sim libs: sgemm rejects invalid arguments with the documented status codes") {
  BlasHandle blas;
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64, 0.0f);
  const float one = 1.0f, zero = 0.0f;
  auto gemm = [&](cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                  int ldc, const float* alpha = nullptr, const float* beta = nullptr) {
    return cublasSgemm(h, ta, tb, m, n, k, alpha ? alpha : &one, a.data(), lda, b.data(), ldb, beta ? beta : &zero,
                       c.data(), ldc);
  };
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 2, 4, 2) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 2, 4, 2) == CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, -1, 3, 4, 2, 4, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, -3, 4, 2, 4, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, -4, 2, 4, 2) == CUBLAS_STATUS_INVALID_VALUE);
  // lda: at least m untransposed, at least k transposed.
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 1, 4, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, 2, 3, 4, 2, 4, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, 2, 3, 4, 4, 4, 2) == CUBLAS_STATUS_SUCCESS);
  // ldb: at least k untransposed, at least n transposed.
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 2, 3, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, 2, 3, 4, 2, 2, 2) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, 2, 3, 4, 2, 3, 2) == CUBLAS_STATUS_SUCCESS);
  // ldc: at least m; and never below 1, even for empty matrices.
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 2, 4, 1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 0, 0, 0, 1, 1, 0) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 0, 0, 0, 1, 1, 1) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(blas.handle, static_cast<cublasOperation_t>(7), CUBLAS_OP_N, 2, 3, 4, 4, 4, 2) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, nullptr, a.data(), 2, b.data(), 4, &zero,
                    c.data(), 2) == CUBLAS_STATUS_INVALID_VALUE);
  // A destroyed handle is not initialized any more.
  cublasHandle_t gone = nullptr;
  REQUIRE(cublasCreate(&gone) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasDestroy(gone) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(gone, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 4, 2, 4, 2) == CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cublasDestroy(gone) == CUBLAS_STATUS_NOT_INITIALIZED);
}

TEST_CASE("sim libs: sgemm with k zero or alpha zero only scales C and never reads A or B") {
  BlasHandle blas;
  const int m = 3, n = 2;
  std::vector<float> c = {1, 2, 3, 4, 5, 6};
  const float alpha = 1.0f, half = 0.5f;
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &alpha, nullptr, m, nullptr, 1, &half, c.data(),
                      m) == CUBLAS_STATUS_SUCCESS);
  CHECK(c == std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f});
  const float zero = 0.0f;
  std::vector<float> poisoned(6, kNaN);
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 4, &zero, nullptr, m, nullptr, 4, &zero,
                      poisoned.data(), m) == CUBLAS_STATUS_SUCCESS);
  CHECK(poisoned == std::vector<float>(6, 0.0f));
}

TEST_CASE("sim libs: sgemm strided batched equals one gemm per batch") {
  BlasHandle blas;
  const int m = 4, n = 3, k = 5, batches = 3;
  const int lda = k + 1, ldb = k, ldc = m + 1;  // A transposed (k x m stored), B untransposed (k x n)
  const long long stride_a = static_cast<long long>(lda) * m + 7, stride_b = static_cast<long long>(ldb) * n,
                  stride_c = static_cast<long long>(ldc) * n + 2;
  const auto a = random_values(static_cast<size_t>(stride_a) * batches, 41);
  const auto b = random_values(static_cast<size_t>(stride_b) * batches, 42);
  auto c0 = random_values(static_cast<size_t>(stride_c) * batches, 43);
  const float alpha = 0.75f, beta = -0.5f;
  std::vector<float> batched = c0, single = c0;
  REQUIRE(cublasSgemmStridedBatched(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data(), lda, stride_a,
                                    b.data(), ldb, stride_b, &beta, batched.data(), ldc, stride_c,
                                    batches) == CUBLAS_STATUS_SUCCESS);
  for (int i = 0; i < batches; ++i)
    REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data() + i * stride_a, lda,
                        b.data() + i * stride_b, ldb, &beta, single.data() + i * stride_c,
                        ldc) == CUBLAS_STATUS_SUCCESS);
  CHECK(batched == single);
  // Entries between the batches' C matrices are untouched.
  CHECK(batched[static_cast<size_t>(ldc) * n] == c0[static_cast<size_t>(ldc) * n]);
  CHECK(cublasSgemmStridedBatched(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data(), lda, stride_a,
                                  b.data(), ldb, stride_b, &beta, batched.data(), ldc, stride_c,
                                  -1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemmStridedBatched(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, a.data(), m, stride_a,
                                  b.data(), ldb, stride_b, &beta, batched.data(), ldc, stride_c,
                                  batches) == CUBLAS_STATUS_INVALID_VALUE);
}

TEST_CASE("sim libs: sgemm batched over pointer arrays equals one gemm per batch") {
  BlasHandle blas;
  const int m = 3, n = 4, k = 2, batches = 2;
  std::vector<std::vector<float>> a, b, c, expected;
  for (int i = 0; i < batches; ++i) {
    a.push_back(random_values(static_cast<size_t>(m) * k, 60 + i));  // m x k, lda m
    b.push_back(random_values(static_cast<size_t>(n) * k, 70 + i));  // stored n x k, used transposed, ldb n
    c.push_back(std::vector<float>(static_cast<size_t>(m) * n, kNaN));
    expected.push_back(c.back());
  }
  const float alpha = 1.5f, beta = 0.0f;
  std::vector<const float*> a_ptrs, b_ptrs;
  std::vector<float*> c_ptrs;
  for (int i = 0; i < batches; ++i) {
    a_ptrs.push_back(a[i].data());
    b_ptrs.push_back(b[i].data());
    c_ptrs.push_back(c[i].data());
    REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha, a[i].data(), m, b[i].data(), n,
                        &beta, expected[i].data(), m) == CUBLAS_STATUS_SUCCESS);
  }
  REQUIRE(cublasSgemmBatched(blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha, a_ptrs.data(), m, b_ptrs.data(),
                             n, &beta, c_ptrs.data(), m, batches) == CUBLAS_STATUS_SUCCESS);
  for (int i = 0; i < batches; ++i) CHECK(c[i] == expected[i]);
  CHECK(cublasSgemmBatched(blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha, a_ptrs.data(), m, b_ptrs.data(),
                           k, &beta, c_ptrs.data(), m, batches) == CUBLAS_STATUS_INVALID_VALUE);
}

TEST_CASE("sim libs: sgeam transposes and adds with its in-place rules") {
  BlasHandle blas;
  const int m = 2, n = 3;
  // A stored transposed: 3 x 2 with lda 4. B stored as is: 2 x 3 with ldb 2.
  const std::vector<float> a = {1, 2, 3, 0, 4, 5, 6, 0};
  const std::vector<float> b = {10, 20, 30, 40, 50, 60};
  std::vector<float> c(6, kNaN);
  const float one = 1.0f, two = 2.0f, zero = 0.0f;
  REQUIRE(cublasSgeam(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a.data(), 4, &two, b.data(), 2, c.data(),
                      m) == CUBLAS_STATUS_SUCCESS);
  // A^T = [[1,2,3],[4,5,6]] column-major {1,4,2,5,3,6}.
  CHECK(c == std::vector<float>{21, 44, 62, 85, 103, 126});
  // Pure transpose: beta == 0 means B is not read (null is fine).
  std::vector<float> t(6, kNaN);
  REQUIRE(cublasSgeam(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a.data(), 4, &zero, nullptr, m, t.data(),
                      m) == CUBLAS_STATUS_SUCCESS);
  CHECK(t == std::vector<float>{1, 4, 2, 5, 3, 6});
  // In place is allowed only untransposed with matching leading dimensions.
  std::vector<float> inplace = b;
  CHECK(cublasSgeam(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, &two, inplace.data(), 2, &one, b.data(), 2,
                    inplace.data(), 2) == CUBLAS_STATUS_SUCCESS);
  CHECK(inplace == std::vector<float>{30, 60, 90, 120, 150, 180});
  std::vector<float> square(9, 1.0f);
  CHECK(cublasSgeam(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, 3, 3, &one, square.data(), 3, &zero, nullptr, 3,
                    square.data(), 3) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgeam(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 3, 3, &one, square.data(), 4, &zero, nullptr, 3,
                    square.data(), 3) == CUBLAS_STATUS_INVALID_VALUE);
  // Leading dimensions: op(A) is m x n, so a transposed A needs lda >= n.
  CHECK(cublasSgeam(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a.data(), 2, &two, b.data(), 2, c.data(),
                    m) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgeam(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a.data(), 4, &two, b.data(), 1, c.data(),
                    m) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgeam(nullptr, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a.data(), 4, &two, b.data(), 2, c.data(), m) ==
        CUBLAS_STATUS_NOT_INITIALIZED);
}

TEST_CASE("sim libs: saxpy sscal sdot sgemv and handle state") {
  BlasHandle blas;
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  std::vector<float> y = {10, 20, 30};
  const float two = 2.0f, zero = 0.0f;
  REQUIRE(cublasSaxpy(blas.handle, 3, &two, x.data(), 2, y.data(), 1) == CUBLAS_STATUS_SUCCESS);
  CHECK(y == std::vector<float>{12, 26, 40});
  // Negative increments walk the vector from its far end (reference BLAS).
  std::vector<float> y2 = {0, 0, 0};
  REQUIRE(cublasSaxpy(blas.handle, 3, &two, x.data(), 1, y2.data(), -1) == CUBLAS_STATUS_SUCCESS);
  CHECK(y2 == std::vector<float>{6, 4, 2});
  REQUIRE(cublasSscal(blas.handle, 3, &two, x.data(), 2) == CUBLAS_STATUS_SUCCESS);
  CHECK(x == std::vector<float>{2, 2, 6, 4, 10, 6});
  float dot = -1.0f;
  REQUIRE(cublasSdot(blas.handle, 3, x.data(), 2, y.data(), 1, &dot) == CUBLAS_STATUS_SUCCESS);
  CHECK(dot == doctest::Approx(2 * 12 + 6 * 26 + 10 * 40));
  REQUIRE(cublasSdot(blas.handle, 0, x.data(), 1, y.data(), 1, &dot) == CUBLAS_STATUS_SUCCESS);
  CHECK(dot == 0.0f);
  CHECK(cublasSaxpy(blas.handle, 3, nullptr, x.data(), 1, y.data(), 1) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSdot(blas.handle, 3, x.data(), 1, y.data(), 1, nullptr) == CUBLAS_STATUS_INVALID_VALUE);

  // gemv: A = [[1,3],[2,4]] column-major with lda 3; y = A^T x and A x.
  const std::vector<float> a = {1, 2, 0, 3, 4, 0};
  const std::vector<float> v = {1, -1};
  std::vector<float> out(2, kNaN);
  const float one = 1.0f;
  REQUIRE(cublasSgemv(blas.handle, CUBLAS_OP_N, 2, 2, &one, a.data(), 3, v.data(), 1, &zero, out.data(), 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(out == std::vector<float>{-2, -2});
  REQUIRE(cublasSgemv(blas.handle, CUBLAS_OP_T, 2, 2, &one, a.data(), 3, v.data(), 1, &zero, out.data(), 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(out == std::vector<float>{-1, -1});
  CHECK(cublasSgemv(blas.handle, CUBLAS_OP_N, 2, 2, &one, a.data(), 1, v.data(), 1, &zero, out.data(), 1) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSgemv(blas.handle, CUBLAS_OP_N, 2, 2, &one, a.data(), 3, v.data(), 0, &zero, out.data(), 1) ==
        CUBLAS_STATUS_INVALID_VALUE);

  cudaStream_t stream = nullptr;
  int marker = 0;
  const auto fake_stream = reinterpret_cast<cudaStream_t>(&marker);
  REQUIRE(cublasSetStream(blas.handle, fake_stream) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasGetStream(blas.handle, &stream) == CUBLAS_STATUS_SUCCESS);
  CHECK(stream == fake_stream);
  CHECK(cublasSetStream(nullptr, fake_stream) == CUBLAS_STATUS_NOT_INITIALIZED);

  cublasMath_t mode = CUBLAS_PEDANTIC_MATH;
  REQUIRE(cublasGetMathMode(blas.handle, &mode) == CUBLAS_STATUS_SUCCESS);
  CHECK(mode == CUBLAS_DEFAULT_MATH);
  REQUIRE(cublasSetMathMode(blas.handle, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasGetMathMode(blas.handle, &mode) == CUBLAS_STATUS_SUCCESS);
  CHECK(mode == CUBLAS_TF32_TENSOR_OP_MATH);
  CHECK(cublasSetMathMode(blas.handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                                 CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) ==
        CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetMathMode(blas.handle, static_cast<cublasMath_t>(5)) == CUBLAS_STATUS_INVALID_VALUE);

  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_DEVICE;
  REQUIRE(cublasGetPointerMode(blas.handle, &pointer_mode) == CUBLAS_STATUS_SUCCESS);
  CHECK(pointer_mode == CUBLAS_POINTER_MODE_HOST);
  CHECK(cublasSetPointerMode(blas.handle, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS);

  CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
  CHECK(std::string(cublasGetStatusString(CUBLAS_STATUS_NOT_SUPPORTED)) ==
        "the functionality requested is not supported");
  CHECK(CUBLAS_STATUS_NOT_SUPPORTED == 15);
  CHECK(CUBLAS_STATUS_INVALID_VALUE == 7);
}

TEST_CASE("sim libs: TF32 math mode rounds gemm inputs to a 10-bit mantissa") {
  BlasHandle blas;
  // 1 + 2^-12 is exact in FP32 but rounds to 1 in TF32.
  const float a = 1.0f + 1.0f / 4096.0f, b = 1.0f, one = 1.0f, zero = 0.0f;
  float c = 0.0f;
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &a, 1, &b, 1, &zero, &c, 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c == a);
  REQUIRE(cublasSetMathMode(blas.handle, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &a, 1, &b, 1, &zero, &c, 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c == 1.0f);
  // 1 + 3 * 2^-12 rounds up to 1 + 2^-10.
  const float up = 1.0f + 3.0f / 4096.0f;
  REQUIRE(cublasSgemm(blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, &up, 1, &b, 1, &zero, &c, 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c == 1.0f + 1.0f / 1024.0f);
}

// ================================================================ cuDNN

TEST_CASE("sim libs: conv output-dim query and descriptor round trips") {
  for (const ConvCase& cs : kConvCases) {
    ConvDescriptors d(cs);
    int n = 0, c = 0, h = 0, w = 0;
    REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &h, &w) == CUDNN_STATUS_SUCCESS);
    CHECK(n == cs.N);
    CHECK(c == cs.K);
    CHECK(h == cs.out_h());
    CHECK(w == cs.out_w());
  }
  ConvDescriptors d(kConvCases[1]);
  cudnnDataType_t type = CUDNN_DATA_HALF;
  int n, c, h, w, sn, sc, sh, sw;
  REQUIRE(cudnnGetTensor4dDescriptor(d.x, &type, &n, &c, &h, &w, &sn, &sc, &sh, &sw) == CUDNN_STATUS_SUCCESS);
  CHECK(type == CUDNN_DATA_FLOAT);
  CHECK(sn == 3 * 9 * 8);
  CHECK(sc == 9 * 8);
  CHECK(sh == 8);
  CHECK(sw == 1);
  int pad_h, pad_w, u, v, dh, dw;
  cudnnConvolutionMode_t mode;
  REQUIRE(cudnnGetConvolution2dDescriptor(d.conv, &pad_h, &pad_w, &u, &v, &dh, &dw, &mode, &type) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(u == 2);
  CHECK(v == 2);
  CHECK(mode == CUDNN_CROSS_CORRELATION);
  // A 3x3 filter with dilation 5 spans 11 pixels: does not fit a 9x8 input padded by 1.
  REQUIRE(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 5, 5, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &h, &w) == CUDNN_STATUS_BAD_PARAM);
}

TEST_CASE("sim libs: conv forward matches a double reference for every algorithm and blend") {
  DnnHandle dnn;
  for (const ConvCase& cs : kConvCases) {
    ConvDescriptors d(cs);
    const auto x = random_values(cs.x_size(), 101);
    const auto w = random_values(cs.w_size(), 102);
    const Reference ref = reference_forward(cs, x, w);
    for (cudnnConvolutionFwdAlgo_t algo : {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                           CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                           CUDNN_CONVOLUTION_FWD_ALGO_GEMM}) {
      size_t bytes = 1;
      REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(dnn.handle, d.x, d.w, d.conv, d.y, algo, &bytes) ==
              CUDNN_STATUS_SUCCESS);
      if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM) CHECK(bytes == 0);
      if (algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM)
        CHECK(bytes == sizeof(float) * static_cast<size_t>(cs.C) * cs.R * cs.S * cs.out_h() * cs.out_w());
      std::vector<unsigned char> workspace(bytes);
      for (const BlendCase& blend : kBlends) {
        INFO("case N=", cs.N, " C=", cs.C, " H=", cs.H, " W=", cs.W, " algo=", int(algo), " alpha=", blend.alpha);
        const auto before = initial_output(cs.y_size(), blend.beta, 103);
        auto y = before;
        REQUIRE(cudnnConvolutionForward(dnn.handle, &blend.alpha, d.x, x.data(), d.w, w.data(), d.conv, algo,
                                        bytes ? workspace.data() : nullptr, bytes, &blend.beta, d.y,
                                        y.data()) == CUDNN_STATUS_SUCCESS);
        check_blend(y, ref, before, blend.alpha, blend.beta);
      }
    }
  }
}

TEST_CASE("sim libs: conv backward data matches a double reference for every algorithm and blend") {
  DnnHandle dnn;
  for (const ConvCase& cs : kConvCases) {
    ConvDescriptors d(cs);
    const auto w = random_values(cs.w_size(), 201);
    const auto dy = random_values(cs.y_size(), 202);
    const Reference ref = reference_backward_data(cs, w, dy);
    for (cudnnConvolutionBwdDataAlgo_t algo : {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1}) {
      size_t bytes = 1;
      REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(dnn.handle, d.w, d.y, d.conv, d.x, algo, &bytes) ==
              CUDNN_STATUS_SUCCESS);
      CHECK((algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) == (bytes == 0));
      std::vector<unsigned char> workspace(bytes);
      for (const BlendCase& blend : kBlends) {
        INFO("case N=", cs.N, " C=", cs.C, " H=", cs.H, " W=", cs.W, " algo=", int(algo), " alpha=", blend.alpha);
        const auto before = initial_output(cs.x_size(), blend.beta, 203);
        auto dx = before;
        REQUIRE(cudnnConvolutionBackwardData(dnn.handle, &blend.alpha, d.w, w.data(), d.y, dy.data(), d.conv, algo,
                                             bytes ? workspace.data() : nullptr, bytes, &blend.beta, d.x,
                                             dx.data()) == CUDNN_STATUS_SUCCESS);
        check_blend(dx, ref, before, blend.alpha, blend.beta);
      }
    }
  }
}

TEST_CASE("sim libs: conv backward filter and bias match a double reference") {
  DnnHandle dnn;
  for (const ConvCase& cs : kConvCases) {
    ConvDescriptors d(cs);
    const auto x = random_values(cs.x_size(), 301);
    const auto dy = random_values(cs.y_size(), 302);
    const Reference ref = reference_backward_filter(cs, x, dy);
    for (cudnnConvolutionBwdFilterAlgo_t algo :
         {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1}) {
      size_t bytes = 1;
      REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn.handle, d.x, d.y, d.conv, d.w, algo, &bytes) ==
              CUDNN_STATUS_SUCCESS);
      CHECK((algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) == (bytes == 0));
      std::vector<unsigned char> workspace(bytes);
      for (const BlendCase& blend : kBlends) {
        INFO("case N=", cs.N, " C=", cs.C, " H=", cs.H, " W=", cs.W, " algo=", int(algo), " alpha=", blend.alpha);
        const auto before = initial_output(cs.w_size(), blend.beta, 303);
        auto dw = before;
        REQUIRE(cudnnConvolutionBackwardFilter(dnn.handle, &blend.alpha, d.x, x.data(), d.y, dy.data(), d.conv, algo,
                                               bytes ? workspace.data() : nullptr, bytes, &blend.beta, d.w,
                                               dw.data()) == CUDNN_STATUS_SUCCESS);
        check_blend(dw, ref, before, blend.alpha, blend.beta);
      }
    }

    // Bias gradient: per output channel, the sum of dy over batch and pixels.
    cudnnTensorDescriptor_t bias = nullptr;
    REQUIRE(cudnnCreateTensorDescriptor(&bias) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, cs.K, 1, 1) ==
            CUDNN_STATUS_SUCCESS);
    const size_t plane = static_cast<size_t>(cs.out_h()) * cs.out_w();
    for (const BlendCase& blend : kBlends) {
      const auto before = initial_output(cs.K, blend.beta, 304);
      auto db = before;
      REQUIRE(cudnnConvolutionBackwardBias(dnn.handle, &blend.alpha, d.y, dy.data(), &blend.beta, bias, db.data()) ==
              CUDNN_STATUS_SUCCESS);
      Reference bias_ref{std::vector<double>(cs.K), std::vector<double>(cs.K)};
      for (int n = 0; n < cs.N; ++n)
        for (int k = 0; k < cs.K; ++k)
          for (size_t p = 0; p < plane; ++p) {
            const float g = dy[(static_cast<size_t>(n) * cs.K + k) * plane + p];
            bias_ref.value[k] += g;
            bias_ref.magnitude[k] += std::fabs(g);
          }
      check_blend(db, bias_ref, before, blend.alpha, blend.beta);
    }
    // The bias descriptor must be 1 x K x 1 x 1.
    REQUIRE(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, cs.K + 1, 1, 1) ==
            CUDNN_STATUS_SUCCESS);
    std::vector<float> db(cs.K + 1);
    const float one = 1.0f, zero = 0.0f;
    CHECK(cudnnConvolutionBackwardBias(dnn.handle, &one, d.y, dy.data(), &zero, bias, db.data()) ==
          CUDNN_STATUS_BAD_PARAM);
    cudnnDestroyTensorDescriptor(bias);
  }
}

TEST_CASE("sim libs: conv honours tensor strides from cudnnSetTensor4dDescriptorEx") {
  DnnHandle dnn;
  const ConvCase cs = kConvCases[1];
  ConvDescriptors d(cs);
  // Each row of x padded to W + 3 floats, each image given 5 spare floats.
  const int row = cs.W + 3, image_stride = cs.C * cs.H * row + 5;
  REQUIRE(cudnnSetTensor4dDescriptorEx(d.x, CUDNN_DATA_FLOAT, cs.N, cs.C, cs.H, cs.W, image_stride, cs.H * row, row,
                                       1) == CUDNN_STATUS_SUCCESS);
  const auto packed = random_values(cs.x_size(), 401);
  std::vector<float> strided(static_cast<size_t>(image_stride) * cs.N, kNaN);
  for (int n = 0; n < cs.N; ++n)
    for (int c = 0; c < cs.C; ++c)
      for (int h = 0; h < cs.H; ++h)
        for (int w = 0; w < cs.W; ++w)
          strided[static_cast<size_t>(n) * image_stride + (static_cast<size_t>(c) * cs.H + h) * row + w] =
              packed[((static_cast<size_t>(n) * cs.C + c) * cs.H + h) * cs.W + w];
  const auto w = random_values(cs.w_size(), 402);
  std::vector<float> y(cs.y_size());
  const float one = 1.0f, zero = 0.0f;
  REQUIRE(cudnnConvolutionForward(dnn.handle, &one, d.x, strided.data(), d.w, w.data(), d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                  y.data()) == CUDNN_STATUS_SUCCESS);
  check_blend(y, reference_forward(cs, packed, w), y, 1.0f, 0.0f);
  size_t bytes = 0;
  REQUIRE(cudnnGetTensorSizeInBytes(d.x, &bytes) == CUDNN_STATUS_SUCCESS);
  CHECK(bytes == sizeof(float) * (static_cast<size_t>(image_stride) * (cs.N - 1) + (cs.C - 1) * cs.H * row +
                                  (cs.H - 1) * row + cs.W));
}

TEST_CASE("sim libs: conv rejects mismatched or unset descriptors with BAD_PARAM") {
  DnnHandle dnn;
  const ConvCase cs = kConvCases[0];
  ConvDescriptors d(cs);
  const auto x = random_values(cs.x_size() * 2, 1);
  const auto w = random_values(cs.w_size() * 2, 2);
  std::vector<float> y(cs.y_size() * 2);
  const float one = 1.0f, zero = 0.0f;
  auto forward = [&](cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd, cudnnTensorDescriptor_t yd) {
    return cudnnConvolutionForward(dnn.handle, &one, xd, x.data(), wd, w.data(), d.conv,
                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, yd, y.data());
  };
  REQUIRE(forward(d.x, d.w, d.y) == CUDNN_STATUS_SUCCESS);

  cudnnTensorDescriptor_t other = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&other) == CUDNN_STATUS_SUCCESS);
  CHECK(forward(d.x, d.w, other) == CUDNN_STATUS_BAD_PARAM);  // never set
  // Input channels differ from the filter's C.
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N, cs.C + 1, cs.H, cs.W) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(forward(other, d.w, d.y) == CUDNN_STATUS_BAD_PARAM);
  int n, c, h, wd;
  CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, other, d.w, &n, &c, &h, &wd) == CUDNN_STATUS_BAD_PARAM);
  // Output with the wrong channel count, spatial size or batch.
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N, cs.K + 1, cs.out_h(),
                                     cs.out_w()) == CUDNN_STATUS_SUCCESS);
  CHECK(forward(d.x, d.w, other) == CUDNN_STATUS_BAD_PARAM);
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N, cs.K, cs.out_h() - 1,
                                     cs.out_w()) == CUDNN_STATUS_SUCCESS);
  CHECK(forward(d.x, d.w, other) == CUDNN_STATUS_BAD_PARAM);
  REQUIRE(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cs.N + 1, cs.K, cs.out_h(),
                                     cs.out_w()) == CUDNN_STATUS_SUCCESS);
  CHECK(forward(d.x, d.w, other) == CUDNN_STATUS_BAD_PARAM);
  // The same mismatch is caught by the backward passes and the workspace queries.
  size_t bytes = 0;
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(dnn.handle, d.x, d.w, d.conv, other,
                                                CUDNN_CONVOLUTION_FWD_ALGO_GEMM, &bytes) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnConvolutionBackwardData(dnn.handle, &one, d.w, w.data(), other, y.data(), d.conv,
                                     CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr, 0, &zero, d.x,
                                     const_cast<float*>(x.data())) == CUDNN_STATUS_BAD_PARAM);
  std::vector<float> dw(cs.w_size());
  CHECK(cudnnConvolutionBackwardFilter(dnn.handle, &one, d.x, x.data(), other, y.data(), d.conv,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, nullptr, 0, &zero, d.w,
                                       dw.data()) == CUDNN_STATUS_BAD_PARAM);
  // Null data or scaling pointers, null or destroyed handle.
  CHECK(cudnnConvolutionForward(dnn.handle, nullptr, d.x, x.data(), d.w, w.data(), d.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                y.data()) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnConvolutionForward(nullptr, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                y.data()) == CUDNN_STATUS_BAD_PARAM);
  cudnnHandle_t gone = nullptr;
  REQUIRE(cudnnCreate(&gone) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnDestroy(gone) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetStream(gone, nullptr) == CUDNN_STATUS_BAD_PARAM);
  // Invalid descriptor values.
  CHECK(cudnnSetTensor4dDescriptor(other, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 1, 1, 1) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnSetConvolution2dDescriptor(d.conv, -1, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
        CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
        CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 1, 1, 0, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
        CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnSetConvolutionGroupCount(d.conv, 0) == CUDNN_STATUS_BAD_PARAM);
  cudnnDestroyTensorDescriptor(other);
}

TEST_CASE("sim libs: conv reports unsupported formats types groups and algorithms") {
  DnnHandle dnn;
  const ConvCase cs = kConvCases[0];
  ConvDescriptors d(cs);
  cudnnTensorDescriptor_t t = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&t) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 2, 3, 4) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, 1, 2, 3, 4) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NCHW, static_cast<cudnnDataType_t>(99), 1, 2, 3, 4) ==
        CUDNN_STATUS_BAD_PARAM);
  cudnnDestroyTensorDescriptor(t);
  CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 1, 2, 3, 3) ==
        CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetConvolutionGroupCount(d.conv, 2) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetConvolutionGroupCount(d.conv, 1) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_DOUBLE) ==
        CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnSetConvolutionMathType(d.conv, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS);
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  REQUIRE(cudnnGetConvolutionMathType(d.conv, &math) == CUDNN_STATUS_SUCCESS);
  CHECK(math == CUDNN_TENSOR_OP_MATH);

  const auto x = random_values(cs.x_size(), 1);
  const auto w = random_values(cs.w_size(), 2);
  std::vector<float> y(cs.y_size());
  const float one = 1.0f, zero = 0.0f;
  size_t bytes = 0;
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(dnn.handle, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_FFT,
                                                &bytes) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnConvolutionForward(dnn.handle, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, nullptr, 0, &zero, d.y,
                                y.data()) == CUDNN_STATUS_NOT_SUPPORTED);
  CHECK(cudnnConvolutionForward(dnn.handle, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                static_cast<cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT), nullptr, 0,
                                &zero, d.y, y.data()) == CUDNN_STATUS_BAD_PARAM);
}

TEST_CASE("sim libs: conv with a workspace smaller than queried fails with BAD_PARAM") {
  DnnHandle dnn;
  const ConvCase cs = kConvCases[1];
  ConvDescriptors d(cs);
  const auto x = random_values(cs.x_size(), 1);
  const auto w = random_values(cs.w_size(), 2);
  auto y = random_values(cs.y_size(), 3);
  const auto y_before = y;
  std::vector<float> dx(cs.x_size()), dw(cs.w_size());
  const float one = 1.0f, zero = 0.0f;

  size_t fwd = 0, data = 0, filter = 0;
  REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(dnn.handle, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
                                                  &fwd) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(dnn.handle, d.w, d.y, d.conv, d.x,
                                                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                                       &data) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn.handle, d.x, d.y, d.conv, d.w,
                                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                                         &filter) == CUDNN_STATUS_SUCCESS);
  REQUIRE(fwd > 0);
  REQUIRE(data > 0);
  REQUIRE(filter > 0);
  std::vector<unsigned char> workspace(std::max({fwd, data, filter}));

  CHECK(cudnnConvolutionForward(dnn.handle, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_GEMM, workspace.data(), fwd - 1, &zero, d.y,
                                y.data()) == CUDNN_STATUS_BAD_PARAM);
  CHECK(y == y_before);  // nothing written on failure
  CHECK(cudnnConvolutionForward(dnn.handle, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                CUDNN_CONVOLUTION_FWD_ALGO_GEMM, nullptr, fwd, &zero, d.y,
                                y.data()) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnConvolutionBackwardData(dnn.handle, &one, d.w, w.data(), d.y, y.data(), d.conv,
                                     CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, workspace.data(), data - 1, &zero, d.x,
                                     dx.data()) == CUDNN_STATUS_BAD_PARAM);
  CHECK(cudnnConvolutionBackwardFilter(dnn.handle, &one, d.x, x.data(), d.y, y.data(), d.conv,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, workspace.data(), filter - 1, &zero, d.w,
                                       dw.data()) == CUDNN_STATUS_BAD_PARAM);
  // A workspace pointer that is not 8-byte aligned (a bad sub-allocation) is refused too.
  std::vector<int64_t> aligned(filter / sizeof(int64_t) + 2);
  CHECK(cudnnConvolutionBackwardFilter(dnn.handle, &one, d.x, x.data(), d.y, y.data(), d.conv,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                       reinterpret_cast<unsigned char*>(aligned.data()) + 4, filter, &zero, d.w,
                                       dw.data()) == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER);
  // Exactly the queried size is enough.
  CHECK(cudnnConvolutionBackwardFilter(dnn.handle, &one, d.x, x.data(), d.y, y.data(), d.conv,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, workspace.data(), filter, &zero, d.w,
                                       dw.data()) == CUDNN_STATUS_SUCCESS);
}

TEST_CASE("sim libs: conv algorithm queries list runnable algorithms with their workspace") {
  DnnHandle dnn;
  const ConvCase cs = kConvCases[4];
  ConvDescriptors d(cs);
  int count = 0;
  REQUIRE(cudnnGetConvolutionForwardAlgorithmMaxCount(dnn.handle, &count) == CUDNN_STATUS_SUCCESS);
  CHECK(count == CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(count);
  int returned = 0;
  REQUIRE(cudnnGetConvolutionForwardAlgorithm_v7(dnn.handle, d.x, d.w, d.conv, d.y, count, &returned, fwd.data()) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(returned == count);
  int runnable = 0;
  for (int i = 0; i < returned; ++i) {
    if (fwd[i].status != CUDNN_STATUS_SUCCESS) {
      CHECK(fwd[i].status == CUDNN_STATUS_NOT_SUPPORTED);
      continue;
    }
    ++runnable;
    size_t bytes = 0;
    REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(dnn.handle, d.x, d.w, d.conv, d.y, fwd[i].algo, &bytes) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(fwd[i].memory == bytes);
  }
  CHECK(runnable == 3);
  CHECK(fwd[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolutionForwardAlgorithm_v7(dnn.handle, d.x, d.w, d.conv, d.y, 0, &returned, fwd.data()) ==
        CUDNN_STATUS_BAD_PARAM);

  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(2);
  REQUIRE(cudnnGetConvolutionBackwardDataAlgorithm_v7(dnn.handle, d.w, d.y, d.conv, d.x, 2, &returned,
                                                      data.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(returned == 2);
  CHECK(data[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(data[0].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
  CHECK(data[0].determinism == CUDNN_DETERMINISTIC);
  CHECK(data[1].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
  CHECK(data[1].determinism == CUDNN_NON_DETERMINISTIC);

  REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(dnn.handle, &count) == CUDNN_STATUS_SUCCESS);
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(count);
  REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(dnn.handle, d.x, d.y, d.conv, d.w, count, &returned,
                                                        filter.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(returned == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  CHECK(filter[0].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
  CHECK(filter[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(filter[0].memory > 0);

  // Find*Ex runs what fits the given workspace: with none, only the workspace-free algorithm succeeds.
  const auto x = random_values(cs.x_size(), 7);
  const auto w = random_values(cs.w_size(), 8);
  std::vector<float> y(cs.y_size());
  std::vector<cudnnConvolutionFwdAlgoPerf_t> found(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  REQUIRE(cudnnFindConvolutionForwardAlgorithmEx(dnn.handle, d.x, x.data(), d.w, w.data(), d.conv, d.y, y.data(),
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, found.data(), nullptr,
                                                 0) == CUDNN_STATUS_SUCCESS);
  REQUIRE(returned == CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  CHECK(found[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
  CHECK(found[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(found[0].time >= 0.0f);
  CHECK(found[1].status == CUDNN_STATUS_ALLOC_FAILED);
  check_blend(y, reference_forward(cs, x, w), y, 1.0f, 0.0f);

  // The non-Ex Find functions allocate their own buffers and so can run every implemented algorithm.
  REQUIRE(cudnnFindConvolutionForwardAlgorithm(dnn.handle, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                               &returned, found.data()) == CUDNN_STATUS_SUCCESS);
  int succeeded = 0;
  for (int i = 0; i < returned; ++i) succeeded += found[i].status == CUDNN_STATUS_SUCCESS;
  CHECK(succeeded == 3);
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data_found(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  REQUIRE(cudnnFindConvolutionBackwardDataAlgorithm(dnn.handle, d.w, d.y, d.conv, d.x,
                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned,
                                                    data_found.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(data_found[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(data_found[1].status == CUDNN_STATUS_SUCCESS);
  CHECK(data_found[2].status == CUDNN_STATUS_NOT_SUPPORTED);
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter_found(1);
  REQUIRE(cudnnFindConvolutionBackwardFilterAlgorithm(dnn.handle, d.x, d.y, d.conv, d.w, 1, &returned,
                                                      filter_found.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(returned == 1);
  CHECK(filter_found[0].status == CUDNN_STATUS_SUCCESS);
  CHECK(filter_found[0].algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
}

TEST_CASE("sim libs: cudnnAddTensor broadcasts a bias and SetTensor ScaleTensor fill and scale") {
  DnnHandle dnn;
  cudnnTensorDescriptor_t bias = nullptr, out = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&bias) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateTensorDescriptor(&out) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 1, 1) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnSetTensor4dDescriptor(out, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 2, 2) == CUDNN_STATUS_SUCCESS);
  const std::vector<float> b = {1, 2, 3};
  std::vector<float> c(24);
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>(i);
  const float one = 1.0f, half = 0.5f, zero = 0.0f, two = 2.0f;
  REQUIRE(cudnnAddTensor(dnn.handle, &two, bias, b.data(), &half, out, c.data()) == CUDNN_STATUS_SUCCESS);
  for (int n = 0; n < 2; ++n)
    for (int ch = 0; ch < 3; ++ch)
      for (int p = 0; p < 4; ++p) {
        const size_t i = (static_cast<size_t>(n) * 3 + ch) * 4 + p;
        CHECK(c[i] == 2.0f * b[ch] + 0.5f * static_cast<float>(i));
      }
  std::vector<float> poisoned(24, kNaN);
  REQUIRE(cudnnAddTensor(dnn.handle, &one, bias, b.data(), &zero, out, poisoned.data()) == CUDNN_STATUS_SUCCESS);
  CHECK(poisoned[5] == 2.0f);
  // A dimension that neither matches nor is 1.
  REQUIRE(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 1, 1) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnAddTensor(dnn.handle, &one, bias, b.data(), &zero, out, c.data()) == CUDNN_STATUS_BAD_PARAM);

  const float value = 3.5f;
  REQUIRE(cudnnSetTensor(dnn.handle, out, c.data(), &value) == CUDNN_STATUS_SUCCESS);
  CHECK(c == std::vector<float>(24, 3.5f));
  REQUIRE(cudnnScaleTensor(dnn.handle, out, c.data(), &two) == CUDNN_STATUS_SUCCESS);
  CHECK(c == std::vector<float>(24, 7.0f));
  cudnnDestroyTensorDescriptor(bias);
  cudnnDestroyTensorDescriptor(out);
}

TEST_CASE("sim libs: cudnn status strings and handle stream") {
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)) == "CUDNN_STATUS_BAD_PARAM");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED)) == "CUDNN_STATUS_NOT_SUPPORTED");
  CHECK(CUDNN_STATUS_BAD_PARAM == 2000);
  CHECK(CUDNN_STATUS_NOT_SUPPORTED == 3000);
  CHECK(cudnnGetVersion() == static_cast<size_t>(CUDNN_VERSION));
  DnnHandle dnn;
  int marker = 0;
  const auto fake_stream = reinterpret_cast<cudaStream_t>(&marker);
  REQUIRE(cudnnSetStream(dnn.handle, fake_stream) == CUDNN_STATUS_SUCCESS);
  cudaStream_t stream = nullptr;
  REQUIRE(cudnnGetStream(dnn.handle, &stream) == CUDNN_STATUS_SUCCESS);
  CHECK(stream == fake_stream);
  CHECK(cudnnCreate(nullptr) == CUDNN_STATUS_BAD_PARAM);
}

// ================================================================ CUB

TEST_CASE("sim libs: cub device reductions follow the two-phase temp storage protocol") {
  const int n = 1000;  // several tiles
  std::vector<float> in = random_values(n, 501);
  in[617] = 5.0f;  // the maximum, also written at a later index: the first occurrence wins
  in[900] = 5.0f;
  in[42] = -7.0f;

  size_t bytes = 0;
  float sum = kSentinel;
  REQUIRE(cub::DeviceReduce::Sum(nullptr, bytes, in.data(), &sum, n) == cudaSuccess);
  CHECK(bytes > 0);
  CHECK(sum == kSentinel);  // the size query does no work
  std::vector<unsigned char> temp(bytes);
  size_t too_small = bytes - 1;
  CHECK(cub::DeviceReduce::Sum(temp.data(), too_small, in.data(), &sum, n) == cudaErrorInvalidValue);
  CHECK(sum == kSentinel);
  REQUIRE(cub::DeviceReduce::Sum(temp.data(), bytes, in.data(), &sum, n, cudaStream_t{}) == cudaSuccess);
  double expected = 0.0, magnitude = 0.0;
  for (float v : in) {
    expected += v;
    magnitude += std::fabs(v);
  }
  CHECK(std::fabs(sum - expected) <= 1e-6 * magnitude);
  float again = 0.0f;
  REQUIRE(cub::DeviceReduce::Sum(temp.data(), bytes, in.data(), &again, n) == cudaSuccess);
  CHECK(std::memcmp(&sum, &again, sizeof(float)) == 0);

  float max = 0.0f, min = 0.0f;
  size_t max_bytes = 0;
  REQUIRE(cub::DeviceReduce::Max(nullptr, max_bytes, in.data(), &max, n) == cudaSuccess);
  std::vector<unsigned char> max_temp(max_bytes);
  REQUIRE(cub::DeviceReduce::Max(max_temp.data(), max_bytes, in.data(), &max, n) == cudaSuccess);
  REQUIRE(cub::DeviceReduce::Min(max_temp.data(), max_bytes, in.data(), &min, n) == cudaSuccess);
  CHECK(max == 5.0f);
  CHECK(min == -7.0f);

  cub::KeyValuePair<int, float> arg;
  size_t arg_bytes = 0;
  REQUIRE(cub::DeviceReduce::ArgMax(nullptr, arg_bytes, in.data(), &arg, n) == cudaSuccess);
  std::vector<unsigned char> arg_temp(arg_bytes);
  REQUIRE(cub::DeviceReduce::ArgMax(arg_temp.data(), arg_bytes, in.data(), &arg, n) == cudaSuccess);
  CHECK(arg.key == 617);
  CHECK(arg.value == 5.0f);
  REQUIRE(cub::DeviceReduce::ArgMin(arg_temp.data(), arg_bytes, in.data(), &arg, n) == cudaSuccess);
  CHECK(arg.key == 42);
  CHECK(arg.value == -7.0f);
  float extremum = 0.0f;
  int64_t index = -1;
  size_t split_bytes = 0;
  REQUIRE(cub::DeviceReduce::ArgMax(nullptr, split_bytes, in.data(), &extremum, &index, int64_t{n}) == cudaSuccess);
  std::vector<unsigned char> split_temp(split_bytes);
  REQUIRE(cub::DeviceReduce::ArgMax(split_temp.data(), split_bytes, in.data(), &extremum, &index, int64_t{n}) ==
          cudaSuccess);
  CHECK(index == 617);
  CHECK(extremum == 5.0f);

  // Empty inputs give CUB's documented identities.
  size_t empty_bytes = 0;
  REQUIRE(cub::DeviceReduce::Sum(nullptr, empty_bytes, in.data(), &sum, 0) == cudaSuccess);
  CHECK(empty_bytes > 0);
  std::vector<unsigned char> empty_temp(empty_bytes);
  REQUIRE(cub::DeviceReduce::Sum(empty_temp.data(), empty_bytes, in.data(), &sum, 0) == cudaSuccess);
  CHECK(sum == 0.0f);
  REQUIRE(cub::DeviceReduce::Max(empty_temp.data(), empty_bytes, in.data(), &max, 0) == cudaSuccess);
  CHECK(max == std::numeric_limits<float>::lowest());
  REQUIRE(cub::DeviceReduce::ArgMax(nullptr, empty_bytes, in.data(), &arg, 0) == cudaSuccess);
  std::vector<unsigned char> empty_arg_temp(empty_bytes);
  REQUIRE(cub::DeviceReduce::ArgMax(empty_arg_temp.data(), empty_bytes, in.data(), &arg, 0) == cudaSuccess);
  CHECK(arg.key == 1);
  CHECK(arg.value == std::numeric_limits<float>::lowest());
}

TEST_CASE("sim libs: cub reduce with a custom operator and segmented sums") {
  const std::vector<int> in = {3, 1, 4, 1, 5, 9, 2, 6};
  size_t bytes = 0;
  int product = 0;
  auto multiply = [](int a, int b) { return a * b; };
  REQUIRE(cub::DeviceReduce::Reduce(nullptr, bytes, in.data(), &product, 8, multiply, 2) == cudaSuccess);
  std::vector<unsigned char> temp(bytes);
  REQUIRE(cub::DeviceReduce::Reduce(temp.data(), bytes, in.data(), &product, 8, multiply, 2) == cudaSuccess);
  CHECK(product == 2 * 3 * 1 * 4 * 1 * 5 * 9 * 2 * 6);
  int64_t total = 0;  // accumulates in the output's type
  REQUIRE(cub::DeviceReduce::Sum(temp.data(), bytes, in.data(), &total, 8) == cudaSuccess);
  CHECK(total == 31);

  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7};
  const std::vector<int> begins = {0, 3, 3, 5};
  const std::vector<int> ends = {3, 3, 5, 4};  // segment 1 empty, segment 3 has end < begin: empty too
  std::vector<float> sums(4, kNaN);
  size_t seg_bytes = 0;
  REQUIRE(cub::DeviceSegmentedReduce::Sum(nullptr, seg_bytes, values.data(), sums.data(), 4, begins.data(),
                                          ends.data()) == cudaSuccess);
  CHECK(seg_bytes > 0);
  CHECK(std::isnan(sums[0]));
  std::vector<unsigned char> seg_temp(seg_bytes);
  size_t short_bytes = seg_bytes - 1;
  CHECK(cub::DeviceSegmentedReduce::Sum(seg_temp.data(), short_bytes, values.data(), sums.data(), 4, begins.data(),
                                        ends.data()) == cudaErrorInvalidValue);
  REQUIRE(cub::DeviceSegmentedReduce::Sum(seg_temp.data(), seg_bytes, values.data(), sums.data(), 4, begins.data(),
                                          ends.data()) == cudaSuccess);
  CHECK(sums == std::vector<float>{6, 0, 9, 0});
  std::vector<float> maxima(4);
  REQUIRE(cub::DeviceSegmentedReduce::Max(seg_temp.data(), seg_bytes, values.data(), maxima.data(), 4, begins.data(),
                                          ends.data()) == cudaSuccess);
  CHECK(maxima[0] == 3.0f);
  CHECK(maxima[1] == std::numeric_limits<float>::lowest());
  CHECK(maxima[2] == 5.0f);
  CHECK(cub::DeviceSegmentedReduce::Sum(seg_temp.data(), seg_bytes, values.data(), sums.data(), -1, begins.data(),
                                        ends.data()) == cudaErrorInvalidValue);
}
