#pragma once
// Row-major GEMM on cuBLAS: the one place the row-major/column-major mapping is written.
#include "kernels/device.h"

#include <cublas_v2.h>

#include <cstdint>

namespace lethe::LETHE_CUDA_NS {

// C[m×n] = alpha·op(A)·op(B) + beta·C, all row-major: op(A) is m×k, op(B) is k×n, lda/ldb/ldc are row strides.
// k == 0 gives beta·C (C zeroed when beta == 0), as BLAS defines it. Enqueued on the handle's stream.
void gemm_rowmajor(cublasHandle_t handle, cudaStream_t stream, bool trans_a, bool trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                   float* c, int64_t ldc);

}  // namespace lethe::LETHE_CUDA_NS
