#pragma once
// Fused parameter comparison, the parameter attacks' primitive: one pass over a target vector t and N auxiliary
// vectors a_j computes, for every segment s (a class's weight row, a layer, the whole model) and every j, the dot
// product a_j·t, ‖a_j‖², ‖t‖² and ‖a_j − t‖². Cosines, distances and norms of differences all follow from these four.
#include <cstdint>

namespace lethe::kernels {

struct SegmentStats {
  double dot = 0;        // Σ a·t
  double aux_sq = 0;     // Σ a²
  double target_sq = 0;  // Σ t²
  double diff_sq = 0;    // Σ (a − t)², summed directly (not from the other three, which would cancel)
};

// Rows of an auxiliary bank are padded to a multiple of 4 floats, so every row starts 16-byte aligned.
constexpr int64_t compare_row_stride(int64_t params) { return (params + 3) / 4 * 4; }

}  // namespace lethe::kernels
