// Row-major GEMM on cuBLAS (see gemm.cuh).
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/gemm.cuh"

#include <climits>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/ops.cuh"

namespace lethe::LETHE_CUDA_NS {

namespace {
int as_int(int64_t v, const char* what) {
  LETHE_CHECK(v >= 0 && v <= INT_MAX, std::string("GEMM ") + what + " = " + std::to_string(v) + " exceeds cuBLAS's int");
  return static_cast<int>(v);
}
}  // namespace

void gemm_rowmajor(cublasHandle_t handle, cudaStream_t stream, bool trans_a, bool trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                   float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // no products: C = beta·C, which cuBLAS may not do for k = 0 on every version
    LETHE_CHECK(ldc == n, "gemm_rowmajor with k = 0 needs a contiguous C");
    if (beta == 0.0f) {
      fill(c, m * n, 0.0f, stream);
    } else if (beta != 1.0f) {
      scale(c, m * n, beta, stream);
    }
    return;
  }
  // A row-major matrix is its own transpose read column-major, so row-major C = op(A)·op(B) is column-major
  // Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and the m/n roles, keep each operand's own transpose flag.
  LETHE_CUBLAS_CHECK(cublasSgemm(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 as_int(n, "n"), as_int(m, "m"), as_int(k, "k"), &alpha, b, as_int(ldb, "ldb"), a,
                                 as_int(lda, "lda"), &beta, c, as_int(ldc, "ldc")));
}

}  // namespace lethe::LETHE_CUDA_NS
