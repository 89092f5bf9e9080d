// STL-10 binary X/y pairs, split from one input (see split_two).
#include "datasets/stl10.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // References, not a structured binding: clang 14 cannot capture those in a lambda.
  const auto files = lethe::fuzz::split_two(data, size);
  const std::string& x_bytes = files.first;
  const std::string& y_bytes = files.second;
  return lethe::fuzz::guarded([&] {
    const lethe::Dataset d = lethe::parse_stl10("train_X.bin", x_bytes, "train_y.bin", y_bytes);
    lethe::fuzz::check_dataset(d, "parse_stl10");
    if (d.size() != static_cast<int64_t>(y_bytes.size()) || d.channels() != 3 || d.height() != 96 ||
        d.width() != 96 || d.num_classes != 10)
      lethe::fuzz::fail("parse_stl10: images are " + lethe::shape_str(d.images.shape()) + " for " +
                        std::to_string(y_bytes.size()) + " label bytes");
  });
}
