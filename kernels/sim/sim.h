#pragma once
// The kernel simulator: the CUDA dialect and runtime subset Lethe's CUDA sources use, provided on the host so the same
// sources compile with g++ and run on the CPU. A grid's blocks run in parallel on a small pool of OS threads; within a
// block every CUDA thread is a cooperative fiber, so __syncthreads and warp collectives are real rendezvous points.
// What this models and what it cannot is in docs/simulator.md. Include it through "kernels/device.h".
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------------------------------------------------
// Qualifiers. Kernels are ordinary functions here. A device function defined in a header must be inline
// (__forceinline__, LETHE_HD or `inline`), as it must be in a relocatable-device-code build.
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Static shared memory is per block: the fibers of one block share their worker's OS thread and a worker runs one
// block at a time, so a thread_local static is exactly one copy per running block. `extern __shared__` (dynamic shared
// memory) cannot be spelled this way: use LETHE_DYNAMIC_SHARED from kernels/device.h.
#define __shared__ static thread_local

// ---------------------------------------------------------------------------------------------------------------------
// Vector types (the ones CUDA kernels commonly use), with CUDA's alignments.
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(16) double2 { double x, y; };
inline constexpr int2 make_int2(int x, int y) { return {x, y}; }
inline constexpr int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline constexpr int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline constexpr uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline constexpr uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline constexpr uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline constexpr float2 make_float2(float x, float y) { return {x, y}; }
inline constexpr float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline constexpr float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline constexpr double2 make_double2(double x, double y) { return {x, y}; }

// ---------------------------------------------------------------------------------------------------------------------
// Built-in variables. The simulator rewrites these thread_locals whenever it hands the OS thread to another fiber, so
// inside a kernel they always describe the running CUDA thread. constinit lets g++ access them without a TLS wrapper.
extern thread_local constinit uint3 threadIdx;
extern thread_local constinit uint3 blockIdx;
extern thread_local constinit dim3 blockDim;
extern thread_local constinit dim3 gridDim;
inline constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------------------------------
// CUDA runtime subset (stand-ins in kernels/sim/runtime.cpp). Numeric values match the real headers.
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotPermitted = 800,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2 };
struct cudaPointerAttributes {
  cudaMemoryType type = cudaMemoryTypeUnregistered;
  int device = 0;
  void* devicePointer = nullptr;
  void* hostPointer = nullptr;
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxBlockDimX = 2,
  cudaDevAttrMaxBlockDimY = 3,
  cudaDevAttrMaxBlockDimZ = 4,
  cudaDevAttrMaxGridDimX = 5,
  cudaDevAttrMaxGridDimY = 6,
  cudaDevAttrMaxGridDimZ = 7,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrClockRate = 13,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMemoryClockRate = 36,
  cudaDevAttrGlobalMemoryBusWidth = 37,
  cudaDevAttrL2CacheSize = 38,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
#define cudaHostAllocDefault 0x00
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02

// A subset of the real cudaDeviceProp's fields (every one of them exists, with this type, in CUDA 13's struct).
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  size_t memPitch;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  size_t totalConstMem;
  int major;
  int minor;
  int multiProcessorCount;
  int integrated;
  int concurrentKernels;
  int ECCEnabled;
  int pciBusID;
  int asyncEngineCount;
  int unifiedAddressing;
  int memoryBusWidth;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor;
  int managedMemory;
  size_t sharedMemPerBlockOptin;
  int maxBlocksPerMultiProcessor;
};

struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <class T>
cudaError_t cudaFuncSetAttribute(T* func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);

// ---------------------------------------------------------------------------------------------------------------------
namespace lethe::sim {

inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr size_t kDefaultSharedBytes = 48 * 1024;  // dynamic shared memory without an opt-in
inline constexpr size_t kMaxOptinSharedBytes = 227 * 1024;  // sm_90's opt-in ceiling

// Execution knobs. Results never depend on the worker count except through the order of atomics.
int worker_count();
void set_worker_count(int workers);  // 0: min(hardware threads, 8); LETHE_SIM_WORKERS overrides the default
size_t fiber_stack_bytes();
void set_fiber_stack_bytes(size_t bytes);  // LETHE_SIM_STACK_KIB overrides the default (64 KiB, 256 KiB under ASan)
// The order in which a block's threads first start. Reverse exposes kernels that silently rely on lower-numbered
// threads having run first (a missing __syncthreads).
enum class ThreadOrder { Forward, Reverse };
void set_thread_order(ThreadOrder order);
ThreadOrder thread_order();

struct Stats {
  uint64_t launches = 0, blocks = 0, thread_runs = 0, fiber_switches = 0;
};
Stats stats();
void reset_stats();

// Inside a kernel: the block's dynamic shared memory (poisoned with 0xff bytes at the start of every block).
unsigned char* dynamic_shared_memory();
size_t dynamic_shared_bytes();
bool in_kernel();

namespace detail {
struct Launch {
  const char* kernel_name = "kernel";
  const char* file = nullptr;
  int line = 0;
  dim3 grid, block;
  size_t dynamic_shared_bytes = 0;
  size_t dynamic_shared_limit = kDefaultSharedBytes;
  cudaStream_t stream = nullptr;
  void (*invoke)(const void* kernel) = nullptr;  // runs one CUDA thread
  const void* kernel = nullptr;
};
void run(const Launch& launch);
size_t dynamic_shared_limit(const void* kernel_function);  // raised by cudaFuncSetAttribute

enum class Collective : uint8_t { Shfl, Ballot, Any, All, Sync };
// Rendezvous of the lanes in `mask`; returns this lane's result. For Shfl, `value` is this lane's operand bits and
// `source_lane` the lane to read (already resolved per CUDA's width rules; own lane if out of range).
uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int source_lane, int width);
int barrier(int predicate_kind, int predicate);  // 0: plain, 1: count, 2: and, 3: or
unsigned active_mask();
unsigned lane_id();
void yield();

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move scalars of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <class T>
inline T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}
}  // namespace detail

