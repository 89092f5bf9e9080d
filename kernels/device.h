#pragma once
// The first include of every CUDA source. Under nvcc it is the real CUDA runtime; compiled as plain host C++ it is the
// kernel simulator (kernels/sim/sim.h), which provides the same dialect so one source builds both ways.
//   LETHE_CUDA_NS  the namespace CUDA-path code lives in: lethe::cuda (nvcc) or lethe::cuda_sim (host), so both
//                  builds can be linked into one binary.
//   LETHE_CUDA_SIM defined (as 1) in the host build only.
//   LETHE_DYNAMIC_SHARED(T, name)  inside a kernel: `name` is a T* to the block's dynamic shared memory (the size
//                  given at launch). 16-byte aligned in both builds.
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define LETHE_CUDA_NS cuda
// An unsigned char array cast to T* (not `extern __shared__ T name[]`) so that template kernels instantiated for
// several T do not redeclare one extern symbol with conflicting types.
#define LETHE_DYNAMIC_SHARED(T, name)                                     \
  extern __shared__ __align__(16) unsigned char lethe_dynamic_shared_[]; \
  T* const name = reinterpret_cast<T*>(lethe_dynamic_shared_)
#else
#include "kernels/sim/sim.h"
#define LETHE_CUDA_NS cuda_sim
#define LETHE_CUDA_SIM 1
#define LETHE_DYNAMIC_SHARED(T, name) T* const name = reinterpret_cast<T*>(::lethe::sim::dynamic_shared_memory())
#endif

#include "kernels/hd.h"
