#pragma once
// Shared by the libFuzzer targets: the exception policy, output sanity checks and input splitting.
// An InputError or UsageError is a parser rejecting bad bytes, which is the expected outcome for most inputs.
// Any other exception (an internal LETHE_CHECK, std::bad_alloc, std::out_of_range...) or a decoded result that
// breaks the Dataset contract is a bug: it aborts, so libFuzzer saves the input as a crash artifact.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>
#include <utility>

#include "engine/data.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace lethe::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// LETHE_FUZZ_VERBOSE=1 prints whether each input was accepted or why it was rejected (handy for checking seeds:
// `LETHE_FUZZ_VERBOSE=1 ./fuzz_mat5 fuzz/corpus/mat5/*`).
inline bool verbose() {
  static const bool on = [] {
    const char* v = std::getenv("LETHE_FUZZ_VERBOSE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Runs `body`, treating lethe's rejection errors as the normal way to refuse an input.
template <typename Body>
int guarded(Body&& body) {
  try {
    body();
    if (verbose()) std::fprintf(stderr, "accepted\n");
  } catch (const InputError& e) {
    if (verbose()) std::fprintf(stderr, "rejected (InputError): %s\n", e.what());
  } catch (const UsageError& e) {
    if (verbose()) std::fprintf(stderr, "rejected (UsageError): %s\n", e.what());
  } catch (const std::exception& e) {
    fail(std::string("unexpected exception ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail("unexpected exception of a non-std type");
  }
  return 0;
}

// Pixels must lie in [lo, hi] (exact [0, 1] for u8/255 decoders; a little slack after interpolation).
inline void check_pixels(const Tensor& t, float lo, float hi, const char* who) {
  if (t.dtype() != DType::F32 || t.device() != Device::CPU) fail(std::string(who) + ": pixels are not CPU f32");
  const float* px = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!(px[i] >= lo && px[i] <= hi))
      fail(std::string(who) + ": pixel " + std::to_string(i) + " is " + std::to_string(px[i]) + ", outside [" +
           std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// The contract of engine/data.h: images [N, C, H, W] f32 in [0, 1], labels [N] i64 in [0, num_classes).
inline void check_dataset(const Dataset& d, const char* who) {
  const std::string w = who;
  if (!d.images.defined() || !d.labels.defined()) fail(w + ": undefined images or labels");
  if (d.images.ndim() != 4) fail(w + ": images have shape " + shape_str(d.images.shape()));
  if (d.labels.ndim() != 1 || d.labels.dtype() != DType::I64) fail(w + ": labels are not [N] i64");
  if (d.images.dim(0) != d.labels.dim(0))
    fail(w + ": " + shape_str(d.images.shape()) + " images but " + shape_str(d.labels.shape()) + " labels");
  if (d.num_classes <= 0) fail(w + ": num_classes " + std::to_string(d.num_classes));
  const int64_t* lab = d.labels.i64();
  for (int64_t i = 0; i < d.labels.numel(); ++i)
    if (lab[i] < 0 || lab[i] >= d.num_classes)
      fail(w + ": label " + std::to_string(lab[i]) + " at " + std::to_string(i) + " outside [0, " +
           std::to_string(d.num_classes) + ")");
  check_pixels(d.images, 0.0f, 1.0f, who);
}

// Two files from one input: the first 4 bytes (little-endian) modulo (rest + 1) give the first file's length.
inline std::pair<std::string, std::string> split_two(const uint8_t* data, size_t size) {
  if (size < 4) return {std::string(reinterpret_cast<const char*>(data), size), std::string()};
  uint32_t head = 0;
  for (int i = 0; i < 4; ++i) head |= uint32_t(data[i]) << (8 * i);
  const char* rest = reinterpret_cast<const char*>(data) + 4;
  const size_t rest_size = size - 4;
  const size_t first = head % (rest_size + 1);
  return {std::string(rest, first), std::string(rest + first, rest_size - first)};
}

}  // namespace lethe::fuzz
