#pragma once
// Training-time augmentation settings and the host implementation over a batch (per-pixel math in kernels/augment.h).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace lethe {

struct AugmentConfig {
  int32_t pad = 0;    // random crop with this much zero padding on each side (0: no crop)
  bool flip = false;  // random horizontal flip
  bool enabled() const { return pad > 0 || flip; }
  nlohmann::json to_json() const;
  // "none", "crop", "flip", "crop+flip" (crop uses `pad`). Throws UsageError otherwise.
  static AugmentConfig parse(const std::string& text, int32_t pad);
  std::string name() const;  // the inverse of parse: "none", "crop", "flip", "crop+flip"
};

// Augments `n` images [c, h, w] from `src` into `dst` (which must not alias). Image i draws with sample index
// sample_ids[i], so an image gets the same crop and flip whichever batch it lands in.
void augment_images(const float* src, float* dst, int64_t n, int64_t c, int64_t h, int64_t w,
                    const int64_t* sample_ids, const AugmentConfig& cfg, uint64_t seed, uint64_t epoch);

}  // namespace lethe
