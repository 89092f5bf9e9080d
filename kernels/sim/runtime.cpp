// CUDA runtime stand-ins for the simulator. "Device" memory is host memory, but it is tracked: every call that takes a
// device pointer checks that the whole range lies inside one live cudaMalloc allocation, so a wrong pointer, size or
// copy direction fails here as it would (or should) on a GPU. Work is synchronous: "async" calls complete at once.
#include <sys/sysinfo.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>

#include "kernels/sim/sim.h"

struct CUstream_st {
  unsigned flags = 0;
};
struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when;
};

namespace lethe::sim::detail {
void set_dynamic_shared_limit(const void* kernel_function, size_t bytes);  // sim.cpp
bool stream_is_valid(cudaStream_t stream);
}  // namespace lethe::sim::detail

namespace {

constexpr size_t kAlignment = 256;  // cudaMalloc's documented minimum alignment

enum class Region : unsigned char { Device, PinnedHost };
struct Allocation {
  size_t bytes;
  Region region;
};

std::mutex g_mutex;
std::map<uintptr_t, Allocation> g_allocations;  // start address -> allocation
std::set<const CUstream_st*> g_streams;
std::set<const CUevent_st*> g_events;
thread_local cudaError_t tl_last_error = cudaSuccess;
int g_device = 0;

cudaError_t fail(cudaError_t e) {
  tl_last_error = e;
  return e;
}

// The allocation of `region` containing [p, p + bytes), or nullptr. Caller holds g_mutex.
const Allocation* find_locked(const void* p, size_t bytes, Region region) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.upper_bound(addr);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  if (it->second.region != region) return nullptr;
  const uintptr_t offset = addr - it->first;
  if (offset > it->second.bytes || bytes > it->second.bytes - offset) return nullptr;
  if (bytes == 0 && offset == it->second.bytes) return nullptr;
  return &it->second;
}
bool is_device_range(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return find_locked(p, bytes, Region::Device) != nullptr;
}
bool is_device_pointer(const void* p) { return is_device_range(p, 1); }

cudaError_t allocate(void** ptr, size_t bytes, Region region) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;  // as CUDA: success with a null pointer
  void* p = ::operator new(bytes, std::align_val_t{kAlignment}, std::nothrow);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation);
  // Fresh device memory holds garbage on a GPU; all-ones bytes make a read-before-write show up as NaN or -1.
  if (region == Region::Device) std::memset(p, 0xff, bytes);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, region};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t release(void* ptr, Region region) {
  if (ptr == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_allocations.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == g_allocations.end() || it->second.region != region) return fail(cudaErrorInvalidValue);
    g_allocations.erase(it);
  }
  ::operator delete(ptr, std::align_val_t{kAlignment});
  return cudaSuccess;
}

bool stream_ok(cudaStream_t s) {
  if (s == nullptr) return true;
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_streams.count(s) != 0;
}
bool event_ok(cudaEvent_t e) {
  if (e == nullptr) return false;
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_events.count(e) != 0;
}

// Checks both sides of a copy of `bytes` against `kind`; the device side must lie in one allocation, the host side
// must not be device memory (pinned host memory is host memory).
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  const bool dst_device = is_device_range(dst, bytes), src_device = is_device_range(src, bytes);
  switch (kind) {
    case cudaMemcpyHostToHost:
      if (is_device_pointer(dst) || is_device_pointer(src)) return fail(cudaErrorInvalidValue);
      return cudaSuccess;
    case cudaMemcpyHostToDevice:
      if (!dst_device || is_device_pointer(src)) return fail(cudaErrorInvalidValue);
      return cudaSuccess;
    case cudaMemcpyDeviceToHost:
      if (!src_device || is_device_pointer(dst)) return fail(cudaErrorInvalidValue);
      return cudaSuccess;
    case cudaMemcpyDeviceToDevice:
      if (!dst_device || !src_device) return fail(cudaErrorInvalidValue);
      return cudaSuccess;
    case cudaMemcpyDefault:
      // Inferred from the pointers; a pointer into device memory must still keep the whole range inside it.
      if ((is_device_pointer(dst) && !dst_device) || (is_device_pointer(src) && !src_device))
        return fail(cudaErrorInvalidValue);
      return cudaSuccess;
  }
  return fail(cudaErrorInvalidMemcpyDirection);
}

}  // namespace

namespace lethe::sim::detail {
bool stream_is_valid(cudaStream_t stream) { return stream_ok(stream); }
}  // namespace lethe::sim::detail

