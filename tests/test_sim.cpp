// The kernel simulator: CUDA thread/block geometry, barriers, warp collectives, shared memory, atomics, launch checks
// and the runtime stand-ins, each against values computed independently on the host.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "kernels/launch.h"

namespace lethe::LETHE_CUDA_NS {
namespace {

// Records, for every thread of the grid, its coordinates and the grid/block shape it saw.
struct Seen {
  unsigned tx, ty, tz, bx, by, bz, dx, dy, dz, gx, gy, gz, hits;
};
__global__ void record_indices(Seen* seen, unsigned total) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned id = block * (blockDim.x * blockDim.y * blockDim.z) + thread;
  if (id >= total) return;
  Seen& s = seen[id];
  s = Seen{threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
           blockDim.x,  blockDim.y,  blockDim.z,  gridDim.x,  gridDim.y,  gridDim.z, s.hits + 1};
}

void check_indices(dim3 grid, dim3 block) {
  const unsigned per_block = block.x * block.y * block.z;
  const unsigned total = grid.x * grid.y * grid.z * per_block;
  std::vector<Seen> seen(total, Seen{});
  LETHE_LAUNCH(record_indices, grid, block, 0, nullptr, seen.data(), total);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx) {
              const unsigned b = bx + grid.x * (by + grid.y * bz);
              const unsigned id = b * per_block + tx + block.x * (ty + block.y * tz);
              const Seen& s = seen[id];
              REQUIRE(s.hits == 1);
              CHECK((s.tx == tx && s.ty == ty && s.tz == tz));
              CHECK((s.bx == bx && s.by == by && s.bz == bz));
              CHECK((s.dx == block.x && s.dy == block.y && s.dz == block.z));
              CHECK((s.gx == grid.x && s.gy == grid.y && s.gz == grid.z));
            }
}

TEST_CASE("sim: thread and block indices cover 1D 2D and 3D grids") {
  check_indices(dim3(7), dim3(33));
  check_indices(dim3(3, 5), dim3(7, 3));
  check_indices(dim3(2, 3, 4), dim3(5, 3, 2));
  check_indices(dim3(1), dim3(1024));
  check_indices(dim3(1), dim3(1, 1, 64));
}

// Classic shared-memory tree: each block sums blockDim.x elements (zero beyond n).
__global__ void block_sum_shared(const float* in, float* out, int n) {
  __shared__ float partial[256];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  partial[threadIdx.x] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Integer-valued inputs keep every partial sum exact, so the block sums compare exactly in any order.
std::vector<float> ramp(int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>((i * 7) % 13 - 6);
  return v;
}
std::vector<float> block_sums(const std::vector<float>& in, int block) {
  std::vector<float> out((in.size() + static_cast<size_t>(block) - 1) / static_cast<size_t>(block), 0.0f);
  for (size_t i = 0; i < in.size(); ++i) out[i / static_cast<size_t>(block)] += in[i];
  return out;
}

TEST_CASE("sim: shared memory tree reduction with syncthreads") {
  const int n = 1000;  // not a multiple of the block
  const auto in = ramp(n);
  std::vector<float> out(4, -1.0f);
  LETHE_LAUNCH(block_sum_shared, 4, 256, 0, nullptr, in.data(), out.data(), n);
  CHECK(out == block_sums(in, 256));
  // The same kernel with the threads started in reverse: a missing barrier would show up in one of the orders.
  lethe::sim::set_thread_order(lethe::sim::ThreadOrder::Reverse);
  std::vector<float> reversed(4, -1.0f);
  LETHE_LAUNCH(block_sum_shared, 4, 256, 0, nullptr, in.data(), reversed.data(), n);
  lethe::sim::set_thread_order(lethe::sim::ThreadOrder::Forward);
  CHECK(reversed == out);
}

// Warp sums with __shfl_down_sync, combined across warps through shared memory.
__global__ void block_sum_shfl_down(const float* in, float* out, int n) {
  __shared__ float warp_sums[32];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? in[i] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + 31) / 32;
    float w = lane < warps ? warp_sums[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) w += __shfl_down_sync(0xffffffffu, w, offset);
    if (lane == 0) out[blockIdx.x] = w;
  }
}

