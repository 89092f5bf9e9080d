// Host stand-in for CUB's device-wide reductions (the subset Lethe's CUDA backend uses), for the kernel-simulator
// build. The block- and warp-level reductions are in cub/block/block_reduce.cuh and cub/warp/warp_reduce.cuh,
// included at the end, as the real cub.cuh includes everything.
//
// Follows the CUB documentation: every call first runs with d_temp_storage == nullptr, which writes the required
// size to temp_storage_bytes and does no other work; the second call must pass at least that many bytes, else
// cudaErrorInvalidValue (what CUB's storage aliasing returns). The simulator really writes the whole required temp
// range, so a buffer smaller than the size claimed is caught by AddressSanitizer. Results use a fixed tiled order
// (tiles of kTileItems summed left to right, then the tile partials left to right): deterministic run to run, like
// CUB on one GPU, but the rounding differs from a GPU's, so compare floating-point sums with a tolerance. Streams are
// accepted and ignored: work completes before the call returns. Empty inputs give what CUB documents: 0 for Sum,
// numeric_limits::lowest() for Max, max() for Min, init for Reduce, and index 1 with lowest()/max() for ArgMax/ArgMin.
// A segment with end <= begin is empty.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <new>
#include <type_traits>

namespace lethe::sim::cub_detail {

inline constexpr int64_t kTileItems = 256;

enum class TempStorage { query_answered, ready, too_small };

// Bytes of temp storage a device-wide reduction of num_items needs: one accumulator per tile, rounded up to 256
// bytes like CUB's allocations (never zero).
size_t reduce_temp_bytes(int64_t num_items, size_t accumulator_bytes);

// Bytes a segmented reduction needs (a small constant, as in CUB).
size_t segmented_temp_bytes();

// The two-phase protocol. Null storage: writes `required` to temp_storage_bytes (query_answered). Otherwise checks
// the size (too_small) and fills the first `required` bytes with a pattern (ready).
TempStorage claim_temp_storage(void* d_temp_storage, size_t& temp_storage_bytes, size_t required);

template <typename InputIt>
using input_value_t = typename std::iterator_traits<InputIt>::value_type;

// CUB accumulates in the output's value type when the output iterator has one, else in the input's.
template <typename OutputIt, typename Fallback>
using output_value_t =
    std::conditional_t<std::is_void_v<typename std::iterator_traits<OutputIt>::value_type>, Fallback,
                       typename std::iterator_traits<OutputIt>::value_type>;

}  // namespace lethe::sim::cub_detail

namespace cub {
// A distinct inline namespace keeps these host templates from ever sharing mangled names with the real CUB.
inline namespace lethe_sim {

template <typename _Key, typename _Value>
struct KeyValuePair {
  using Key = _Key;
  using Value = _Value;
  Key key;
  Value value;
  KeyValuePair() {}
  KeyValuePair(Key const& k, Value const& v) : key(k), value(v) {}
  bool operator!=(const KeyValuePair& b) { return (value != b.value) || (key != b.key); }
};

// Keeps the larger value; on ties the smaller offset (CUB's cub::ArgMax).
struct ArgMax {
  template <typename T, typename OffsetT>
  KeyValuePair<OffsetT, T> operator()(const KeyValuePair<OffsetT, T>& a, const KeyValuePair<OffsetT, T>& b) const {
    return ((b.value > a.value) || ((a.value == b.value) && (b.key < a.key))) ? b : a;
  }
};

// Keeps the smaller value; on ties the smaller offset (CUB's cub::ArgMin).
struct ArgMin {
  template <typename T, typename OffsetT>
  KeyValuePair<OffsetT, T> operator()(const KeyValuePair<OffsetT, T>& a, const KeyValuePair<OffsetT, T>& b) const {
    return ((b.value < a.value) || ((a.value == b.value) && (b.key < a.key))) ? b : a;
  }
};

namespace sim_detail {

struct Plus {
  template <typename A, typename B>
  auto operator()(const A& a, const B& b) const {
    return a + b;
  }
};
struct Maximum {
  template <typename T>
  T operator()(const T& a, const T& b) const {
    return a < b ? b : a;
  }
};
struct Minimum {
  template <typename T>
  T operator()(const T& a, const T& b) const {
    return b < a ? b : a;
  }
};

// Reduces items [0, num_items) of `item(i)` in the fixed tiled order, with one partial per tile kept in the temp
// storage (already validated to hold them). Returns op(init, total), or init for no items.
template <typename Accum, typename ItemFn, typename ReductionOp>
Accum tiled_reduce(void* d_temp_storage, int64_t num_items, ItemFn item, ReductionOp op, Accum init) {
  if (num_items <= 0) return init;
  auto* partials = static_cast<Accum*>(d_temp_storage);
  const int64_t tiles = (num_items + lethe::sim::cub_detail::kTileItems - 1) / lethe::sim::cub_detail::kTileItems;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t begin = t * lethe::sim::cub_detail::kTileItems;
    const int64_t end = std::min<int64_t>(begin + lethe::sim::cub_detail::kTileItems, num_items);
    Accum partial = static_cast<Accum>(item(begin));
    for (int64_t i = begin + 1; i < end; ++i) partial = static_cast<Accum>(op(partial, item(i)));
    ::new (static_cast<void*>(partials + t)) Accum(partial);
  }
  Accum total = partials[0];
  for (int64_t t = 1; t < tiles; ++t) total = static_cast<Accum>(op(total, partials[t]));
  return static_cast<Accum>(op(init, total));
}

template <typename Accum, typename InputIt, typename OutputIt, typename ReductionOp>
cudaError_t reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIt d_in, OutputIt d_out, int64_t num_items,
                   ReductionOp op, Accum init) {
  using namespace lethe::sim::cub_detail;
  if (num_items < 0) return cudaErrorInvalidValue;
  switch (claim_temp_storage(d_temp_storage, temp_storage_bytes, reduce_temp_bytes(num_items, sizeof(Accum)))) {
    case TempStorage::query_answered: return cudaSuccess;
    case TempStorage::too_small: return cudaErrorInvalidValue;
    case TempStorage::ready: break;
  }
  *d_out = tiled_reduce<Accum>(d_temp_storage, num_items, [&](int64_t i) { return d_in[i]; }, op, init);
  return cudaSuccess;
}

// Arg-extremum over (offset, value) pairs; empty input gives {1, empty_value}.
template <typename OffsetT, typename InputIt, typename ArgOp, typename Value>
cudaError_t arg_reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIt d_in, int64_t num_items, ArgOp op,
                       Value empty_value, KeyValuePair<OffsetT, Value>& result, bool& wrote) {
  using namespace lethe::sim::cub_detail;
  using Pair = KeyValuePair<OffsetT, Value>;
  wrote = false;
  if (num_items < 0) return cudaErrorInvalidValue;
  switch (claim_temp_storage(d_temp_storage, temp_storage_bytes, reduce_temp_bytes(num_items, sizeof(Pair)))) {
    case TempStorage::query_answered: return cudaSuccess;
    case TempStorage::too_small: return cudaErrorInvalidValue;
    case TempStorage::ready: break;
  }
  if (num_items == 0) {
    result = Pair(OffsetT(1), empty_value);
  } else {
    auto item = [&](int64_t i) { return Pair(static_cast<OffsetT>(i), static_cast<Value>(d_in[i])); };
    // The first item seeds the reduction, so no artificial init value competes with real items.
    result = tiled_reduce<Pair>(d_temp_storage, num_items, item, op, item(0));
  }
  wrote = true;
  return cudaSuccess;
}