cudaError_t cudaMalloc(void** ptr, size_t bytes) { return allocate(ptr, bytes, Region::Device); }
cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return allocate(ptr, bytes, Region::Device);
}
cudaError_t cudaFree(void* ptr) { return release(ptr, Region::Device); }
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return release(ptr, Region::Device);
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return allocate(ptr, bytes, Region::PinnedHost); }
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int) { return allocate(ptr, bytes, Region::PinnedHost); }
cudaError_t cudaFreeHost(void* ptr) { return release(ptr, Region::PinnedHost); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return e;
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);  // CUDA: cudaErrorInvalidPitchValue
  if (width == 0 || height == 0) return cudaSuccess;
  // Bounds of the whole strided region: (height - 1) pitches plus one row.
  const size_t max_rows = static_cast<size_t>(-1) / std::max(dpitch, spitch);
  if (height - 1 > max_rows) return fail(cudaErrorInvalidValue);
  const size_t dst_span = (height - 1) * dpitch + width, src_span = (height - 1) * spitch + width;
  if (check_copy(dst, src, 1, kind) != cudaSuccess) return tl_last_error;
  if (is_device_pointer(dst) && !is_device_range(dst, dst_span)) return fail(cudaErrorInvalidValue);
  if (is_device_pointer(src) && !is_device_range(src, src_span)) return fail(cudaErrorInvalidValue);
  for (size_t row = 0; row < height; ++row)
    std::memmove(static_cast<unsigned char*>(dst) + row * dpitch, static_cast<const unsigned char*>(src) + row * spitch,
                 width);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_range(ptr, bytes)) return fail(cudaErrorInvalidValue);
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  return cudaMemset(ptr, value, bytes);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  struct sysinfo info {};
  if (sysinfo(&info) != 0) return fail(cudaErrorUnknown);
  *total_bytes = static_cast<size_t>(info.totalram) * info.mem_unit;
  *free_bytes = static_cast<size_t>(info.freeram) * info.mem_unit;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  if (attributes == nullptr) return fail(cudaErrorInvalidValue);
  *attributes = cudaPointerAttributes{};
  std::lock_guard<std::mutex> lock(g_mutex);
  if (find_locked(ptr, 1, Region::Device) != nullptr) {
    attributes->type = cudaMemoryTypeDevice;
    attributes->devicePointer = const_cast<void*>(ptr);
  } else if (find_locked(ptr, 1, Region::PinnedHost) != nullptr) {
    attributes->type = cudaMemoryTypeHost;
    attributes->devicePointer = const_cast<void*>(ptr);
    attributes->hostPointer = const_cast<void*>(ptr);
  } else {
    attributes->hostPointer = const_cast<void*>(ptr);
  }
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (stream == nullptr || flags > cudaStreamNonBlocking) return fail(cudaErrorInvalidValue);
  auto* s = new CUstream_st{flags};
  std::lock_guard<std::mutex> lock(g_mutex);
  g_streams.insert(s);
  *stream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_streams.erase(stream) == 0) return fail(cudaErrorInvalidResourceHandle);
  }
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  return stream_ok(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  return stream_ok(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  if (!stream_ok(stream) || !event_ok(event)) return fail(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (event == nullptr || (flags & ~0x7u) != 0) return fail(cudaErrorInvalidValue);
  auto* e = new CUevent_st{};
  e->flags = flags;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_events.insert(e);
  *event = e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_events.erase(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  }
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event_ok(event) || !stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();  // all earlier work has completed: launches are synchronous
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event_ok(event) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  return event_ok(event) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  if (!event_ok(start) || !event_ok(end)) return fail(cudaErrorInvalidResourceHandle);
  if (((start->flags | end->flags) & cudaEventDisableTiming) != 0) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------------------------------
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaDeviceReset() { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = g_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  g_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "Lethe kernel simulator");
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  prop->totalGlobalMem = total_bytes;
  prop->sharedMemPerBlock = lethe::sim::kDefaultSharedBytes;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = lethe::sim::worker_count();
  prop->integrated = 1;  // its memory is the host's
  prop->concurrentKernels = 0;
  prop->asyncEngineCount = 0;
  prop->unifiedAddressing = 1;
  prop->memoryBusWidth = 64;
  prop->l2CacheSize = 0;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerMultiprocessor = 65536;
  prop->sharedMemPerBlockOptin = lethe::sim::kMaxOptinSharedBytes;
  prop->maxBlocksPerMultiProcessor = 32;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxBlockDimX: *value = 1024; break;
    case cudaDevAttrMaxBlockDimY: *value = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *value = 64; break;
    case cudaDevAttrMaxGridDimX: *value = 2147483647; break;
    case cudaDevAttrMaxGridDimY: *value = 65535; break;
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(lethe::sim::kDefaultSharedBytes); break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrClockRate: *value = 1000000; break;        // kHz; nominal, the simulator has no clock
    case cudaDevAttrMemoryClockRate: *value = 1000000; break;  // kHz; nominal
    case cudaDevAttrMultiProcessorCount: *value = lethe::sim::worker_count(); break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = 64; break;
    case cudaDevAttrL2CacheSize: *value = 0; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(lethe::sim::kMaxOptinSharedBytes); break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = 13000;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorInvalidValue);
  if (value < 0 || static_cast<size_t>(value) > lethe::sim::kMaxOptinSharedBytes) return fail(cudaErrorInvalidValue);
  lethe::sim::detail::set_dynamic_shared_limit(func, static_cast<size_t>(value));
  return cudaSuccess;
}

// Like the real runtime: the last error of this host thread; reading it with cudaGetLastError resets it.
cudaError_t cudaGetLastError() {
  const cudaError_t e = tl_last_error;
  tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return tl_last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotPermitted: return "cudaErrorNotPermitted";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorUnknown: return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotPermitted: return "operation not permitted";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unrecognized error code";
}
