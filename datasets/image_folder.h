#pragma once
// Image folders: ROOT/CLASS_NAME/*.png|jpg|jpeg|bmp (case-insensitive extensions), decoded by stb_image. Classes
// are the sub-directories sorted by name (byte order), labels their positions; files are sorted by name within a
// class so the order (and hence every seeded split) is the same on every machine. Grayscale and RGB images are
// accepted: a folder of only grayscale images gives 1 channel, otherwise 3 (gray replicated, alpha dropped).
#include <cstdint>
#include <string>

#include "engine/data.h"
#include "engine/tensor.h"

namespace lethe {

struct ImageSize {
  int64_t height = 0, width = 0;  // 0x0: keep each image's own size (then all must agree)
  bool empty() const { return height == 0 && width == 0; }
};
// Parses "HxW" (e.g. "32x32"). Throws UsageError on anything else or a dimension outside 1..4096.
ImageSize parse_image_size(const std::string& text);

// One decoded image: [C, H, W] f32 in [0, 1], C = 1 (gray) or 3 (RGB; alpha dropped, gray+alpha gives 1).
// `name` only names it in errors. The fuzz entry point. Throws InputError for anything stb_image rejects, and
// refuses absurd dimensions (more than 2^26 pixels) before decoding the pixels, and JPEG Huffman tables that would
// overflow stb_image 2.27's tables (more than 256 codes) before stb reads them.
Tensor decode_image(const std::string& name, const std::string& bytes);

// Bilinear resize of a [C, H, W] image, matching torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=False).
Tensor resize_bilinear(const Tensor& image, ImageSize to);

// Loads the whole folder. Without `resize`, an image whose size differs from the first one's is an InputError that
// names both files and sizes and suggests --resize. An empty class directory, a root with no class directories or
// an undecodable file is an InputError naming the path. Entries whose names start with '.', plain files in ROOT and
// files with other extensions are ignored. mean/std are the per-channel mean and (population) standard deviation
// of the loaded pixels, so the model normalises a folder it has never seen sensibly (a constant channel gets std 1).
// Headers are read first (channels, sizes, total memory checked before anything is allocated), then the images
// are decoded in parallel, each straight into its slice.
Dataset load_image_folder(const std::string& root, ImageSize resize = {});

}  // namespace lethe