// Butterfly: after the xor rounds every lane holds the warp's sum.
__global__ void warp_sum_xor(const float* in, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = in[i];
  for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
  out[i] = v;
}

TEST_CASE("sim: warp reductions with shfl_down and shfl_xor butterflies") {
  const int n = 1000;
  const auto in = ramp(n);
  std::vector<float> out(8, -1.0f);
  LETHE_LAUNCH(block_sum_shfl_down, 8, 128, 0, nullptr, in.data(), out.data(), n);
  CHECK(out == block_sums(in, 128));

  const auto in2 = ramp(256);
  std::vector<float> all(256, -1.0f);
  LETHE_LAUNCH(warp_sum_xor, 2, 128, 0, nullptr, in2.data(), all.data());
  const auto sums = block_sums(in2, 32);
  for (int i = 0; i < 256; ++i) CHECK(all[static_cast<size_t>(i)] == sums[static_cast<size_t>(i / 32)]);
}

// Every lane's results for the shuffle variants with sub-warp widths and out-of-range sources.
struct ShuffleResults {
  int idx_w8, idx_neg, up3, down5_w16, xor8_w8, xor1;
};
__global__ void shuffle_variants(ShuffleResults* out) {
  const int lane = threadIdx.x;
  const int v = 100 + lane;
  ShuffleResults r;
  r.idx_w8 = __shfl_sync(0xffffffffu, v, 10, 8);    // 10 mod 8 = 2 within each 8-lane segment
  r.idx_neg = __shfl_sync(0xffffffffu, v, -1);      // -1 mod 32 = 31
  r.up3 = __shfl_up_sync(0xffffffffu, v, 3);        // lanes 0..2 keep their own value
  r.down5_w16 = __shfl_down_sync(0xffffffffu, v, 5, 16);  // leaving a 16-lane segment keeps the own value
  r.xor8_w8 = __shfl_xor_sync(0xffffffffu, v, 8, 8);      // a later segment: own value; an earlier one: read
  r.xor1 = __shfl_xor_sync(0xffffffffu, v, 1);
  out[lane] = r;
}

TEST_CASE("sim: shuffle widths and out of range source lanes follow CUDA") {
  std::vector<ShuffleResults> out(32);
  LETHE_LAUNCH(shuffle_variants, 1, 32, 0, nullptr, out.data());
  for (int lane = 0; lane < 32; ++lane) {
    const ShuffleResults& r = out[static_cast<size_t>(lane)];
    CAPTURE(lane);
    CHECK(r.idx_w8 == 100 + (lane & ~7) + 2);
    CHECK(r.idx_neg == 131);
    CHECK(r.up3 == (lane < 3 ? 100 + lane : 100 + lane - 3));
    CHECK(r.down5_w16 == ((lane % 16) + 5 >= 16 ? 100 + lane : 100 + lane + 5));
    const int source = lane ^ 8;
    CHECK(r.xor8_w8 == (source >= (lane & ~7) + 8 ? 100 + lane : 100 + source));
    CHECK(r.xor1 == 100 + (lane ^ 1));
  }
}

__global__ void shuffle_bad_width(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0, 12); }

TEST_CASE("sim: shuffle with a width that is not a power of two is an error") {
  std::vector<int> out(32);
  try {
    LETHE_LAUNCH(shuffle_bad_width, 1, 32, 0, nullptr, out.data());
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    CHECK(std::string(e.what()).find("width 12 is not a power of two") != std::string::npos);
  }
}

struct Votes {
  unsigned ballot, active;
  int any, all_lanes, all_even;
};
__global__ void vote(Votes* out) {
  const int lane = threadIdx.x % 32;
  Votes v;
  v.ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  v.active = __activemask();
  v.any = __any_sync(0xffffffffu, lane == 5);
  v.all_lanes = __all_sync(0xffffffffu, lane < 32);
  v.all_even = __all_sync(0xffffffffu, lane % 2 == 0);
  out[threadIdx.x] = v;
}

