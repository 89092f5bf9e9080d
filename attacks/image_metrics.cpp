#include "attacks/image_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace lethe::attacks {
namespace {

// Philox stream of the random baseline's images.
constexpr uint64_t kBaselineStream = 0x48555242;  // "HURB"

// [C, H, W] of an image tensor [C, H, W] or [1, C, H, W].
struct Planes {
  int64_t channels, height, width;
};
Planes planes_of(const Tensor& t) {
  const bool batched = t.ndim() == 4;
  LETHE_CHECK((t.ndim() == 3 || (batched && t.dim(0) == 1)) && t.dtype() == DType::F32 && t.device() == Device::CPU,
              "image metrics take one CPU f32 image [C, H, W] or [1, C, H, W]");
  const int64_t o = batched ? 1 : 0;
  return {t.dim(o), t.dim(o + 1), t.dim(o + 2)};
}

void check_same_shape(const Tensor& a, const Tensor& b) {
  const Planes pa = planes_of(a), pb = planes_of(b);
  LETHE_CHECK(pa.channels == pb.channels && pa.height == pb.height && pa.width == pb.width,
              "image metrics: the images differ in shape");
}

// The normalised 1-D Gaussian of `size` taps (σ 1.5); the 2-D window is its outer product.
std::vector<double> gaussian_taps(int64_t size) {
  constexpr double kSigma = 1.5;
  std::vector<double> g(static_cast<size_t>(size));
  const double centre = static_cast<double>(size - 1) / 2;
  double sum = 0;
  for (int64_t i = 0; i < size; ++i) sum += g[i] = std::exp(-(i - centre) * (i - centre) / (2 * kSigma * kSigma));
  for (double& v : g) v /= sum;
  return g;
}

}  // namespace

nlohmann::json ImageQuality::to_json() const {
  // JSON has no infinity: a perfect reconstruction's PSNR is written as null.
  const auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"mse", mse}, {"psnr", finite(psnr)}, {"psnr_hu", finite(psnr_hu)}, {"ssim", ssim}};
}

double mean_squared_error(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b);
  const float* pa = a.f32();
  const float* pb = b.f32();
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(pa[i]) - pb[i];
    sum += d * d;
  }
  return sum / static_cast<double>(a.numel());
}

double psnr(double mse, double peak) {
  return mse > 0 ? 10.0 * std::log10(peak * peak / mse) : std::numeric_limits<double>::infinity();
}

double mean_std(const std::vector<float>& std) {
  if (std.empty()) return 1.0;
  double sum = 0;
  for (const float s : std) sum += s;
  return sum / static_cast<double>(std.size());
}

double ssim(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b);
  constexpr double kC1 = 0.01 * 0.01, kC2 = 0.03 * 0.03;
  const Planes p = planes_of(a);
  int64_t size = std::min<int64_t>({11, p.height, p.width});
  if (size % 2 == 0) --size;
  const std::vector<double> g = gaussian_taps(size);
  const int64_t out_h = p.height - size + 1, out_w = p.width - size + 1;
  double total = 0;
  for (int64_t c = 0; c < p.channels; ++c) {
    const float* x = a.f32() + c * p.height * p.width;
    const float* y = b.f32() + c * p.height * p.width;
    double plane = 0;
    for (int64_t i = 0; i < out_h; ++i)
      for (int64_t j = 0; j < out_w; ++j) {
        double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (int64_t u = 0; u < size; ++u)
          for (int64_t v = 0; v < size; ++v) {
            const double w = g[u] * g[v];
            const double xv = x[(i + u) * p.width + j + v], yv = y[(i + u) * p.width + j + v];
            mx += w * xv;
            my += w * yv;
            xx += w * xv * xv;
            yy += w * yv * yv;
            xy += w * xv * yv;
          }
        const double vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my;
        plane += ((2 * mx * my + kC1) * (2 * cov + kC2)) / ((mx * mx + my * my + kC1) * (vx + vy + kC2));
      }
    total += plane / static_cast<double>(out_h * out_w);
  }
  return total / static_cast<double>(p.channels);
}

ImageQuality image_quality(const Tensor& recovered, const Tensor& original, double normalisation_std) {
  LETHE_CHECK(normalisation_std > 0, "image metrics: the normalisation std must be positive");
  ImageQuality q;
  q.mse = mean_squared_error(recovered, original);
  q.psnr = psnr(q.mse);
  q.psnr_hu = q.psnr + 20.0 * std::log10(1.0 / normalisation_std);
  q.ssim = ssim(recovered, original);
  return q;
}

ImageQuality random_baseline(const Tensor& original, double normalisation_std, Backend& be, int64_t draws,
                             uint64_t seed) {
  LETHE_CHECK(draws > 0, "random baseline: draws must be positive");
  planes_of(original);
  ImageQuality mean;
  Tensor noise = Tensor::empty(original.shape(), DType::F32, be.device());
  for (int64_t d = 0; d < draws; ++d) {
    be.fill_uniform(noise, 0.0f, 1.0f, seed, kBaselineStream + static_cast<uint64_t>(d));
    const ImageQuality q = image_quality(noise.to_cpu(), original, normalisation_std);
    mean.mse += q.mse / static_cast<double>(draws);
    mean.psnr += q.psnr / static_cast<double>(draws);
    mean.psnr_hu += q.psnr_hu / static_cast<double>(draws);
    mean.ssim += q.ssim / static_cast<double>(draws);
  }
  return mean;
}

}  // namespace lethe::attacks
