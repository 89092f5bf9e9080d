#pragma once
// A caching device allocator: freed blocks go to per-size-class free lists and are handed out again, so a training
// loop that allocates the same shapes every step calls cudaMalloc only in its first steps and never cudaFree.
//
// Size classes: 512 bytes, then four classes per power of two (2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k), so a request
// wastes at most a quarter of its size and slightly different batch sizes share blocks.
//
// Blocks are reused in stream order: the backend issues all its work on one stream, so a block freed after its
// last kernel was enqueued can be handed to the next kernel on that stream without waiting.
#include "kernels/device.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lethe::LETHE_CUDA_NS {

struct AllocatorCounters {
  size_t bytes_in_use = 0;      // handed out, by size class
  size_t bytes_cached = 0;      // in the free lists
  uint64_t device_mallocs = 0;  // cudaMalloc calls that succeeded
  uint64_t device_frees = 0;    // cudaFree calls (only when emptying the cache)
  uint64_t cache_hits = 0;      // requests served from a free list
};

class CachingAllocator {
 public:
  CachingAllocator() = default;
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // At least `bytes` of device memory (256-byte aligned, as cudaMalloc). Throws lethe::Error when the device is out
  // of memory even after the cache was returned to it.
  void* allocate(size_t bytes);
  // Returns a block from allocate() to its free list; null is ignored.
  void release(void* ptr);
  // cudaFree every cached block (blocks in use stay valid).
  void empty_cache();
  AllocatorCounters counters() const;

  static size_t size_class(size_t bytes);

 private:
  void empty_cache_locked();

  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_lists_;  // size class -> blocks
  std::unordered_map<void*, size_t> in_use_;         // block -> size class
  AllocatorCounters counters_;
};

}  // namespace lethe::LETHE_CUDA_NS