template <typename Accum, typename InputIt, typename OutputIt, typename BeginIt, typename EndIt, typename ReductionOp>
cudaError_t segmented_reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIt d_in, OutputIt d_out,
                             int64_t num_segments, BeginIt d_begin_offsets, EndIt d_end_offsets, ReductionOp op,
                             Accum init) {
  using namespace lethe::sim::cub_detail;
  if (num_segments < 0) return cudaErrorInvalidValue;
  switch (claim_temp_storage(d_temp_storage, temp_storage_bytes, segmented_temp_bytes())) {
    case TempStorage::query_answered: return cudaSuccess;
    case TempStorage::too_small: return cudaErrorInvalidValue;
    case TempStorage::ready: break;
  }
  for (int64_t s = 0; s < num_segments; ++s) {
    const int64_t begin = static_cast<int64_t>(d_begin_offsets[s]);
    const int64_t end = static_cast<int64_t>(d_end_offsets[s]);
    Accum result = init;
    if (end > begin) {
      // One segment is reduced left to right, as one CUB thread block does per segment.
      result = static_cast<Accum>(d_in[begin]);
      for (int64_t i = begin + 1; i < end; ++i) result = static_cast<Accum>(op(result, d_in[i]));
      result = static_cast<Accum>(op(init, result));
    }
    d_out[s] = result;
  }
  return cudaSuccess;
}

}  // namespace sim_detail

