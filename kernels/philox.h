#pragma once
// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator. The value at (key, counter) is a pure function,
// so the CPU and CUDA backends draw identical streams and any element can be generated independently.
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"

namespace lethe::kernels {

struct Philox4 {
  uint32_t v[4];
};

LETHE_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// One block of four 32-bit words for a 64-bit key and a 128-bit counter (given as two 64-bit halves).
LETHE_HD Philox4 philox4x32_10(uint64_t key, uint64_t counter_lo, uint64_t counter_hi) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits, exactly representable in float.
LETHE_HD float philox_u01(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// Element i of stream `stream` under `seed`: four words per counter, so element i uses word i % 4 of block i / 4.
LETHE_HD uint32_t philox_word(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, i >> 2, stream);
  return r.v[i & 3];
}

LETHE_HD float philox_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
  return philox_u01(philox_word(seed, stream, i));
}

// Standard normal by Box-Muller over one block (two words per draw; both halves of the pair are used by
// consecutive elements, so element i comes from block i / 2).
LETHE_HD float philox_normal(uint64_t seed, uint64_t stream, uint64_t i) {
  const Philox4 r = philox4x32_10(seed, i >> 1, stream ^ 0x8000000000000000ull);
  const float u1 = (static_cast<float>(r.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]: log is finite
  const float u2 = philox_u01(r.v[1]);
  const float radius = sqrtf(-2.0f * logf(u1));
  const float angle = 6.28318530717958647692f * u2;
  return (i & 1) ? radius * sinf(angle) : radius * cosf(angle);
}

}  // namespace lethe::kernels
