// Magnitude pruning on the CPU (kernels/prune.h): the threshold by nth_element over the magnitudes' keys, the
// pruning elementwise. Twins of kernels/cuda/prune.cu.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/prune.h"

namespace lethe::kernels::cpu {

float magnitude_kth(const float* w, int64_t n, int64_t k, int threads) {
  std::vector<uint32_t> keys(static_cast<size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) keys[static_cast<size_t>(i)] = magnitude_key(w[i]);
  std::nth_element(keys.begin(), keys.begin() + k, keys.end());
  return key_value(keys[static_cast<size_t>(k)]);
}

void prune_magnitude(float* w, int64_t n, float threshold, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) w[i] = prune_value(w[i], threshold);
}

}  // namespace lethe::kernels::cpu
