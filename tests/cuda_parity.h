#pragma once
// What the CUDA parity tests (tests/test_cuda_*.cpp) share: the implementation under test and the two backends.
//
// The same suites run against the CUDA backend built as host C++ under the kernel simulator (lethe::cuda_sim, in
// every build) and, compiled with LETHE_CUDA_PARITY_ON_DEVICE, against the nvcc build on a real GPU (lethe::cuda):
// there the cases are named "cuda device: ..." and skip themselves, visibly, when no device is present. Code outside `cuda_impl`
// must not name anything that only one of the two namespaces has.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "tests/skip.h"
#include "tests/test_util.h"

// Transcendental functions (expf, logf, sinf) differ by an ulp or so between a GPU and the host's libm, so
// comparisons that are exact against the simulator get kHostMath on a device.
#if defined(LETHE_CUDA_PARITY_ON_DEVICE)
namespace cuda_impl = lethe::cuda;
// Each case runs, and without a device says "skipped: no CUDA device" and returns; a run in which every case did so
// exits 77, which ctest reports as skipped (tests/skip.h). The body becomes a function the case calls.
#define CUDA_CASE(name) CUDA_CASE_ON_DEVICE(name, DOCTEST_ANONYMOUS(lethe_cuda_case_))
#define CUDA_CASE_ON_DEVICE(name, body)                                      \
  static void body();                                                         \
  TEST_CASE("cuda device: " name) {                                           \
    if (lethe::cuda::device_count() == 0) return lethe::test::skip_case("no CUDA device"); \
    body();                                                                   \
  }                                                                           \
  static void body()
inline constexpr double kHostMath = 1e-12;
inline constexpr const char* kExpectedName = "cuda";
#else
namespace cuda_impl = lethe::cuda_sim;
#define CUDA_CASE(name) TEST_CASE("cuda sim: " name)
inline constexpr double kHostMath = 0.0;
inline constexpr const char* kExpectedName = "cuda-sim";
#endif

namespace lethe::test::parity {

// Whole models (and unlearning runs) on the device must end within this of the CPU's weights: relative, in norm.
inline constexpr double kModelTolerance = 1e-4;
// ||a - ref|| / ||ref||
inline double relative(const std::vector<double>& a, const std::vector<double>& ref) {
  return std::sqrt(test::nmse(a, ref));
}

// The reference: the CPU backend on one thread, so its sums have one fixed order.
inline Backend& cpu() {
  static std::unique_ptr<Backend> be = make_cpu_backend(1);
  return *be;
}

// The backend under test, one per convolution path ("cudnn", or "gemm": im2col + cuBLAS; the path is read from
// LETHE_CONV when a backend is made). Inline, so every test file of the binary shares the same two. They live until
// the process exits and are never destroyed: a static's destructor could run after the library stand-ins' own
// statics are gone.
inline Backend& sim(const char* conv = "cudnn") {
  static Backend* cudnn_be = nullptr;
  static Backend* gemm_be = nullptr;
  Backend*& be = std::string(conv) == "gemm" ? gemm_be : cudnn_be;
  if (!be) {
    setenv("LETHE_CONV", conv, 1);
    be = cuda_impl::make_cuda_backend(0).release();
    unsetenv("LETHE_CONV");
  }
  return *be;
}

}  // namespace lethe::test::parity
