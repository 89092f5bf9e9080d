#pragma once
// Learning-rate schedules in closed form, matching PyTorch's MultiStepLR, CosineAnnealingLR and LinearLR when
// stepped once per epoch: lr_at(e) is the rate used during epoch e (0-based).
#include <string>
#include <vector>

namespace lethe {

struct ScheduleConfig {
  std::string kind = "constant";  // "constant" | "multistep" | "cosine" | "linear"
  std::vector<int> milestones;     // multistep
  float gamma = 0.1f;              // multistep
  int total_epochs = 1;            // cosine T_max, linear total_iters
  float eta_min = 0.0f;            // cosine
  float start_factor = 1.0f, end_factor = 0.0f;  // linear
};

// Throws UsageError for an unknown kind or bad parameters.
float lr_at(const ScheduleConfig&, float base_lr, int epoch);

}  // namespace lethe
