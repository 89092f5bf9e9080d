// The caching device allocator (see allocator.cuh).
#include "kernels/device.h"
#include "kernels/launch.h"

#include "kernels/cuda/allocator.cuh"

#include <string>

#include "engine/error.h"

namespace lethe::LETHE_CUDA_NS {

CachingAllocator::~CachingAllocator() {
  // At process exit the runtime may already be shutting down; errors here are of no use to anyone.
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, blocks] : free_lists_)
    for (void* p : blocks) (void)cudaFree(p);
  free_lists_.clear();
  (void)cudaGetLastError();
}

size_t CachingAllocator::size_class(size_t bytes) {
  constexpr size_t kMin = 512;
  if (bytes <= kMin) return kMin;
  size_t power = kMin;
  while (power * 2 < bytes) power *= 2;  // power < bytes <= 2·power
  const size_t step = power / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_lists_.find(cls);
  if (it != free_lists_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    in_use_.emplace(p, cls);
    counters_.bytes_cached -= cls;
    counters_.bytes_in_use += cls;
    ++counters_.cache_hits;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, cls);
  if (e == cudaErrorMemoryAllocation) {  // give the cache back to the device and try once more
    (void)cudaGetLastError();
    empty_cache_locked();
    e = cudaMalloc(&p, cls);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(ExitCode::Other, "CUDA out of memory allocating " + std::to_string(bytes) + " bytes (" +
                                     std::to_string(counters_.bytes_in_use) + " bytes in use): " +
                                     cudaGetErrorString(e));
  }
  in_use_.emplace(p, cls);
  counters_.bytes_in_use += cls;
  ++counters_.device_mallocs;
  return p;
}

void CachingAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(ptr);
  LETHE_CHECK(it != in_use_.end(), "CachingAllocator::release of a block it did not allocate");
  const size_t cls = it->second;
  in_use_.erase(it);
  free_lists_[cls].push_back(ptr);
  counters_.bytes_in_use -= cls;
  counters_.bytes_cached += cls;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  empty_cache_locked();
}

void CachingAllocator::empty_cache_locked() {
  for (auto& [cls, blocks] : free_lists_) {
    for (void* p : blocks) {
      LETHE_CUDA_CHECK(cudaFree(p));
      ++counters_.device_frees;
      counters_.bytes_cached -= cls;
    }
    blocks.clear();
  }
}

AllocatorCounters CachingAllocator::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

}  // namespace lethe::LETHE_CUDA_NS
