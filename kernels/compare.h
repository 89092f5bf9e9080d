#pragma once
// Fused parameter comparison, the parameter attacks' primitive: one pass over a target vector t and N auxiliary
// vectors a_j computes, for every segment s (a class's weight row, a layer, the whole model) and every j, the dot
// product a_j·t, ‖a_j‖², ‖t‖² and ‖a_j − t‖². Cosines, distances and norms of differences all follow from these four.
//
// Both backends reduce in one fixed structure that depends only on the bounds (never on the thread count or the
// device), like llm.c's deterministic two-pass reductions:
//   1. the plan cuts [bounds.front(), bounds.back()) into work items: the segment bounds plus every multiple of
//      kCompareTile inside a segment, so an item holds at most kCompareTile floats and never crosses a segment;
//   2. each item's sums are accumulated in float (compare_accumulate, per lane or per thread) and combined in double
//      into one partial per (item, aux vector);
//   3. each segment's items are summed in double, in item order.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/hd.h"

namespace lethe::kernels {

struct SegmentStats {
  double dot = 0;        // Σ a·t
  double aux_sq = 0;     // Σ a²
  double target_sq = 0;  // Σ t²
  double diff_sq = 0;    // Σ (a − t)², summed directly (not from the other three, which would cancel)
};
static_assert(sizeof(SegmentStats) == 4 * sizeof(double), "SegmentStats is read back from devices as 4 doubles");

// Rows of an auxiliary bank are padded to a multiple of 4 floats, so every row starts 16-byte aligned.
constexpr int64_t compare_row_stride(int64_t params) { return (params + 3) / 4 * 4; }

// The largest work item, in floats (16 KiB of each vector: the target's tile stays in L1 while the aux rows' tiles
// stream past it on the CPU; 1024 float4 loads per vector for a 256-thread block on the GPU).
constexpr int64_t kCompareTile = 4096;

// One element of aux vector a against the target t, accumulated in float (fused multiply-adds on both backends).
LETHE_HD void compare_accumulate(float a, float t, float& dot, float& aux_sq, float& diff_sq) {
  dot = fmaf(a, t, dot);
  aux_sq = fmaf(a, a, aux_sq);
  const float d = a - t;
  diff_sq = fmaf(d, d, diff_sq);
}
// ‖t‖² does not depend on the aux vector: summed once per item.
LETHE_HD void compare_accumulate_target(float t, float& target_sq) { target_sq = fmaf(t, t, target_sq); }

// The arguments' problems, or "" when they are valid: params = P (the target's length), ld = the aux rows' stride.
inline std::string compare_args_error(int64_t params, int64_t ld, const std::vector<int64_t>& bounds) {
  if (ld < params)
    return "aux rows are " + std::to_string(ld) + " floats apart, fewer than the " + std::to_string(params) +
           " parameters of the target";
  if (bounds.size() < 2)
    return "bounds need at least 2 values (one segment), got " + std::to_string(bounds.size());
  if (bounds.front() < 0) return "bounds start at " + std::to_string(bounds.front()) + ", below 0";
  for (size_t i = 1; i < bounds.size(); ++i)
    if (bounds[i] <= bounds[i - 1])
      return "bounds must increase strictly: bounds[" + std::to_string(i - 1) + "] = " + std::to_string(bounds[i - 1]) +
             ", bounds[" + std::to_string(i) + "] = " + std::to_string(bounds[i]);
  if (bounds.back() > params)
    return "bounds end at " + std::to_string(bounds.back()) + ", past the target's " + std::to_string(params) +
           " parameters";
  return "";
}

// The work items of valid bounds (see compare_args_error).
struct ComparePlan {
  std::vector<int64_t> cuts;       // items() + 1 increasing offsets: item i covers [cuts[i], cuts[i + 1])
  std::vector<int64_t> seg_items;  // segments() + 1: segment s is items [seg_items[s], seg_items[s + 1])
  int64_t items() const { return static_cast<int64_t>(cuts.size()) - 1; }
  int64_t segments() const { return static_cast<int64_t>(seg_items.size()) - 1; }
};

inline ComparePlan make_compare_plan(const std::vector<int64_t>& bounds, int64_t tile = kCompareTile) {
  ComparePlan plan;
  plan.cuts.push_back(bounds.front());
  plan.seg_items.push_back(0);
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    const int64_t end = bounds[s + 1];
    // Interior cuts at multiples of the tile: items then start 16-byte aligned (after the segment's first), and a
    // segment cut out of a larger one is split the same way as the larger one around it.
    for (int64_t c = (bounds[s] / tile + 1) * tile; c < end; c += tile) plan.cuts.push_back(c);
    plan.cuts.push_back(end);
    plan.seg_items.push_back(static_cast<int64_t>(plan.cuts.size()) - 1);
  }
  return plan;
}

}  // namespace lethe::kernels