TEST_CASE("sim: ballot any all and activemask including a partial warp") {
  std::vector<Votes> out(40);  // warp 1 has only 8 lanes
  LETHE_LAUNCH(vote, 1, 40, 0, nullptr, out.data());
  unsigned every_third = 0;
  for (int l = 0; l < 32; l += 3) every_third |= 1u << l;
  for (int t = 0; t < 40; ++t) {
    const Votes& v = out[static_cast<size_t>(t)];
    const unsigned lanes = t < 32 ? 0xffffffffu : 0xffu;
    CAPTURE(t);
    CHECK(v.ballot == (every_third & lanes));
    CHECK(v.active == lanes);
    CHECK(v.any == 1);
    CHECK(v.all_lanes == 1);
    CHECK(v.all_even == 0);
  }
}

// Lanes 0..15 and 16..31 run independent collectives with disjoint masks at the same time.
__global__ void half_warp_groups(int* out) {
  const int lane = threadIdx.x;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = lane;
  for (int offset = 8; offset > 0; offset /= 2) v += __shfl_xor_sync(mask, v, offset, 16);
  __syncwarp(mask);
  out[lane] = v;
}

TEST_CASE("sim: disjoint masks form independent warp collectives") {
  std::vector<int> out(32);
  LETHE_LAUNCH(half_warp_groups, 1, 32, 0, nullptr, out.data());
  for (int lane = 0; lane < 32; ++lane) CHECK(out[static_cast<size_t>(lane)] == (lane < 16 ? 120 : 376));
}

__global__ void count_and_sum(unsigned* count, float* sum, int* max_id, unsigned long long* big) {
  const int id = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(count, 1u);
  atomicAdd(sum, 0.1f);
  atomicMax(max_id, id);
  atomicAdd(big, 1ull << 33);
}

TEST_CASE("sim: atomics across concurrently running blocks") {
  unsigned count = 0;
  float sum = 0.0f;
  int max_id = -1;
  unsigned long long big = 0;
  LETHE_LAUNCH(count_and_sum, 64, 256, 0, nullptr, &count, &sum, &max_id, &big);
  CHECK(count == 64u * 256u);
  CHECK(sum == doctest::Approx(0.1 * 64 * 256).epsilon(1e-3));
  CHECK(max_id == 64 * 256 - 1);
  CHECK(big == (1ull << 33) * 64 * 256);
  int x = 5;
  CHECK(atomicCAS(&x, 5, 9) == 5);
  CHECK(x == 9);
  CHECK(atomicCAS(&x, 5, 11) == 9);
  CHECK(x == 9);
  unsigned wrap = 3;
  CHECK(atomicInc(&wrap, 3u) == 3u);
  CHECK(wrap == 0u);
}

