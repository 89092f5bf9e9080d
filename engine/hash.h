#pragma once
// FNV-1a 64: the content hashes that tie results to their inputs (split specs and indices, update logs to models).
// Not cryptographic: it catches mix-ups, not forgeries.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lethe {

inline constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;

inline uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// 16 lower-case hex digits.
inline std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace lethe