// Runs `thread_body()` once per CUDA thread of the grid. Throws lethe::Error on an invalid configuration, on an
// exception escaping a thread, and on a barrier or warp collective that can never complete.
template <class F>
void launch(const char* kernel_name, dim3 grid, dim3 block, size_t dynamic_shared_bytes, F&& thread_body) {
  using Body = std::remove_reference_t<F>;
  detail::Launch l;
  l.kernel_name = kernel_name;
  l.grid = grid;
  l.block = block;
  l.dynamic_shared_bytes = dynamic_shared_bytes;
  l.invoke = [](const void* k) { (*static_cast<Body*>(const_cast<void*>(k)))(); };
  l.kernel = static_cast<const void*>(&thread_body);
  detail::run(l);
}
template <class F>
void launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes, F&& thread_body) {
  launch("kernel", grid, block, dynamic_shared_bytes, std::forward<F>(thread_body));
}

// What LETHE_LAUNCH calls on the host: the arguments are converted to the kernel's parameter types once, at launch,
// as CUDA copies kernel parameters; every thread then gets its own copies.
template <class... Params, class... Args>
void launch_kernel(const char* kernel_name, const char* file, int line, dim3 grid, dim3 block,
                   size_t dynamic_shared_bytes, cudaStream_t stream, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  struct Bound {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
  };
  const Bound bound{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  detail::Launch l;
  l.kernel_name = kernel_name;
  l.file = file;
  l.line = line;
  l.grid = grid;
  l.block = block;
  l.dynamic_shared_bytes = dynamic_shared_bytes;
  l.dynamic_shared_limit = detail::dynamic_shared_limit(reinterpret_cast<const void*>(kernel));
  l.stream = stream;
  l.invoke = [](const void* k) {
    const Bound& b = *static_cast<const Bound*>(k);
    std::apply(b.kernel, b.params);
  };
  l.kernel = &bound;
  detail::run(l);
}

}  // namespace lethe::sim