// Each block reverses its slice through dynamic shared memory.
__global__ void reverse_in_block(const int* in, int* out, int* saw_poison) {
  LETHE_DYNAMIC_SHARED(int, buffer);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (threadIdx.x == 0 && buffer[blockDim.x - 1] == -1) atomicAdd(saw_poison, 1);
  __syncthreads();
  buffer[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = buffer[blockDim.x - 1 - threadIdx.x];
}

__global__ void touch_dynamic_shared(int* out) {
  LETHE_DYNAMIC_SHARED(unsigned char, bytes);
  bytes[threadIdx.x] = 1;
  out[0] = static_cast<int>(lethe::sim::dynamic_shared_bytes());
}

TEST_CASE("sim: dynamic shared memory is per block and its limit needs an opt in") {
  std::vector<int> in(3 * 96), out(in.size(), 0);
  std::iota(in.begin(), in.end(), 0);
  int saw_poison = 0;
  LETHE_LAUNCH(reverse_in_block, 3, 96, 96 * sizeof(int), nullptr, in.data(), out.data(), &saw_poison);
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 96; ++t) CHECK(out[static_cast<size_t>(b * 96 + t)] == b * 96 + 95 - t);
  CHECK(saw_poison == 3);  // every block starts with fresh all-ones bytes

  int size_seen = 0;
  try {
    LETHE_LAUNCH(touch_dynamic_shared, 1, 32, 48 * 1024 + 1, nullptr, &size_seen);
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("49153 bytes of dynamic shared memory") != std::string::npos);
    CHECK(what.find("touch_dynamic_shared") != std::string::npos);
  }
  REQUIRE(cudaFuncSetAttribute(touch_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) ==
          cudaSuccess);
  LETHE_LAUNCH(touch_dynamic_shared, 1, 32, 64 * 1024, nullptr, &size_seen);
  CHECK(size_seen == 64 * 1024);
  CHECK(cudaFuncSetAttribute(touch_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
        cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
}

// The undefined-in-CUDA pattern: half the block leaves, the other half waits at a barrier.
__global__ void divergent_barrier(int* out) {
  if (threadIdx.x % 2 == 1) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST_CASE("sim: a barrier reached by only some threads is an error not a hang") {
  std::vector<int> out(32);
  try {
    LETHE_LAUNCH(divergent_barrier, dim3(2, 1, 1), 32, 0, nullptr, out.data());
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("kernel divergent_barrier") != std::string::npos);
    CHECK(what.find("test_sim.cpp") != std::string::npos);
    CHECK(what.find("barrier reached by only 16 of 32 threads of block (0,0,0)") != std::string::npos);
    CHECK(what.find("exited without reaching it (first: thread (1,0,0))") != std::string::npos);
  }
  // The simulator is usable again after a failed launch.
  std::vector<float> sums(1);
  const auto in = ramp(256);
  LETHE_LAUNCH(block_sum_shared, 1, 256, 0, nullptr, in.data(), sums.data(), 256);
  CHECK(sums[0] == block_sums(in, 256)[0]);
}

__global__ void shuffle_with_exited_lane(int* out) {
  if (threadIdx.x == 7) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}

TEST_CASE("sim: a warp collective naming an exited lane is an error") {
  std::vector<int> out(32);
  try {
    LETHE_LAUNCH(shuffle_with_exited_lane, 1, 32, 0, nullptr, out.data());
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("__shfl_sync with mask 0xffffffff") != std::string::npos);
    CHECK(what.find("lane 7") != std::string::npos);
    CHECK(what.find("exited") != std::string::npos);
  }
}

__global__ void noop(int*) {}

TEST_CASE("sim: invalid launch configurations are rejected like CUDA") {
  int x = 0;
  auto rejects = [&](dim3 grid, dim3 block, size_t shared, const char* expect) {
    try {
      LETHE_LAUNCH(noop, grid, block, shared, nullptr, &x);
      FAIL("expected an error for " << expect);
    } catch (const lethe::Error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find("invalid launch configuration") != std::string::npos);
      CHECK(what.find(expect) != std::string::npos);
    }
  };
  rejects(dim3(1), dim3(1025), 0, "1024");
  rejects(dim3(1), dim3(32, 32, 2), 0, "2048 threads");
  rejects(dim3(1), dim3(1, 1, 65), 0, "(1024, 1024, 64)");
  rejects(dim3(0), dim3(32), 0, "zero dimension");
  rejects(dim3(1), dim3(32, 0), 0, "zero dimension");
  rejects(dim3(1, 65536), dim3(32), 0, "exceeds the limits");
  rejects(dim3(1, 1, 65536), dim3(32), 0, "exceeds the limits");
  rejects(dim3(0x80000000u), dim3(32), 0, "exceeds the limits");
  rejects(dim3(1), dim3(32), 48 * 1024 + 1, "dynamic shared memory");
  // An integer that does not fit a grid dimension fails before it can wrap around.
  CHECK_THROWS_AS(LETHE_LAUNCH(noop, -1, 32, 0, nullptr, &x), lethe::Error);
  CHECK_THROWS_AS(LETHE_LAUNCH(noop, int64_t{1} << 40, 32, 0, nullptr, &x), lethe::Error);
  // A destroyed stream.
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  LETHE_LAUNCH(noop, 1, 1, 0, s, &x);
  REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
  CHECK_THROWS_AS(LETHE_LAUNCH(noop, 1, 1, 0, s, &x), lethe::Error);
  // Largest legal shapes still run.
  LETHE_LAUNCH(noop, dim3(1, 65535), dim3(1, 1, 64), 0, nullptr, &x);
}

