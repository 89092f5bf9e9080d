#pragma once
// LETHE_HD marks per-element math that both backends call: plain inline on the host compiler,
// __host__ __device__ under nvcc, so the CUDA kernels reuse these functions verbatim.
#if defined(__CUDACC__)
#define LETHE_HD __host__ __device__ __forceinline__
#else
#define LETHE_HD inline
#endif
