#include "engine/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace lethe {

namespace {
const DeviceMemory* g_device_memory = nullptr;

void* host_alloc(size_t bytes) {
  // 64-byte alignment for vector loads; aligned_alloc needs a multiple of the alignment.
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw Error(ExitCode::Other, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}
void host_free(void* p) { std::free(p); }
}  // namespace

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 8; }
const char* dtype_name(DType t) { return t == DType::F32 ? "F32" : "I64"; }
const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    LETHE_CHECK(d >= 0, "negative dimension");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

Buffer::~Buffer() {
  if (release && data) release(data);
}

void register_device_memory(const DeviceMemory& memory) {
  if (g_device_memory && g_device_memory != &memory)
    throw UsageError(std::string("this process already uses the ") + g_device_memory->name + " backend's memory; the " +
                     memory.name + " backend cannot share it (one CUDA implementation per process)");
  g_device_memory = &memory;
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::CPU && src_dev == Device::CPU) {
    std::memmove(dst, src, bytes);
    return;
  }
  if (!g_device_memory) throw UsageError("CUDA memory used but no CUDA backend has been made");
  g_device_memory->copy(dst, dst_dev, src, src_dev, bytes);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.dtype_ = dtype;
  auto buf = std::make_shared<Buffer>();
  buf->bytes = t.nbytes();
  buf->device = device;
  if (device == Device::CPU) {
    buf->data = host_alloc(buf->bytes);
    buf->release = host_free;
  } else {
    if (!g_device_memory) throw UsageError("a CUDA tensor was requested before any CUDA backend was made");
    buf->data = g_device_memory->alloc(buf->bytes == 0 ? 4 : buf->bytes);
    buf->release = g_device_memory->free;
  }
  t.buffer_ = std::move(buf);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::CPU) {
    std::memset(t.raw(), 0, t.nbytes());
  } else {
    std::vector<unsigned char> z(t.nbytes(), 0);
    copy_bytes(t.raw(), device, z.data(), Device::CPU, t.nbytes());
  }
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.dtype_ = dtype;
  auto buf = std::make_shared<Buffer>();
  buf->data = data;
  buf->bytes = t.nbytes();
  buf->device = device;
  t.buffer_ = std::move(buf);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  LETHE_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "from_vector: size mismatch");
  Tensor t = empty(shape);
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_labels(const std::vector<int64_t>& values) {
  Tensor t = empty({static_cast<int64_t>(values.size())}, DType::I64);
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  if (i < 0) i += n;
  LETHE_CHECK(i >= 0 && i < n, "dim index out of range for shape " + shape_str(shape_));
  return shape_[static_cast<size_t>(i)];
}

Device Tensor::device() const { return buffer_ ? buffer_->device : Device::CPU; }

void* Tensor::raw() const {
  LETHE_CHECK(buffer_ != nullptr, "use of an undefined tensor");
  return static_cast<unsigned char*>(buffer_->data) + offset_;
}

float* Tensor::f32() const {
  LETHE_CHECK(dtype_ == DType::F32, "tensor is not F32");
  return static_cast<float*>(raw());
}

int64_t* Tensor::i64() const {
  LETHE_CHECK(dtype_ == DType::I64, "tensor is not I64");
  return static_cast<int64_t*>(raw());
}

Tensor Tensor::rows(int64_t start, int64_t count) const {
  LETHE_CHECK(ndim() >= 1, "rows() of a scalar");
  LETHE_CHECK(start >= 0 && count >= 0 && start + count <= shape_[0],
              "rows(" + std::to_string(start) + ", " + std::to_string(count) + ") of " + shape_str(shape_));
  Tensor t = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  t.offset_ += static_cast<size_t>(start * row) * dtype_size(dtype_);
  t.shape_[0] = count;
  t.numel_ = count * row;
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  LETHE_CHECK(shape_numel(shape) == numel_, "reshape " + shape_str(shape_) + " -> " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(Device dst) const {
  Tensor t = empty(shape_, dtype_, dst);
  copy_bytes(t.raw(), dst, raw(), device(), nbytes());
  return t;
}

std::vector<float> Tensor::to_vector() const {
  LETHE_CHECK(dtype_ == DType::F32, "to_vector needs F32");
  std::vector<float> v(static_cast<size_t>(numel_));
  copy_bytes(v.data(), Device::CPU, raw(), device(), nbytes());
  return v;
}

bool Tensor::aliases(const Tensor& other) const {
  if (!buffer_ || buffer_ != other.buffer_) return false;
  const size_t a0 = offset_, a1 = offset_ + nbytes();
  const size_t b0 = other.offset_, b1 = other.offset_ + other.nbytes();
  return a0 < b1 && b0 < a1;
}

void Tensor::ensure(Tensor& t, const Shape& shape, DType dtype, Device device) {
  if (t.defined() && t.dtype_ == dtype && t.device() == device && t.shape_ == shape) return;
  const int64_t n = shape_numel(shape);
  // Reuse the buffer when it is ours alone and big enough (a smaller last batch, say).
  if (t.defined() && t.dtype_ == dtype && t.device() == device && t.buffer_.use_count() == 1 && t.offset_ == 0 &&
      t.buffer_->release != nullptr && static_cast<size_t>(n) * dtype_size(dtype) <= t.buffer_->bytes) {
    t.shape_ = shape;
    t.numel_ = n;
    return;
  }
  t = empty(shape, dtype, device);
}

}  // namespace lethe