__global__ void throws_at(int block, int thread) {
  if (static_cast<int>(blockIdx.x) == block && static_cast<int>(threadIdx.x) == thread)
    throw std::runtime_error("index 99 out of range");
  __syncthreads();
}

TEST_CASE("sim: an exception inside a kernel carries kernel block and thread") {
  try {
    LETHE_LAUNCH(throws_at, 4, 64, 0, nullptr, 2, 37);
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("kernel throws_at") != std::string::npos);
    CHECK(what.find("block (2,0,0) thread (37,0,0): index 99 out of range") != std::string::npos);
  }
  // A lambda launched directly.
  CHECK_THROWS_WITH_AS(lethe::sim::launch("lambda", dim3(1), dim3(4), 0,
                                          [] {
                                            if (threadIdx.x == 3) throw lethe::InputError("bad");
                                          }),
                       "kernel lambda: block (0,0,0) thread (3,0,0): bad", lethe::Error);
}

__global__ void saxpy_grid_stride(int n, float a, const float* x, float* y) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) y[i] = a * x[i] + y[i];
}

TEST_CASE("sim: grid stride loop over device memory") {
  const int n = 10007;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = static_cast<float>(i % 17);
    y[static_cast<size_t>(i)] = static_cast<float>(i % 5);
  }
  float *dx = nullptr, *dy = nullptr;
  LETHE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dx), n * sizeof(float)));
  LETHE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dy), n * sizeof(float)));
  LETHE_CUDA_CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  LETHE_CUDA_CHECK(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  LETHE_LAUNCH(saxpy_grid_stride, 5, 96, 0, nullptr, n, 2.0f, dx, dy);
  std::vector<float> got(n);
  LETHE_CUDA_CHECK(cudaMemcpy(got.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; ++i)
    REQUIRE(got[static_cast<size_t>(i)] == 2.0f * x[static_cast<size_t>(i)] + y[static_cast<size_t>(i)]);
  LETHE_CUDA_CHECK(cudaFree(dx));
  LETHE_CUDA_CHECK(cudaFree(dy));
}

TEST_CASE("sim: runtime memory allocation copies and memset") {
  void* d = nullptr;
  REQUIRE(cudaMalloc(&d, 1000) == cudaSuccess);
  CHECK(reinterpret_cast<uintptr_t>(d) % 256 == 0);
  auto* bytes = static_cast<unsigned char*>(d);
  CHECK(bytes[0] == 0xff);  // fresh device memory is poisoned
  CHECK(bytes[999] == 0xff);
  std::vector<unsigned char> host(1000), back(1000, 0);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<unsigned char>(i * 31);
  CHECK(cudaMemcpy(d, host.data(), 1000, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(back.data(), d, 1000, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(back == host);
  void* d2 = nullptr;
  REQUIRE(cudaMalloc(&d2, 1000) == cudaSuccess);
  CHECK(cudaMemcpy(d2, d, 1000, cudaMemcpyDeviceToDevice) == cudaSuccess);
  CHECK(cudaMemset(d, 7, 10) == cudaSuccess);
  CHECK(cudaMemcpy(back.data(), d, 1000, cudaMemcpyDefault) == cudaSuccess);
  CHECK(back[9] == 7);
  CHECK(back[10] == host[10]);
  CHECK(cudaMemcpy(back.data(), d2, 1000, cudaMemcpyDefault) == cudaSuccess);
  CHECK(back == host);
  CHECK(cudaGetLastError() == cudaSuccess);

  // Wrong direction, a range past the allocation, an unknown pointer: errors, recorded as the last error.
  CHECK(cudaMemcpy(host.data(), d, 1000, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);  // reading resets it
  CHECK(cudaMemcpy(d, host.data(), 1001, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(bytes + 500, host.data(), 501, cudaMemcpyDefault) == cudaErrorInvalidValue);
  CHECK(cudaMemset(bytes + 1, 0, 1000) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(d, host.data(), 10, static_cast<cudaMemcpyKind>(9)) == cudaErrorInvalidMemcpyDirection);
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  CHECK(cudaFree(bytes + 1) == cudaErrorInvalidValue);
  (void)cudaGetLastError();

  // LETHE_CUDA_CHECK names the call and clears the error it reports.
  try {
    LETHE_CUDA_CHECK(cudaFree(bytes + 1));
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("cudaFree(bytes + 1) failed: cudaErrorInvalidValue: invalid argument") != std::string::npos);
    CHECK(what.find("test_sim.cpp:") != std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);

  cudaPointerAttributes attributes;
  CHECK(cudaPointerGetAttributes(&attributes, bytes + 5) == cudaSuccess);
  CHECK(attributes.type == cudaMemoryTypeDevice);
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(cudaFree(d) == cudaErrorInvalidValue);  // double free
  CHECK(cudaFree(d2) == cudaSuccess);
  CHECK(cudaFree(nullptr) == cudaSuccess);
  (void)cudaGetLastError();

  void* zero = reinterpret_cast<void*>(1);
  CHECK(cudaMalloc(&zero, 0) == cudaSuccess);
  CHECK(zero == nullptr);
  void* pinned = nullptr;
  REQUIRE(cudaMallocHost(&pinned, 64) == cudaSuccess);
  void* dev = nullptr;
  REQUIRE(cudaMalloc(&dev, 64) == cudaSuccess);
  std::memset(pinned, 3, 64);
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  CHECK(cudaMemcpyAsync(dev, pinned, 64, cudaMemcpyHostToDevice, stream) == cudaSuccess);
  CHECK(cudaMemsetAsync(dev, 9, 32, stream) == cudaSuccess);
  CHECK(cudaMemcpyAsync(pinned, dev, 64, cudaMemcpyDeviceToHost, stream) == cudaSuccess);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(static_cast<unsigned char*>(pinned)[31] == 9);
  CHECK(static_cast<unsigned char*>(pinned)[32] == 3);
  CHECK(cudaFree(pinned) == cudaErrorInvalidValue);  // pinned host memory is freed with cudaFreeHost
  CHECK(cudaFreeHost(pinned) == cudaSuccess);
  CHECK(cudaFree(dev) == cudaSuccess);
  CHECK(cudaStreamDestroy(stream) == cudaSuccess);
  CHECK(cudaStreamDestroy(stream) == cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

TEST_CASE("sim: events measure host time and the device is described") {
  cudaEvent_t start = nullptr, stop = nullptr, untimed = nullptr;
  REQUIRE(cudaEventCreate(&start) == cudaSuccess);
  REQUIRE(cudaEventCreate(&stop) == cudaSuccess);
  REQUIRE(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming) == cudaSuccess);
  float ms = -1.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaErrorInvalidResourceHandle);  // not recorded yet
  CHECK(cudaEventRecord(start) == cudaSuccess);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(cudaEventRecord(stop, nullptr) == cudaSuccess);
  CHECK(cudaEventSynchronize(stop) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
  CHECK(ms >= 19.0f);
  CHECK(ms < 5000.0f);
  CHECK(cudaEventRecord(untimed) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, start, untimed) == cudaErrorInvalidResourceHandle);
  CHECK(cudaEventDestroy(start) == cudaSuccess);
  CHECK(cudaEventDestroy(stop) == cudaSuccess);
  CHECK(cudaEventDestroy(untimed) == cudaSuccess);
  CHECK(cudaEventDestroy(untimed) == cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();

  int count = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(std::string(prop.name) == "Lethe kernel simulator");
  CHECK(prop.major == 9);
  CHECK(prop.warpSize == 32);
  CHECK(prop.maxThreadsPerBlock == 1024);
  CHECK(prop.sharedMemPerBlock == 48 * 1024);
  CHECK(prop.multiProcessorCount == lethe::sim::worker_count());
  CHECK(cudaGetDeviceProperties(&prop, 1) == cudaErrorInvalidDevice);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
  CHECK(cudaSetDevice(0) == cudaSuccess);
  int value = 0;
  CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrWarpSize, 0) == cudaSuccess);
  CHECK(value == 32);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(cudaGetLastError() == cudaSuccess);
}

// Every predicate barrier and many rounds of plain barriers over the largest block.
__global__ void barrier_rounds(int* out, int rounds) {
  __shared__ int cell[1024];
  const int t = static_cast<int>(threadIdx.x);
  const int n = static_cast<int>(blockDim.x);
  cell[t] = t;
  for (int r = 0; r < rounds; ++r) {
    __syncthreads();
    const int next = cell[(t + 1) % n];
    __syncthreads();
    cell[t] = next;  // rotate left by one per round
  }
  __syncthreads();
  out[t] = cell[t];
  const int evens = __syncthreads_count(t % 2 == 0);
  const int all_small = __syncthreads_and(t < n);
  const int any_last = __syncthreads_or(t == n - 1);
  const int none = __syncthreads_or(0);
  if (t == 0) {
    out[n] = evens;
    out[n + 1] = all_small;
    out[n + 2] = any_last;
    out[n + 3] = none;
  }
}

TEST_CASE("sim: many barriers over a 1024 thread block and predicate barriers") {
  std::vector<int> out(1024 + 4, -1);
  LETHE_LAUNCH(barrier_rounds, 1, 1024, 0, nullptr, out.data(), 37);
  for (int t = 0; t < 1024; ++t) REQUIRE(out[static_cast<size_t>(t)] == (t + 37) % 1024);
  CHECK(out[1024] == 512);
  CHECK(out[1025] == 1);
  CHECK(out[1026] == 1);
  CHECK(out[1027] == 0);
}

// Lanes 0..15 name the whole warp while lanes 16..31 use only their half: a mask mismatch, reported loudly.
__global__ void mismatched_masks(int* out) {
  const unsigned mask = threadIdx.x < 16 ? 0xffffffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_sync(mask, 1, 16);
}

// One lane goes to __syncthreads while the rest of its warp waits for it in a shuffle.
__global__ void barrier_versus_shuffle(int* out) {
  if (threadIdx.x == 3) {
    __syncthreads();
    return;
  }
  out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  __syncthreads();
}

TEST_CASE("sim: mismatched warp masks and cross waits are errors") {
  std::vector<int> out(32);
  try {
    LETHE_LAUNCH(mismatched_masks, 1, 32, 0, nullptr, out.data());
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    CHECK(std::string(e.what()).find("must use the same mask") != std::string::npos);
  }
  try {
    LETHE_LAUNCH(barrier_versus_shuffle, 1, 32, 0, nullptr, out.data());
    FAIL("expected an error");
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(what.find("barrier reached by only 1 of 32 threads") != std::string::npos);
    CHECK(what.find("31 threads wait in warp collectives") != std::string::npos);
  }
}

// Thread t reads its neighbour's slot with no barrier in between: a bug that the start order decides.
__global__ void missing_barrier(int* out, int base) {
  __shared__ int slot[64];
  slot[threadIdx.x] = static_cast<int>(threadIdx.x) + base;
  out[threadIdx.x] = slot[(threadIdx.x + 63) % 64];
}

TEST_CASE("sim: reverse thread order exposes a missing barrier") {
  std::vector<int> forward(64, 0), reverse(64, 0);
  LETHE_LAUNCH(missing_barrier, 1, 64, 0, nullptr, forward.data(), 1000);
  lethe::sim::set_thread_order(lethe::sim::ThreadOrder::Reverse);
  LETHE_LAUNCH(missing_barrier, 1, 64, 0, nullptr, reverse.data(), 2000);
  lethe::sim::set_thread_order(lethe::sim::ThreadOrder::Forward);
  // Forward, thread t>0 sees thread t-1's value already written; reversed, it sees a stale one.
  CHECK(forward[5] == 1004);
  CHECK(reverse[5] == 1004);  // the previous launch's stale shared value, not 2004
  CHECK(reverse[0] == 2063);  // thread 63 ran first
}

// Thread 0 spins until the last thread of the block raises a flag; __nanosleep lets it run.
__global__ void spin_on_flag(int* out) {
  __shared__ int flag;
  if (threadIdx.x == 0) {
    flag = 0;
    int spins = 0;
    while (std::atomic_ref<int>(flag).load() == 0) {
      __nanosleep(100);
      ++spins;
    }
    out[0] = spins > 0 ? 1 : -1;
  }
  if (threadIdx.x == blockDim.x - 1) std::atomic_ref<int>(flag).store(1);
}

TEST_CASE("sim: nanosleep yields to the other threads of the block") {
  int out = 0;
  LETHE_LAUNCH(spin_on_flag, 1, 64, 0, nullptr, &out);
  CHECK(out == 1);
}

TEST_CASE("sim: fiber stack size can be changed between launches") {
  const size_t before = lethe::sim::fiber_stack_bytes();
  lethe::sim::set_fiber_stack_bytes(1024 * 1024);
  CHECK(lethe::sim::fiber_stack_bytes() == 1024 * 1024);
  std::vector<int> out(256 + 4, -1);
  LETHE_LAUNCH(barrier_rounds, 1, 256, 0, nullptr, out.data(), 3);
  for (int t = 0; t < 256; ++t) REQUIRE(out[static_cast<size_t>(t)] == (t + 3) % 256);
  lethe::sim::set_fiber_stack_bytes(before);
  LETHE_LAUNCH(barrier_rounds, 1, 256, 0, nullptr, out.data(), 5);
  for (int t = 0; t < 256; ++t) REQUIRE(out[static_cast<size_t>(t)] == (t + 5) % 256);
  CHECK_THROWS_AS(lethe::sim::set_fiber_stack_bytes(100), lethe::UsageError);
}

TEST_CASE("sim: barrier free blocks run on one fiber and results do not depend on the worker count") {
  lethe::sim::reset_stats();
  std::vector<Seen> seen(10 * 100, Seen{});
  LETHE_LAUNCH(record_indices, 10, 100, 0, nullptr, seen.data(), 1000u);
  const auto s = lethe::sim::stats();
  CHECK(s.launches == 1);
  CHECK(s.blocks == 10);
  CHECK(s.thread_runs == 1000);
  CHECK(s.fiber_switches == 2 * 10);  // into the block's one carrier and back, per block

  const int n = 5000;
  const auto in = ramp(n);
  const int before = lethe::sim::worker_count();
  std::vector<float> one((n + 255) / 256), many(one.size());
  lethe::sim::set_worker_count(1);
  CHECK(lethe::sim::worker_count() == 1);
  LETHE_LAUNCH(block_sum_shfl_down, static_cast<int>(one.size()), 256, 0, nullptr, in.data(), one.data(), n);
  lethe::sim::set_worker_count(3);
  LETHE_LAUNCH(block_sum_shfl_down, static_cast<int>(many.size()), 256, 0, nullptr, in.data(), many.data(), n);
  lethe::sim::set_worker_count(0);
  CHECK(lethe::sim::worker_count() == before);
  CHECK(one == many);
  CHECK(one == block_sums(in, 256));
}

TEST_CASE("sim: intrinsics outside a kernel and nested launches are errors") {
  CHECK_THROWS_AS(__syncthreads(), lethe::Error);
  CHECK_THROWS_AS(lethe::sim::dynamic_shared_memory(), lethe::Error);
  CHECK_THROWS_WITH_AS(lethe::sim::launch("outer", dim3(1), dim3(1), 0,
                                          [] { lethe::sim::launch("inner", dim3(1), dim3(1), 0, [] {}); }),
                       doctest::Contains("dynamic parallelism is not simulated"), lethe::Error);
  CHECK(__float_as_uint(1.0f) == 0x3f800000u);
  CHECK(__saturatef(-2.0f) == 0.0f);
  CHECK(__saturatef(std::nanf("")) == 0.0f);
  CHECK(__popc(0xf0f0u) == 8);
  CHECK(__ffs(8) == 4);
  CHECK(__brev(1u) == 0x80000000u);
  CHECK(__clz(1) == 31);
}

}  // namespace
}  // namespace lethe::LETHE_CUDA_NS
