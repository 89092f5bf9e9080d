// Magnitude pruning on the CPU backend (kernels/prune.h): the selected threshold is the k-th smallest |w| and the
// pruning zeroes exactly the weights at or below it. The CUDA radix select is compared with this in
// tests/test_cuda_sim_ops.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backend.h"
#include "kernels/prune.h"
#include "tests/test_util.h"

using namespace lethe;

TEST_CASE("prune: the threshold is the k-th smallest magnitude, ties and zeros included") {
  auto be = make_cpu_backend(2);
  test::Rng rng(17);
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{65537}}) {
    CAPTURE(n);
    Tensor w = test::random_tensor({n}, rng, -2.0f, 2.0f);
    float* p = w.f32();
    for (int64_t i = 0; i < n; i += 5) p[i] = 0.0f;            // exact zeros
    for (int64_t i = 3; i < n; i += 11) p[i] = -p[i - 1];      // equal magnitudes of opposite sign
    std::vector<float> magnitudes(p, p + n);
    for (float& m : magnitudes) m = std::fabs(m);
    std::sort(magnitudes.begin(), magnitudes.end());
    for (const int64_t k : {int64_t{0}, n / 3, n / 2, n - 1}) {
      CAPTURE(k);
      CHECK(be->magnitude_kth(w, k) == magnitudes[static_cast<size_t>(k)]);
    }
    CHECK_THROWS(be->magnitude_kth(w, n));
    CHECK_THROWS(be->magnitude_kth(w, -1));
  }
}

TEST_CASE("prune: weights at or below the threshold become zero, the others keep their value") {
  auto be = make_cpu_backend(2);
  test::Rng rng(19);
  const Tensor w = test::random_tensor({4097}, rng, -1.0f, 1.0f);
  const int64_t k = 2000;
  const float threshold = be->magnitude_kth(w, k);
  Tensor pruned = w.clone();
  be->prune_magnitude(pruned, threshold);
  int64_t zeros = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float before = w.f32()[i], after = pruned.f32()[i];
    if (std::fabs(before) <= threshold) {
      CHECK(after == 0.0f);
      ++zeros;
    } else {
      CHECK(after == before);
    }
  }
  CHECK(zeros == k + 1);  // distinct random magnitudes: exactly the k + 1 smallest
  // The radix select's digit logic on its own: keys order like magnitudes, NaN after +inf.
  CHECK(kernels::magnitude_key(-0.5f) == kernels::magnitude_key(0.5f));
  CHECK(kernels::magnitude_key(1e-30f) < kernels::magnitude_key(2e-30f));
  CHECK(kernels::magnitude_key(INFINITY) < kernels::magnitude_key(NAN));
}
