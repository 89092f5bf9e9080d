#pragma once
// The one way Lethe launches a kernel, and the check for CUDA runtime calls.
//
//   LETHE_LAUNCH(kernel, grid, block, shared_bytes, stream, args...)
//     nvcc: kernel<<<grid, block, shared_bytes, stream>>>(args...), then cudaGetLastError().
//     host: the kernel simulator (lethe::sim::launch_kernel), which checks the configuration the way CUDA does.
//     Either way a failure throws lethe::Error naming the file, line, kernel and the reason. grid and block are dim3
//     or integers; a negative integer or one above 2^32-1 is an error instead of silently wrapping. A template
//     kernel whose argument list has a comma goes in parentheses: LETHE_LAUNCH((k<float, 4>), ...).
//
//   LETHE_CUDA_CHECK(call)
//     Throws lethe::Error with file, line, the call's text and cudaGetErrorString when call != cudaSuccess. The
//     runtime's last-error state is cleared first, so the next launch check does not report this failure again.
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "engine/error.h"
#include "kernels/device.h"

namespace lethe::launch_detail {

inline std::string site(const char* file, int line) { return std::string(file) + ":" + std::to_string(line); }

template <class T>
dim3 to_dim3(const T& v, const char* what, const char* kernel, const char* file, int line) {
  if constexpr (std::is_integral_v<T>) {
    if (std::cmp_less(v, 0) || std::cmp_greater(v, std::numeric_limits<unsigned>::max()))
      throw ::lethe::Error(::lethe::ExitCode::Other, site(file, line) + ": kernel " + kernel + ": " + what +
                                                         " size " + std::to_string(v) + " is out of range");
    return dim3(static_cast<unsigned>(v));
  } else {
    return dim3(v);
  }
}

inline void check_launch(cudaError_t e, const char* kernel, const char* file, int line) {
  if (e != cudaSuccess)
    throw ::lethe::Error(::lethe::ExitCode::Other, site(file, line) + ": kernel " + kernel + " failed to launch: " +
                                                       cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

inline void check_call(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw ::lethe::Error(::lethe::ExitCode::Other, site(file, line) + ": " + call + " failed: " +
                                                       cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
}

}  // namespace lethe::launch_detail

#define LETHE_CUDA_CHECK(call) ::lethe::launch_detail::check_call((call), #call, __FILE__, __LINE__)

#if defined(__CUDACC__)
#define LETHE_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                              \
  do {                                                                                                            \
    const dim3 lethe_launch_grid_ = ::lethe::launch_detail::to_dim3((grid), "grid", #kernel, __FILE__, __LINE__); \
    const dim3 lethe_launch_block_ =                                                                              \
        ::lethe::launch_detail::to_dim3((block), "block", #kernel, __FILE__, __LINE__);                           \
    kernel<<<lethe_launch_grid_, lethe_launch_block_, (shared_bytes), (stream)>>>(__VA_ARGS__);                  \
    ::lethe::launch_detail::check_launch(cudaGetLastError(), #kernel, __FILE__, __LINE__);                        \
  } while (0)
#else
#define LETHE_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                              \
  ::lethe::sim::launch_kernel(#kernel, __FILE__, __LINE__,                                                        \
                              ::lethe::launch_detail::to_dim3((grid), "grid", #kernel, __FILE__, __LINE__),       \
                              ::lethe::launch_detail::to_dim3((block), "block", #kernel, __FILE__, __LINE__),     \
                              (shared_bytes), (stream), kernel __VA_OPT__(, ) __VA_ARGS__)
#endif
