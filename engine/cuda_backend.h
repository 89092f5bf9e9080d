#pragma once
// The CUDA backend's entry points, for plain C++ callers: no CUDA header is included here.
//
// The same sources build twice: lethe::cuda (nvcc, for GPUs) and lethe::cuda_sim (host C++ under the kernel
// simulator in kernels/sim, so the whole backend runs in ctest without a GPU). Both declare the same functions; a
// binary links whichever builds it has.
//
// Process-wide state: the first make_cuda_backend() picks the device and creates the stream, the caching allocator,
// the pinned staging buffers and the library handles, and installs the Tensor allocator and copy hooks for
// Device::CUDA (engine/tensor.h). They live until the process exits; every backend made afterwards shares them.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/backend.h"

#define LETHE_CUDA_BACKEND_DECLARATIONS                                                                            \
  /* Devices visible to this build: 0 without a driver or a device (never throws). */                             \
  int device_count();                                                                                              \
  /* The backend on device `device_index`. Throws UsageError naming the problem when there is no such device. */  \
  /* Convolutions use cuDNN, or im2col + cuBLAS with the environment variable LETHE_CONV=gemm. */                  \
  std::unique_ptr<Backend> make_cuda_backend(int device_index);                                                    \
  /* Gradient-norm clipping as torch.nn.utils.clip_grad_norm_: returns the norm of `grads` (the flat gradient */   \
  /* arena) and scales grads by max_norm / (norm + 1e-6) when the norm exceeds max_norm. On a CUDA backend the */  \
  /* scaling happens on the device; any other backend goes through sum_squares and scale. */                       \
  double clip_grad_norm(Backend& backend, Tensor& grads, float max_norm);                                          \
  /* The caching allocator's counters (all zero before the first backend exists). */                              \
  struct DeviceMemoryStats {                                                                                       \
    size_t bytes_in_use = 0, bytes_cached = 0;                                                                     \
    uint64_t device_mallocs = 0, device_frees = 0, cache_hits = 0;                                                 \
  };                                                                                                               \
  DeviceMemoryStats device_memory_stats();                                                                         \
  /* An NVTX range on the profiler's timeline (Nsight Systems), opened and closed; ranges nest. */                  \
  void push_range(const char* name);                                                                               \
  void pop_range();

namespace lethe::cuda {
LETHE_CUDA_BACKEND_DECLARATIONS
}  // namespace lethe::cuda

namespace lethe::cuda_sim {
LETHE_CUDA_BACKEND_DECLARATIONS
}  // namespace lethe::cuda_sim

#undef LETHE_CUDA_BACKEND_DECLARATIONS
