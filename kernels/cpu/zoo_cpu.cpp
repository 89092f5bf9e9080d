// ZOO's two passes on the CPU (kernels/zoo.h), the twins of kernels/cuda/zoo.cu: build every active probe's query
// images, then one coordinate-Adam step from their logits.
#include <omp.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/zoo.h"

namespace lethe::kernels::cpu {

void zoo_queries(const float* x, const int64_t* rows, const int64_t* coords, int64_t active, int64_t coords_per_probe,
                 int64_t pixels, float h, float* queries, int threads) {
  const int64_t query_rows = active * 2 * coords_per_probe;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t q = 0; q < query_rows; ++q) {
    const int64_t a = q / (2 * coords_per_probe), j = (q % (2 * coords_per_probe)) / 2, sign_row = q % 2;
    const float* src = x + rows[a] * pixels;
    const int64_t coord = coords[a * coords_per_probe + j];
    float* dst = queries + q * pixels;
    for (int64_t d = 0; d < pixels; ++d) dst[d] = zoo_query_value(src[d], d, coord, sign_row, h);
  }
}

void zoo_step(float* x, const int64_t* rows, const int64_t* coords, const float* logits, const int64_t* labels,
              const float* lr, float* state, int64_t probes, int64_t active, int64_t coords_per_probe, int64_t pixels,
              int64_t num_logits, const ZooHyper& hp, int threads) {
  const int64_t plane = probes * pixels;
  const int64_t items = active * coords_per_probe;
#pragma omp parallel for num_threads(items < 4096 ? 1 : threads) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t a = item / coords_per_probe, probe = rows[a];
    const int64_t i = probe * pixels + coords[item];
    const float* plus = logits + (2 * item) * num_logits;
    const float g = zoo_gradient_estimate(plus, plus + num_logits, num_logits, labels[probe], hp.h);
    x[i] = zoo_adam_coordinate(x[i], g, lr[probe], state[i], state[plane + i], state[2 * plane + i],
                               state[3 * plane + i], hp);
  }
}

}  // namespace lethe::kernels::cpu
