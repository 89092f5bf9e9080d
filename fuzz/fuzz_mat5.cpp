// MATLAB v5 MAT files (SVHN): parse_mat5 with a small decompression cap, then svhn_from_mat on what it found.
#include "datasets/mat5.h"
#include "fuzz/fuzz_util.h"

namespace {
constexpr size_t kMaxDecompressed = size_t(64) << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  return lethe::fuzz::guarded([&] {
    const std::vector<lethe::MatArray> arrays = lethe::parse_mat5("svhn.mat", bytes, kMaxDecompressed);
    for (const lethe::MatArray& a : arrays) {
      // Every decoded array holds exactly numel values, in whichever of the two stores its class uses.
      const uint64_t stored = a.cls == lethe::MatClass::UInt8 ? a.u8.size() : a.values.size();
      if (stored != a.numel())
        lethe::fuzz::fail("parse_mat5: array '" + a.name + "' stores " + std::to_string(stored) + " values for " +
                          std::to_string(a.numel()) + " elements");
    }
    const lethe::Dataset d = lethe::svhn_from_mat("svhn.mat", arrays);
    lethe::fuzz::check_dataset(d, "svhn_from_mat");
    if (d.channels() != 3 || d.height() != 32 || d.width() != 32 || d.num_classes != 10)
      lethe::fuzz::fail("svhn_from_mat: images are " + lethe::shape_str(d.images.shape()));
  });
}