// ---------------------------------------------------------------------------------------------------------------------
// Synchronization and warp intrinsics.
inline void __syncthreads() { lethe::sim::detail::barrier(0, 0); }
inline int __syncthreads_count(int predicate) { return lethe::sim::detail::barrier(1, predicate); }
inline int __syncthreads_and(int predicate) { return lethe::sim::detail::barrier(2, predicate); }
inline int __syncthreads_or(int predicate) { return lethe::sim::detail::barrier(3, predicate); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  lethe::sim::detail::warp_collective(lethe::sim::detail::Collective::Sync, mask, 0, 0, 32);
}
inline unsigned __activemask() { return lethe::sim::detail::active_mask(); }
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(
      lethe::sim::detail::warp_collective(lethe::sim::detail::Collective::Ballot, mask, predicate != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(
      lethe::sim::detail::warp_collective(lethe::sim::detail::Collective::Any, mask, predicate != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(
      lethe::sim::detail::warp_collective(lethe::sim::detail::Collective::All, mask, predicate != 0, 0, 32));
}

// Shuffles. Source lanes follow the CUDA programming guide: the warp is split into segments of `width` lanes;
// __shfl_sync reads srcLane modulo width within the segment; up/down return the caller's own value when the source
// would leave the segment; xor may read earlier segments but returns the own value for a later one.
namespace lethe::sim::detail {
template <class T>
inline T shuffle(unsigned mask, T var, int source_lane, int width) {
  return from_bits<T>(warp_collective(Collective::Shfl, mask, to_bits(var), source_lane, width));
}
inline int segment_start(int width) { return static_cast<int>(lane_id()) & ~(width - 1); }
}  // namespace lethe::sim::detail

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  using namespace lethe::sim::detail;
  const int w = (width > 0 && width <= 32 && (width & (width - 1)) == 0) ? width : 32;
  return shuffle(mask, var, segment_start(w) + (srcLane & (w - 1)), width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace lethe::sim::detail;
  const int w = (width > 0 && width <= 32 && (width & (width - 1)) == 0) ? width : 32;
  const int lane = static_cast<int>(lane_id());
  const int in_segment = lane & (w - 1);
  const long long d = delta;
  const int source = in_segment < d ? lane : static_cast<int>(lane - d);
  return shuffle(mask, var, source, width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace lethe::sim::detail;
  const int w = (width > 0 && width <= 32 && (width & (width - 1)) == 0) ? width : 32;
  const int lane = static_cast<int>(lane_id());
  const int in_segment = lane & (w - 1);
  const long long d = delta;
  const int source = in_segment + d >= w ? lane : static_cast<int>(lane + d);
  return shuffle(mask, var, source, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  using namespace lethe::sim::detail;
  const int w = (width > 0 && width <= 32 && (width & (width - 1)) == 0) ? width : 32;
  const int lane = static_cast<int>(lane_id());
  const int source = lane ^ (laneMask & 31);
  const int segment_end = segment_start(w) + w;
  return shuffle(mask, var, source >= segment_end ? lane : source, width);
}

// ---------------------------------------------------------------------------------------------------------------------
// Atomics: real atomics, because blocks run concurrently. Relaxed, as CUDA's are; __threadfence orders them.
namespace lethe::sim::detail {
template <class T>
inline std::atomic_ref<T> atomic_at(T* address) {
  return std::atomic_ref<T>(*address);
}
template <class T, class Op>
inline T atomic_update(T* address, Op op) {
  auto a = atomic_at(address);
  T old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, op(old), std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace lethe::sim::detail

#define LETHE_SIM_ATOMIC_ARITH(T)                                                                                    \
  inline T atomicAdd(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_at(address).fetch_add(val, std::memory_order_relaxed);                         \
  }                                                                                                                  \
  inline T atomicSub(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_at(address).fetch_sub(val, std::memory_order_relaxed);                         \
  }                                                                                                                  \
  inline T atomicExch(T* address, T val) {                                                                           \
    return lethe::sim::detail::atomic_at(address).exchange(val, std::memory_order_relaxed);                          \
  }                                                                                                                  \
  inline T atomicMax(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_update(address, [val](T old) { return old < val ? val : old; });               \
  }                                                                                                                  \
  inline T atomicMin(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_update(address, [val](T old) { return val < old ? val : old; });               \
  }
LETHE_SIM_ATOMIC_ARITH(int)
LETHE_SIM_ATOMIC_ARITH(unsigned int)
LETHE_SIM_ATOMIC_ARITH(unsigned long long)
LETHE_SIM_ATOMIC_ARITH(long long)
LETHE_SIM_ATOMIC_ARITH(float)
LETHE_SIM_ATOMIC_ARITH(double)
#undef LETHE_SIM_ATOMIC_ARITH

#define LETHE_SIM_ATOMIC_BITS(T)                                                                                     \
  inline T atomicCAS(T* address, T compare, T val) {                                                                 \
    lethe::sim::detail::atomic_at(address).compare_exchange_strong(compare, val, std::memory_order_relaxed);         \
    return compare;                                                                                                  \
  }                                                                                                                  \
  inline T atomicAnd(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_at(address).fetch_and(val, std::memory_order_relaxed);                         \
  }                                                                                                                  \
  inline T atomicOr(T* address, T val) {                                                                             \
    return lethe::sim::detail::atomic_at(address).fetch_or(val, std::memory_order_relaxed);                          \
  }                                                                                                                  \
  inline T atomicXor(T* address, T val) {                                                                            \
    return lethe::sim::detail::atomic_at(address).fetch_xor(val, std::memory_order_relaxed);                         \
  }
LETHE_SIM_ATOMIC_BITS(int)
LETHE_SIM_ATOMIC_BITS(unsigned int)
LETHE_SIM_ATOMIC_BITS(unsigned long long)
#undef LETHE_SIM_ATOMIC_BITS
// CUDA's wrapping increment/decrement: ((old >= val) ? 0 : old + 1) and ((old == 0 || old > val) ? val : old - 1).
inline unsigned atomicInc(unsigned* address, unsigned val) {
  return lethe::sim::detail::atomic_update(address, [val](unsigned old) { return old >= val ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* address, unsigned val) {
  return lethe::sim::detail::atomic_update(address,
                                           [val](unsigned old) { return (old == 0 || old > val) ? val : old - 1; });
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// A sleeping thread lets the other fibers of its block run, so a polite spin-wait on a block-mate terminates.
inline void __nanosleep(unsigned) { lethe::sim::detail::yield(); }
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
template <class T>
inline T __ldg(const T* p) { return *p; }
template <class T>
inline T __ldcs(const T* p) { return *p; }
template <class T>
inline void __stcs(T* p, T v) { *p = v; }

// ---------------------------------------------------------------------------------------------------------------------
// Math intrinsics, mapped to <cmath>. The fast-math intrinsics are computed exactly here, which is within their
// documented error bounds on the device.
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline void sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0, as on the device
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(std::ceil(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(std::nearbyint(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1; }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
// CUDA's global min/max overloads for device code.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
