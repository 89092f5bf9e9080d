#pragma once
// Global unstructured magnitude pruning (Hu et al.'s pruning defense, ../shared/research/attacks.md §B): zero the
// p·n weights of smallest magnitude over the whole parameter arena. The threshold is the k-th smallest |w|, found
// by selection: nth_element on the CPU, a most-significant-digit-first radix select on CUDA (four passes of 8 bits
// over the magnitudes' bit patterns, each a 256-bin histogram of the candidates that share the digits chosen so
// far). Both return the same element's value, so the backends prune identically.
#include <cstdint>
#include <cstring>

#include "kernels/hd.h"

namespace lethe::kernels {

constexpr int kRadixBits = 8, kRadixBins = 1 << kRadixBits, kRadixPasses = 32 / kRadixBits;

// |w|'s bit pattern: for non-negative floats (and +inf, and NaN above it) the unsigned order is the numeric order.
LETHE_HD uint32_t magnitude_key(float w) {
  uint32_t bits;
  memcpy(&bits, &w, sizeof bits);
  return bits & 0x7FFFFFFFu;
}

LETHE_HD float key_value(uint32_t key) {
  float v;
  memcpy(&v, &key, sizeof v);
  return v;
}

// Pass `pass` (0: the top digit) of the select: does `key` share the digits chosen so far (`prefix` under the top
// pass·8 bits), and if so which bin does it fall in?
LETHE_HD bool radix_candidate(uint32_t key, uint32_t prefix, int pass) {
  const uint32_t mask = pass == 0 ? 0u : ~0u << (32 - kRadixBits * pass);
  return (key & mask) == prefix;
}
LETHE_HD int radix_bin(uint32_t key, int pass) {
  return static_cast<int>((key >> (32 - kRadixBits * (pass + 1))) & (kRadixBins - 1));
}

// The bin holding rank k (0-based) among the candidates counted in `hist`; k becomes the rank within that bin.
inline int radix_pick(const uint32_t* hist, int64_t& k) {
  for (int b = 0; b < kRadixBins; ++b) {
    if (k < static_cast<int64_t>(hist[b])) return b;
    k -= hist[b];
  }
  return kRadixBins - 1;  // unreachable when k < the candidates' count
}

// The radix select's driver (host code): `histogram(prefix, pass, counts)` fills the 256 counts of pass `pass` over
// the candidates sharing `prefix`; four passes pin down the key of rank k (0-based), returned as its value.
template <class Histogram>
float radix_select_kth(int64_t k, Histogram&& histogram) {
  uint32_t prefix = 0, counts[kRadixBins];
  for (int pass = 0; pass < kRadixPasses; ++pass) {
    histogram(prefix, pass, counts);
    prefix |= static_cast<uint32_t>(radix_pick(counts, k)) << (32 - kRadixBits * (pass + 1));
  }
  return key_value(prefix);
}

// Pruning: weights whose magnitude is at most the threshold become zero (ties at the threshold go too; exact zeros,
// the usual tie, are zero already).
LETHE_HD float prune_value(float w, float threshold) { return key_value(magnitude_key(w)) <= threshold ? 0.0f : w; }

}  // namespace lethe::kernels
