#pragma once
// The safetensors format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}}, then the raw data.
// Reading validates everything before it allocates; writing is atomic (temporary file, then rename).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace lethe {

struct SafeTensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in file order of offsets
  std::map<std::string, std::string> metadata;          // "__metadata__"

  const Tensor* find(const std::string& name) const;
};

// Throws InputError naming `path` and the defect: missing/truncated file, header length out of bounds, malformed
// JSON, unknown dtype, shape/offset mismatch, offsets outside the data or overlapping, non-string metadata.
SafeTensorsFile read_safetensors(const std::string& path);
// The same checks on a file's bytes already in memory (`path` only names it in errors). The fuzz entry point.
SafeTensorsFile parse_safetensors(const std::string& path, const std::string& bytes);
// F32 and I64 tensors from any device (copied to the host). Throws Error on I/O failure; never leaves a partial file.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed over it.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lethe