struct DeviceReduce {
  template <typename InputIteratorT, typename OutputIteratorT, typename ReductionOpT, typename T, typename NumItemsT>
  static cudaError_t Reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            OutputIteratorT d_out, NumItemsT num_items, ReductionOpT reduction_op, T init,
                            cudaStream_t stream = 0) {
    (void)stream;
    return sim_detail::reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, static_cast<int64_t>(num_items),
                                 reduction_op, init);
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename NumItemsT>
  static cudaError_t Sum(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         NumItemsT num_items, cudaStream_t stream = 0) {
    (void)stream;
    using namespace lethe::sim::cub_detail;
    using Accum = output_value_t<OutputIteratorT, input_value_t<InputIteratorT>>;
    return sim_detail::reduce<Accum>(d_temp_storage, temp_storage_bytes, d_in, d_out,
                                     static_cast<int64_t>(num_items), sim_detail::Plus{}, Accum{});
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename NumItemsT>
  static cudaError_t Max(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         NumItemsT num_items, cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    return sim_detail::reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, static_cast<int64_t>(num_items),
                                 sim_detail::Maximum{}, std::numeric_limits<T>::lowest());
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename NumItemsT>
  static cudaError_t Min(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         NumItemsT num_items, cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    return sim_detail::reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, static_cast<int64_t>(num_items),
                                 sim_detail::Minimum{}, std::numeric_limits<T>::max());
  }

  // Deprecated in CUB, still provided: writes KeyValuePair<int, T>{offset, max} to *d_out.
  template <typename InputIteratorT, typename OutputIteratorT>
  static cudaError_t ArgMax(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            OutputIteratorT d_out, int num_items, cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    KeyValuePair<int, T> result;
    bool wrote = false;
    const cudaError_t error = sim_detail::arg_reduce<int>(d_temp_storage, temp_storage_bytes, d_in, num_items,
                                                          cub::ArgMax{}, std::numeric_limits<T>::lowest(), result,
                                                          wrote);
    if (wrote) *d_out = result;
    return error;
  }

  // Writes the maximum to *d_max_out and its first offset (int64) to *d_index_out.
  template <typename InputIteratorT, typename ExtremumOutIteratorT, typename IndexOutIteratorT>
  static cudaError_t ArgMax(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            ExtremumOutIteratorT d_max_out, IndexOutIteratorT d_index_out, int64_t num_items,
                            cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    KeyValuePair<int64_t, T> result;
    bool wrote = false;
    const cudaError_t error = sim_detail::arg_reduce<int64_t>(d_temp_storage, temp_storage_bytes, d_in, num_items,
                                                              cub::ArgMax{}, std::numeric_limits<T>::lowest(),
                                                              result, wrote);
    if (wrote) {
      *d_max_out = result.value;
      *d_index_out = result.key;
    }
    return error;
  }

  template <typename InputIteratorT, typename OutputIteratorT>
  static cudaError_t ArgMin(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            OutputIteratorT d_out, int num_items, cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    KeyValuePair<int, T> result;
    bool wrote = false;
    const cudaError_t error = sim_detail::arg_reduce<int>(d_temp_storage, temp_storage_bytes, d_in, num_items,
                                                          cub::ArgMin{}, std::numeric_limits<T>::max(), result, wrote);
    if (wrote) *d_out = result;
    return error;
  }

  template <typename InputIteratorT, typename ExtremumOutIteratorT, typename IndexOutIteratorT>
  static cudaError_t ArgMin(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            ExtremumOutIteratorT d_min_out, IndexOutIteratorT d_index_out, int64_t num_items,
                            cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    KeyValuePair<int64_t, T> result;
    bool wrote = false;
    const cudaError_t error = sim_detail::arg_reduce<int64_t>(d_temp_storage, temp_storage_bytes, d_in, num_items,
                                                              cub::ArgMin{}, std::numeric_limits<T>::max(), result,
                                                              wrote);
    if (wrote) {
      *d_min_out = result.value;
      *d_index_out = result.key;
    }
    return error;
  }
};

struct DeviceSegmentedReduce {
  template <typename InputIteratorT, typename OutputIteratorT, typename BeginOffsetIteratorT,
            typename EndOffsetIteratorT, typename ReductionOpT, typename T>
  static cudaError_t Reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                            OutputIteratorT d_out, int64_t num_segments, BeginOffsetIteratorT d_begin_offsets,
                            EndOffsetIteratorT d_end_offsets, ReductionOpT reduction_op, T initial_value,
                            cudaStream_t stream = 0) {
    (void)stream;
    return sim_detail::segmented_reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, num_segments,
                                           d_begin_offsets, d_end_offsets, reduction_op, initial_value);
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename BeginOffsetIteratorT,
            typename EndOffsetIteratorT>
  static cudaError_t Sum(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         int64_t num_segments, BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                         cudaStream_t stream = 0) {
    (void)stream;
    using namespace lethe::sim::cub_detail;
    using Accum = output_value_t<OutputIteratorT, input_value_t<InputIteratorT>>;
    return sim_detail::segmented_reduce<Accum>(d_temp_storage, temp_storage_bytes, d_in, d_out, num_segments,
                                               d_begin_offsets, d_end_offsets, sim_detail::Plus{}, Accum{});
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename BeginOffsetIteratorT,
            typename EndOffsetIteratorT>
  static cudaError_t Max(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         int64_t num_segments, BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                         cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    return sim_detail::segmented_reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, num_segments,
                                           d_begin_offsets, d_end_offsets, sim_detail::Maximum{},
                                           std::numeric_limits<T>::lowest());
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename BeginOffsetIteratorT,
            typename EndOffsetIteratorT>
  static cudaError_t Min(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in, OutputIteratorT d_out,
                         int64_t num_segments, BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                         cudaStream_t stream = 0) {
    (void)stream;
    using T = lethe::sim::cub_detail::input_value_t<InputIteratorT>;
    return sim_detail::segmented_reduce<T>(d_temp_storage, temp_storage_bytes, d_in, d_out, num_segments,
                                           d_begin_offsets, d_end_offsets, sim_detail::Minimum{},
                                           std::numeric_limits<T>::max());
  }
};

}  // namespace lethe_sim
}  // namespace cub

#include "cub/block/block_reduce.cuh"
#include "cub/warp/warp_reduce.cuh"
