#pragma once
// Checked cuBLAS and cuDNN calls: a failure throws lethe::Error naming the file, line, call and the library's own
// error string. (CUDA runtime calls use LETHE_CUDA_CHECK from kernels/launch.h.)
#include <cublas_v2.h>
#include <cudnn.h>

#include <string>

#include "engine/error.h"

namespace lethe::LETHE_CUDA_NS {

[[noreturn]] inline void throw_library_error(const char* library, const char* call, const char* message, int status,
                                             const char* file, int line) {
  throw Error(ExitCode::Other, std::string(library) + " error at " + file + ":" + std::to_string(line) + ": " + call +
                                   " returned " + std::to_string(status) + " (" + message + ")");
}

}  // namespace lethe::LETHE_CUDA_NS

#define LETHE_CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                      \
    const cublasStatus_t lethe_status_ = (call);                                                            \
    if (lethe_status_ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::lethe::LETHE_CUDA_NS::throw_library_error("cuBLAS", #call, cublasGetStatusString(lethe_status_),    \
                                                  static_cast<int>(lethe_status_), __FILE__, __LINE__);     \
  } while (0)

#define LETHE_CUDNN_CHECK(call)                                                                             \
  do {                                                                                                      \
    const cudnnStatus_t lethe_status_ = (call);                                                             \
    if (lethe_status_ != CUDNN_STATUS_SUCCESS)                                                              \
      ::lethe::LETHE_CUDA_NS::throw_library_error("cuDNN", #call, cudnnGetErrorString(lethe_status_),       \
                                                  static_cast<int>(lethe_status_), __FILE__, __LINE__);     \
  } while (0)
