#pragma once
// How close a reconstructed image is to the original (Hu et al.'s feature recovery; docs/attacks/hu-and-defenses.md),
// and what chance alone scores: the same measures for uniform-random images. Images are CPU [C, H, W] or [1, C, H, W]
// tensors of pixels in [0, 1].
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend.h"

namespace lethe::attacks {

struct ImageQuality {
  double mse = 0;      // mean squared pixel difference, pixels in [0, 1]
  double psnr = 0;     // 10·log10(1 / mse) dB: peak 1
  double psnr_hu = 0;  // Hu's code's variant, peak 1/std: psnr + 20·log10(1/std), std the dataset's normalisation
  double ssim = 0;     // mean SSIM (Gaussian window 11, σ 1.5, C1 = 0.01², C2 = 0.03²) over the valid region, then
                       // over channels
  nlohmann::json to_json() const;
};

double mean_squared_error(const Tensor& a, const Tensor& b);
double psnr(double mse, double peak = 1.0);  // +inf for mse 0
// The mean of a normalisation's per-channel std (1 for none): Hu's PSNR peak is its inverse.
double mean_std(const std::vector<float>& std);
// Wang et al.'s SSIM. Windows shrink to the largest odd size that fits an image smaller than 11 pixels.
double ssim(const Tensor& a, const Tensor& b);

ImageQuality image_quality(const Tensor& recovered, const Tensor& original, double normalisation_std);
// The average of each measure over `draws` uniform-random images (Philox (seed, draw) on `be`) against `original`.
ImageQuality random_baseline(const Tensor& original, double normalisation_std, Backend& be, int64_t draws = 16,
                             uint64_t seed = 0);

}  // namespace lethe::attacks
