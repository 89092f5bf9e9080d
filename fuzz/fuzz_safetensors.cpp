// safetensors model files: parse_safetensors on the whole input.
#include "engine/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  return lethe::fuzz::guarded([&] {
    const lethe::SafeTensorsFile f = lethe::parse_safetensors("model.safetensors", bytes);
    uint64_t total = 0;
    for (const auto& [name, t] : f.tensors) {
      if (!t.defined() || t.device() != lethe::Device::CPU) lethe::fuzz::fail("parse_safetensors: bad tensor " + name);
      total += t.nbytes();
    }
    // Tensors may not overlap, so together they fit in the input.
    if (total > bytes.size()) lethe::fuzz::fail("parse_safetensors: tensors hold more bytes than the input");
  });
}
