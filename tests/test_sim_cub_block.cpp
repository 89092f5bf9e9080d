// The simulator's stand-ins for CUB's block- and warp-level reductions (kernels/sim/include/cub/block,
// cub/warp): results in thread (lane) 0 against host references, partial inputs, 2-d blocks, and the misuse that
// CUB leaves undefined (a wrong block shape, a call from only some threads, reading another thread's result).
#include <cub/cub.cuh>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/launch.h"
#include "tests/test_util.h"

namespace lethe::LETHE_CUDA_NS {
namespace {

std::vector<double> random_doubles(size_t n, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(engine);
  return v;
}

using BlockSum256 = cub::BlockReduce<double, 256>;

// Every block sums its 256 inputs; thread 0 writes the total, every thread records what it got.
__global__ void block_sum_kernel(const double* in, double* totals, double* per_thread, int num_valid) {
  __shared__ BlockSum256::TempStorage storage;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const double total = num_valid == 256 ? BlockSum256(storage).Sum(in[i]) : BlockSum256(storage).Sum(in[i], num_valid);
  per_thread[i] = total;
  if (threadIdx.x == 0) totals[blockIdx.x] = total;
}

TEST_CASE("sim cub: BlockReduce sums a block in thread 0 and only there") {
  const int blocks = 5;
  const std::vector<double> in = random_doubles(blocks * 256, 11);
  for (const int num_valid : {256, 200, 1}) {
    INFO("num_valid=", num_valid);
    std::vector<double> totals(blocks, -1.0), per_thread(in.size(), -1.0);
    LETHE_LAUNCH(block_sum_kernel, blocks, 256, 0, nullptr, in.data(), totals.data(), per_thread.data(), num_valid);
    for (int b = 0; b < blocks; ++b) {
      double expected = 0.0, magnitude = 0.0;
      for (int t = 0; t < num_valid; ++t) {
        expected += in[b * 256 + t];
        magnitude += std::fabs(in[b * 256 + t]);
      }
      CHECK(std::fabs(totals[b] - expected) <= 1e-14 * magnitude);
      // Reading the result anywhere but thread 0 is a bug CUB does not report; here it reads NaN.
      for (int t = 1; t < 256; ++t) REQUIRE(std::isnan(per_thread[b * 256 + t]));
    }
  }
}

TEST_CASE("sim cub: BlockReduce is deterministic and does not depend on the worker count") {
  const std::vector<double> in = random_doubles(64 * 256, 12);
  std::vector<double> first(64), second(64), scratch(in.size());
  LETHE_LAUNCH(block_sum_kernel, 64, 256, 0, nullptr, in.data(), first.data(), scratch.data(), 256);
  const int workers = sim::worker_count();
  sim::set_worker_count(1);
  LETHE_LAUNCH(block_sum_kernel, 64, 256, 0, nullptr, in.data(), second.data(), scratch.data(), 256);
  sim::set_worker_count(workers);
  CHECK(first == second);
}

// Threads 128.. return before the reduction's barrier: undefined in CUB (a hang or garbage), an error here.
__global__ void half_block_sum_kernel(const double* in, double* totals) {
  __shared__ BlockSum256::TempStorage storage;
  if (threadIdx.x >= 128) return;
  const double total = BlockSum256(storage).Sum(in[threadIdx.x]);
  if (threadIdx.x == 0) totals[0] = total;
}

struct MaxOp {
  __device__ int operator()(int a, int b) const { return a < b ? b : a; }
};
using BlockInt2d = cub::BlockReduce<int, 32, cub::BLOCK_REDUCE_WARP_REDUCTIONS, 4>;

// A 32x4 block: sums of an array per thread, and a maximum with a custom operator.
__global__ void block_2d_kernel(const int* in, int* out) {
  __shared__ BlockInt2d::TempStorage storage;
  const int t = threadIdx.x + 32 * threadIdx.y;
  int items[3] = {in[3 * t], in[3 * t + 1], in[3 * t + 2]};
  const int sum = BlockInt2d(storage).Sum(items);
  __syncthreads();  // storage is reused
  const int max = BlockInt2d(storage).Reduce(in[3 * t], MaxOp{});
  if (t == 0) {
    out[0] = sum;
    out[1] = max;
  }
}

TEST_CASE("sim cub: BlockReduce over a 2d block with items per thread and a custom operator") {
  std::vector<int> in(3 * 128);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>((i * 7919) % 1000) - 500;
  std::vector<int> out(2, 0);
  LETHE_LAUNCH(block_2d_kernel, 1, dim3(32, 4), 0, nullptr, in.data(), out.data());
  int max = in[0];
  for (size_t t = 0; t < 128; ++t) max = std::max(max, in[3 * t]);
  CHECK(out[0] == std::accumulate(in.begin(), in.end(), 0));
  CHECK(out[1] == max);
}

TEST_CASE("sim cub: BlockReduce in a block of the wrong shape or called by some threads is an error") {
  const std::vector<double> in = random_doubles(256, 13);
  std::vector<double> totals(1), per_thread(256);
  const std::string wrong_shape = test::error_of<lethe::Error>(
      [&] { LETHE_LAUNCH(block_sum_kernel, 1, 128, 0, nullptr, in.data(), totals.data(), per_thread.data(), 128); });
  CHECK(test::contains(wrong_shape, "cub::BlockReduce<256,1,1> used in a block of 128x1x1 threads"));
  const std::string divergent = test::error_of<lethe::Error>([&] {
    LETHE_LAUNCH(half_block_sum_kernel, 1, 256, 0, nullptr, in.data(), totals.data());
  });
  CHECK(test::contains(divergent, "barrier reached by only 128 of 256 threads"));
}

// Sums per logical warp of `Width` lanes, lanes >= valid contributing nothing; lane 0 of each writes its total.
template <int Width>
__global__ void warp_sum_kernel(const float* in, float* totals, float* per_lane, int valid) {
  using Reduce = cub::WarpReduce<float, Width>;
  __shared__ typename Reduce::TempStorage storage[256 / Width];
  const int t = threadIdx.x, warp = t / Width;
  const float total = valid == Width ? Reduce(storage[warp]).Sum(in[t]) : Reduce(storage[warp]).Sum(in[t], valid);
  per_lane[t] = total;
  if (t % Width == 0) totals[warp] = total;
}

template <int Width>
void check_warp_sums(int threads, int valid) {
  INFO("width=", Width, " threads=", threads, " valid=", valid);
  std::vector<float> in(threads);
  for (int i = 0; i < threads; ++i) in[i] = static_cast<float>((i * 37) % 19) - 9.0f;  // exact in float
  const int warps = (threads + Width - 1) / Width;
  std::vector<float> totals(warps, -1.0f), per_lane(threads, -1.0f);
  LETHE_LAUNCH((warp_sum_kernel<Width>), 1, threads, 0, nullptr, in.data(), totals.data(), per_lane.data(), valid);
  for (int w = 0; w < warps; ++w) {
    float expected = 0.0f;
    for (int lane = 0; lane < valid && w * Width + lane < threads; ++lane) expected += in[w * Width + lane];
    CHECK(totals[w] == expected);
    for (int lane = 1; lane < Width && w * Width + lane < threads; ++lane) CHECK(std::isnan(per_lane[w * Width + lane]));
  }
}

TEST_CASE("sim cub: WarpReduce sums each logical warp in its lane 0") {
  check_warp_sums<32>(256, 32);
  check_warp_sums<32>(96, 20);
  check_warp_sums<32>(80, 32);  // a partial last warp of 16 lanes
  check_warp_sums<16>(256, 16);
  check_warp_sums<16>(64, 5);
  check_warp_sums<4>(32, 3);
}

}  // namespace
}  // namespace lethe::LETHE_CUDA_NS
