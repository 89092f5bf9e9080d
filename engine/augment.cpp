#include "engine/augment.h"

#include "engine/error.h"
#include "kernels/augment.h"

namespace lethe {

nlohmann::json AugmentConfig::to_json() const { return {{"kind", name()}, {"pad", pad}, {"flip", flip}}; }

AugmentConfig AugmentConfig::parse(const std::string& text, int32_t pad) {
  if (pad < 0 || pad > 1024) throw UsageError("augmentation padding " + std::to_string(pad) + " is outside 0..1024");
  AugmentConfig cfg;
  if (text == "none") return cfg;
  if (text == "crop" || text == "crop+flip") cfg.pad = pad;
  if (text == "flip" || text == "crop+flip") cfg.flip = true;
  if (!cfg.enabled() && text != "crop")
    throw UsageError("augmentation '" + text + "' is not one of none, crop, flip, crop+flip");
  if (text == "crop" && pad == 0) throw UsageError("augmentation 'crop' needs a padding above 0");
  return cfg;
}

std::string AugmentConfig::name() const {
  if (pad > 0 && flip) return "crop+flip";
  if (pad > 0) return "crop";
  return flip ? "flip" : "none";
}

void augment_images(const float* src, float* dst, int64_t n, int64_t c, int64_t h, int64_t w,
                    const int64_t* sample_ids, const AugmentConfig& cfg, uint64_t seed, uint64_t epoch) {
  const int64_t plane = h * w;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const kernels::AugmentDraw d =
        kernels::augment_draw(seed, epoch, static_cast<uint64_t>(sample_ids[i]), cfg.pad, cfg.flip);
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* in = src + (i * c + ch) * plane;
      float* out = dst + (i * c + ch) * plane;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) out[y * w + x] = kernels::augmented_pixel(in, h, w, y, x, d, cfg.pad);
    }
  }
}

}  // namespace lethe
