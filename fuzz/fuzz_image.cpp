// PNG/JPEG/BMP through decode_image, then a bilinear resize to a small size taken from the last input byte (which
// every format ignores as trailing data, so the seeds stay plain image files).
#include "datasets/image_folder.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const uint8_t last = data[size - 1];
  const lethe::ImageSize to{1 + (last & 15), 1 + (last >> 4)};
  return lethe::fuzz::guarded([&] {
    const lethe::Tensor image = lethe::decode_image("image", bytes);
    if (image.ndim() != 3 || (image.dim(0) != 1 && image.dim(0) != 3) || image.dim(1) < 1 || image.dim(2) < 1)
      lethe::fuzz::fail("decode_image: shape " + lethe::shape_str(image.shape()));
    lethe::fuzz::check_pixels(image, 0.0f, 1.0f, "decode_image");
    const lethe::Tensor small = lethe::resize_bilinear(image, to);
    if (small.ndim() != 3 || small.dim(0) != image.dim(0) || small.dim(1) != to.height || small.dim(2) != to.width)
      lethe::fuzz::fail("resize_bilinear: shape " + lethe::shape_str(small.shape()) + " for " +
                        std::to_string(to.height) + "x" + std::to_string(to.width));
    lethe::fuzz::check_pixels(small, -1e-5f, 1.0f + 1e-5f, "resize_bilinear");
  });
}
