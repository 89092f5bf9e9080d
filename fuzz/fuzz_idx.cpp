// MNIST-style idx image/label pairs, raw or gzipped: maybe_gunzip on each half, then parse_idx_pair.
#include "datasets/idx.h"
#include "fuzz/fuzz_util.h"

namespace {
// Small enough that a gzip bomb is refused quickly; the seeds are a few hundred bytes decompressed.
constexpr size_t kMaxDecompressed = size_t(16) << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // References, not a structured binding: clang 14 cannot capture those in a lambda.
  const auto files = lethe::fuzz::split_two(data, size);
  const std::string& images = files.first;
  const std::string& labels = files.second;
  return lethe::fuzz::guarded([&] {
    const std::string image_bytes = lethe::maybe_gunzip("images.idx", images, kMaxDecompressed);
    const std::string label_bytes = lethe::maybe_gunzip("labels.idx", labels, kMaxDecompressed);
    const lethe::Dataset d = lethe::parse_idx_pair("images.idx", image_bytes, "labels.idx", label_bytes, 10);
    lethe::fuzz::check_dataset(d, "parse_idx_pair");
    if (d.images.dim(1) != 1) lethe::fuzz::fail("parse_idx_pair: idx images must have one channel");
  });
}
