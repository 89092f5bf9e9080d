// Non-template half of the CUB stand-in (kernels/sim/include/cub/cub.cuh): temp-storage sizing and the two-phase
// protocol shared by every device-wide call.
#include <cub/cub.cuh>

#include <cstring>

namespace lethe::sim::cub_detail {

namespace {
constexpr size_t kAllocationGranularity = 256;

size_t round_up(size_t bytes) {
  return (bytes + kAllocationGranularity - 1) / kAllocationGranularity * kAllocationGranularity;
}
}  // namespace

size_t reduce_temp_bytes(int64_t num_items, size_t accumulator_bytes) {
  const int64_t tiles = num_items <= 0 ? 1 : (num_items + kTileItems - 1) / kTileItems;
  return round_up(static_cast<size_t>(tiles) * accumulator_bytes);
}

size_t segmented_temp_bytes() { return kAllocationGranularity; }

TempStorage claim_temp_storage(void* d_temp_storage, size_t& temp_storage_bytes, size_t required) {
  if (d_temp_storage == nullptr) {
    temp_storage_bytes = required;
    return TempStorage::query_answered;
  }
  if (temp_storage_bytes < required) return TempStorage::too_small;
  // Touch every byte the query promised to need: an allocation smaller than claimed fails under AddressSanitizer,
  // and nothing may rely on temp storage contents surviving between calls.
  std::memset(d_temp_storage, 0xA5, required);
  return TempStorage::ready;
}

}  // namespace lethe::sim::cub_detail
