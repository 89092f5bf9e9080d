#pragma once
// The idx format of MNIST and Fashion-MNIST (raw or gzip): big-endian magic 0x00000803 (images, u8 [N,H,W]) or
// 0x00000801 (labels, u8 [N]). Magic, dimensions and sizes are checked before anything is allocated.
#include <string>

#include "engine/data.h"

namespace lethe {

// Reads a whole file, transparently gunzipping if it starts with the gzip magic. Refuses files whose size (or
// declared decompressed size) exceeds max_bytes. Throws InputError naming the file.
std::string read_maybe_gzip(const std::string& path, size_t max_bytes = size_t(1) << 31);
// The bytes-level half of read_maybe_gzip: gunzips `bytes` if they start with the gzip magic (else returns them
// as they are), never producing more than max_bytes. `path` only names the file in errors.
std::string maybe_gunzip(const std::string& path, const std::string& bytes, size_t max_bytes = size_t(1) << 31);

// Images as [N, 1, H, W] f32 in [0,1] and labels as [N] i64; checks counts agree and labels < num_classes.
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t num_classes);
// The same on already-decompressed file contents (paths only name the files in errors). The fuzz entry point.
Dataset parse_idx_pair(const std::string& images_path, const std::string& image_bytes, const std::string& labels_path,
                       const std::string& label_bytes, int64_t num_classes);

}  // namespace lethe
