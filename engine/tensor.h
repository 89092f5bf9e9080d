#pragma once
// Tensor: a shape and a dtype over a shared buffer on one device. Owning tensors allocate; views borrow
// (slices of rows, reshapes, named views into the parameter arena). Copying a Tensor is cheap and aliases.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"

namespace lethe {

enum class DType : uint8_t { F32, I64 };
enum class Device : uint8_t { CPU, CUDA };

size_t dtype_size(DType);
const char* dtype_name(DType);  // safetensors spelling: "F32", "I64"
const char* device_name(Device);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape&);
std::string shape_str(const Shape&);  // "[128, 1, 28, 28]"

// Raw memory on a device. The deleter is empty for borrowed memory.
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  void (*release)(void*) = nullptr;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised owning tensor. On the CPU it is 64-byte aligned.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value);  // CPU f32
  // A view of memory the caller keeps alive.
  static Tensor borrow(void* data, const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);  // CPU f32 copy
  static Tensor from_labels(const std::vector<int64_t>& values);                   // CPU i64 [n] copy

  bool defined() const { return buffer_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative counts from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  void* raw() const;
  float* f32() const;    // checks dtype
  int64_t* i64() const;  // checks dtype

  // Views sharing this tensor's memory.
  Tensor rows(int64_t start, int64_t count) const;  // a range along dim 0
  Tensor reshape(const Shape& shape) const;          // same numel, contiguous

  // Deep copies: to `device`, to the CPU, to this tensor's own device (from any device).
  Tensor to(Device device) const;
  Tensor to_cpu() const { return to(Device::CPU); }
  Tensor clone() const { return to(device()); }
  std::vector<float> to_vector() const;  // f32 only

  // True if both share a buffer and their byte ranges overlap.
  bool aliases(const Tensor& other) const;

  // Ensures `t` is an owning-or-view tensor of exactly this shape/dtype/device, reallocating only when the
  // size changes; layers use it to keep their output buffers across calls.
  static void ensure(Tensor& t, const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);

 private:
  std::shared_ptr<Buffer> buffer_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
};

// Device memory: how Device::CUDA buffers are allocated, released and copied. The CUDA backend registers its
// implementation when its first backend is made. There is one per process: the nvcc build and the simulated build
// (kernels/sim) both use Device::CUDA, so registering a second, different one is an error rather than a silent mix
// of real and simulated pointers.
struct DeviceMemory {
  const char* name;  // "cuda" or "cuda-sim", for messages
  void* (*alloc)(size_t bytes);
  void (*free)(void* ptr);
  // dst and src are host memory or this implementation's device memory, as the Device arguments say.
  void (*copy)(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
};
// Registers `memory` (which must outlive the process). Idempotent for the same implementation; throws UsageError if
// another one is already registered.
void register_device_memory(const DeviceMemory& memory);
// Copies between any two devices (same byte count).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);

}  // namespace lethe
