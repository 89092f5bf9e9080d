#pragma once
// The idx format of MNIST and Fashion-MNIST (raw or gzip): big-endian magic 0x00000803 (images, u8 [N,H,W]) or
// 0x00000801 (labels, u8 [N]). Magic, dimensions and sizes are checked before anything is allocated.
#include <string>

#include "engine/data.h"

namespace lethe {

// Reads a whole file, transparently gunzipping if it starts with the gzip magic. Refuses files whose size (or
// declared decompressed size) exceeds max_bytes. Throws InputError naming the file.
std::string read_maybe_gzip(const std::string& path, size_t max_bytes = size_t(1) << 31);

// Images as [N, 1, H, W] f32 in [0,1] and labels as [N] i64; checks counts agree and labels < num_classes.
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t num_classes);

}  // namespace lethe
