#pragma once
// The benchmarks' main: runs `body` and turns an escaping error into a message and the CLI's exit codes (lethe::Error
// carries its own code; anything else is 1), so a bad option or a missing file never crashes a benchmark run.
#include <cstdio>
#include <exception>

#include "engine/error.h"

namespace lethe::bench {

template <class Body>
int guarded_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return static_cast<int>(e.code);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace lethe::bench
