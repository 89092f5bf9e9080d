// Host implementation of the cuBLAS stand-in (kernels/sim/include/cublas_v2.h). See the header for the contract.
#include <cublas_v2.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "kernels/sim/omp.h"

namespace lethe::sim::cublas_api {

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

// Live handles: a destroyed or never-created handle reads as "not initialized" instead of undefined behaviour.
std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::unordered_set<const cublasContext*>& live_handles() {
  static std::unordered_set<const cublasContext*> handles;
  return handles;
}

bool is_live(cublasHandle_t handle) {
  if (handle == nullptr) return false;
  std::lock_guard<std::mutex> lock(registry_mutex());
  return live_handles().count(handle) != 0;
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// Real-valued routines: CUBLAS_OP_C is the same as CUBLAS_OP_T.
bool transposed(cublasOperation_t op) { return op != CUBLAS_OP_N; }

// Tensor-core TF32: keep 10 mantissa bits, round to nearest with ties away from zero (cvt.rna.tf32.f32).
float round_to_tf32(float value) {
  if (!std::isfinite(value)) return value;
  uint32_t bits = std::bit_cast<uint32_t>(value);
  bits += 0x1000u;
  bits &= 0xFFFFE000u;
  return std::bit_cast<float>(bits);
}

bool uses_tf32(const cublasContext& context) {
  return (static_cast<int>(context.math_mode) & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH;
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

// Validation shared by gemm and gemmStridedBatched, in the order the cuBLAS documentation lists it.
cublasStatus_t check_gemm_args(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                               int n, int k, const float* alpha, int lda, int ldb, const float* beta, int ldc) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (!valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  // Rows of the stored A: m when A is used as is, k when it is transposed (A is k x m then); B likewise.
  const int a_rows = transposed(transa) ? k : m;
  const int b_rows = transposed(transb) ? n : k;
  if (lda < std::max(1, a_rows)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldb < std::max(1, b_rows)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

// One GEMM on validated arguments. op(A) is packed row by row (m x k) and op(B) column by column (n x k) so every
// dot product runs over contiguous memory in a fixed, deterministic summation order.
void gemm_one(const cublasContext& context, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
              const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (m == 0 || n == 0) return;
  const size_t ldc_z = static_cast<size_t>(ldc);
  if (k == 0 || alpha == 0.0f) {
    // A and B are not read; beta == 0 overwrites C without reading it.
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float& c = C[i + j * ldc_z];
        c = beta == 0.0f ? 0.0f : beta * c;
      }
    return;
  }
  const bool tf32 = uses_tf32(context);
  const size_t k_z = static_cast<size_t>(k);
  std::vector<float> a_rows(static_cast<size_t>(m) * k_z);
  std::vector<float> b_cols(static_cast<size_t>(n) * k_z);
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p) {
      // Column-major: element (r, c) of a matrix with leading dimension ld is at r + c * ld.
      const float value = trans_a ? A[p + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(p) * lda];
      a_rows[i * k_z + p] = tf32 ? round_to_tf32(value) : value;
    }
  for (int j = 0; j < n; ++j)
    for (int p = 0; p < k; ++p) {
      const float value = trans_b ? B[j + static_cast<size_t>(p) * ldb] : B[p + static_cast<size_t>(j) * ldb];
      b_cols[j * k_z + p] = tf32 ? round_to_tf32(value) : value;
    }
  // Each output element is one dot product in index order, so threads never change the result.
  LETHE_SIM_OMP(omp parallel for schedule(static) if (static_cast<int64_t>(m) * n * k > (int64_t{1} << 15)))
  for (int j = 0; j < n; ++j) {
    const float* b = &b_cols[j * k_z];
    for (int i = 0; i < m; ++i) {
      const float* a = &a_rows[i * k_z];
      const float sum = dot_fixed_order(a, b, k);
      float& c = C[i + j * ldc_z];
      c = beta == 0.0f ? alpha * sum : alpha * sum + beta * c;
    }
  }
}

// Start index of a BLAS vector with a possibly negative increment (reference BLAS convention).
long long first_index(int n, int inc) { return inc >= 0 ? 0 : static_cast<long long>(n - 1) * -inc; }

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* context = new cublasContext();
  std::lock_guard<std::mutex> lock(registry_mutex());
  live_handles().insert(context);
  *handle = context;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    if (handle == nullptr || live_handles().erase(handle) == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (version == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *version = CUBLAS_VER_MAJOR * 10000 + CUBLAS_VER_MINOR * 100 + CUBLAS_VER_PATCH;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = streamId;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (streamId == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *streamId = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t* mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

// Device memory is host memory in the simulator, so both modes read scalars through the pointer the same way.
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math_mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int value = static_cast<int>(mode);
  const int base = value & 0xf;
  const int flags = value & ~0xf;
  const bool base_known = base == CUBLAS_DEFAULT_MATH || base == CUBLAS_TENSOR_OP_MATH ||
                          base == CUBLAS_PEDANTIC_MATH || base == CUBLAS_TF32_TENSOR_OP_MATH ||
                          base == CUBLAS_FP32_EMULATED_BF16X9_MATH || base == CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH;
  if (!base_known || (flags & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) != 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (workspace == nullptr && workspaceSizeInBytes != 0) return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
  }
  return "unknown error";
}

cublasStatus_t cublasSaxpy_v2(cublasHandle_t handle, int n, const float* alpha, const float* x, int incx, float* y,
                              int incy) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (alpha == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  if (x == nullptr || y == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  long long ix = first_index(n, incx), iy = first_index(n, incy);
  for (int i = 0; i < n; ++i, ix += incx, iy += incy) y[iy] += *alpha * x[ix];
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSscal_v2(cublasHandle_t handle, int n, const float* alpha, float* x, int incx) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (alpha == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  // Reference BLAS: nothing to do for n <= 0 or a non-positive increment.
  if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;
  if (x == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  for (long long i = 0; i < n; ++i) x[i * incx] *= *alpha;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSdot_v2(cublasHandle_t handle, int n, const float* x, int incx, const float* y, int incy,
                             float* result) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (result == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  float sum = 0.0f;
  if (n > 0) {
    if (x == nullptr || y == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    long long ix = first_index(n, incx), iy = first_index(n, incy);
    for (int i = 0; i < n; ++i, ix += incx, iy += incy) sum += x[ix] * y[iy];
  }
  *result = sum;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasScopy_v2(cublasHandle_t handle, int n, const float* x, int incx, float* y, int incy) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  if (x == nullptr || y == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  long long ix = first_index(n, incx), iy = first_index(n, incy);
  for (int i = 0; i < n; ++i, ix += incx, iy += incy) y[iy] = x[ix];
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemv_v2(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const float* alpha,
                              const float* A, int lda, const float* x, int incx, const float* beta, float* y,
                              int incy) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || !valid_op(trans)) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, m) || incx == 0 || incy == 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool t = transposed(trans);
  const int out_len = t ? n : m;
  const int in_len = t ? m : n;
  long long iy = first_index(out_len, incy);
  for (int r = 0; r < out_len; ++r, iy += incy) {
    float sum = 0.0f;
    if (*alpha != 0.0f) {
      long long ix = first_index(in_len, incx);
      for (int p = 0; p < in_len; ++p, ix += incx) {
        const float a = t ? A[p + static_cast<size_t>(r) * lda] : A[r + static_cast<size_t>(p) * lda];
        sum += a * x[ix];
      }
    }
    y[iy] = *beta == 0.0f ? *alpha * sum : *alpha * sum + *beta * y[iy];
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
  const cublasStatus_t status = check_gemm_args(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (C == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (k > 0 && *alpha != 0.0f && (A == nullptr || B == nullptr)) return CUBLAS_STATUS_INVALID_VALUE;
  gemm_one(*handle, transposed(transa), transposed(transb), m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb, long long int strideB,
                                         const float* beta, float* C, int ldc, long long int strideC,
                                         int batchCount) {
  const cublasStatus_t status = check_gemm_args(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  if (C == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (k > 0 && *alpha != 0.0f && (A == nullptr || B == nullptr)) return CUBLAS_STATUS_INVALID_VALUE;
  for (int b = 0; b < batchCount; ++b) {
    const bool reads_inputs = k > 0 && *alpha != 0.0f;
    gemm_one(*handle, transposed(transa), transposed(transb), m, n, k, *alpha,
             reads_inputs ? A + b * strideA : nullptr, lda, reads_inputs ? B + b * strideB : nullptr, ldb, *beta,
             C + b * strideC, ldc);
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                  int n, int k, const float* alpha, const float* const Aarray[], int lda,
                                  const float* const Barray[], int ldb, const float* beta, float* const Carray[],
                                  int ldc, int batchCount) {
  const cublasStatus_t status = check_gemm_args(handle, transa, transb, m, n, k, alpha, lda, ldb, beta, ldc);
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  const bool reads_inputs = k > 0 && *alpha != 0.0f;
  if (Carray == nullptr || (reads_inputs && (Aarray == nullptr || Barray == nullptr)))
    return CUBLAS_STATUS_INVALID_VALUE;
  for (int b = 0; b < batchCount; ++b) {
    if (Carray[b] == nullptr || (reads_inputs && (Aarray[b] == nullptr || Barray[b] == nullptr)))
      return CUBLAS_STATUS_INVALID_VALUE;
  }
  for (int b = 0; b < batchCount; ++b)
    gemm_one(*handle, transposed(transa), transposed(transb), m, n, k, *alpha, reads_inputs ? Aarray[b] : nullptr,
             lda, reads_inputs ? Barray[b] : nullptr, ldb, *beta, Carray[b], ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgeam(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           const float* alpha, const float* A, int lda, const float* beta, const float* B, int ldb,
                           float* C, int ldc) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || !valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  // op(A) and op(B) are m x n, so the stored matrix has m rows untransposed and n rows transposed.
  const int a_rows = transposed(transa) ? n : m;
  const int b_rows = transposed(transb) ? n : m;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  // In-place is documented only without transposition and with the same leading dimension.
  if (C != nullptr && C == A && (ldc != lda || transposed(transa))) return CUBLAS_STATUS_INVALID_VALUE;
  if (C != nullptr && C == B && (ldc != ldb || transposed(transb))) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool read_a = *alpha != 0.0f;
  const bool read_b = *beta != 0.0f;
  if (C == nullptr || (read_a && A == nullptr) || (read_b && B == nullptr)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transposed(transa), tb = transposed(transb);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float value = 0.0f;
      if (read_a) value += *alpha * (ta ? A[j + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(j) * lda]);
      if (read_b) value += *beta * (tb ? B[j + static_cast<size_t>(i) * ldb] : B[i + static_cast<size_t>(j) * ldb]);
      C[i + static_cast<size_t>(j) * ldc] = value;
    }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace lethe::sim::cublas_api
