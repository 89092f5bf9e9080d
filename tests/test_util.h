#pragma once
// Helpers shared by the test files: seeded random tensors, error measures, NaN poisoning, temporary directories.
// Everything works on tensors of any device (values go through the host).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <sstream>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "engine/backend.h"
#include "engine/data.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/tensor.h"

namespace lethe::test {

// Tensor values widened to double (to_doubles), as the comparisons take them.
using Values = std::vector<double>;

// Thresholds for nmse() between two backends. Sums whose order differs (GEMMs, convolutions, reductions): f32 sums
// of K <= 1000 terms reach NMSE ~ K*u^2 <= 4e-12 in any order, while a wrong index or a dropped term gives >= 1e-4
// on random inputs. Ops that move or select values, or compute a formula without a multiply-add, match exactly.
inline constexpr double kNmse = 1e-10;
inline constexpr double kExact = 0.0;

// A seeded generator whose values do not depend on the standard library's distributions (mt19937_64's output is
// fixed by the standard; uniform_real_distribution's is not), so a seed means the same inputs everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform01() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
  float uniform(float lo, float hi) { return static_cast<float>(lo + (static_cast<double>(hi) - lo) * uniform01()); }
  // Integer in [lo, hi], inclusive.
  int64_t integer(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(uniform01() * static_cast<double>(hi - lo + 1));
  }
  std::mt19937_64& engine() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

// Host <-> device copies of whole tensors.
inline Tensor to_device(const Tensor& t, Device device) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), device);
  copy_bytes(out.raw(), device, t.raw(), t.device(), t.nbytes());
  return out;
}

inline void set_values(Tensor& t, const std::vector<float>& values) {
  LETHE_CHECK(t.dtype() == DType::F32 && static_cast<int64_t>(values.size()) == t.numel(), "set_values: mismatch");
  copy_bytes(t.raw(), t.device(), values.data(), Device::CPU, t.nbytes());
}

// Fills `t` (f32, any device) with values uniform in [lo, hi).
inline void fill_random(Tensor& t, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (float& x : v) x = rng.uniform(lo, hi);
  set_values(t, v);
}

inline Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f,
                            Device device = Device::CPU) {
  Tensor t = Tensor::empty(shape, DType::F32, device);
  fill_random(t, rng, lo, hi);
  return t;
}

// I64 labels [n] uniform in [0, classes).
inline Tensor random_labels(int64_t n, int64_t classes, Rng& rng) {
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (auto& l : labels) l = rng.integer(0, classes - 1);
  return Tensor::from_labels(labels);
}

// The value written by poison(): NaN for f32; for i64, a value no op produces.
inline constexpr int64_t kPoisonI64 = std::numeric_limits<int64_t>::min();

// Overwrites every element with the sentinel, so elements an op forgets to write show up in the comparison.
inline void poison(Tensor& t) {
  if (t.dtype() == DType::F32) {
    set_values(t, std::vector<float>(static_cast<size_t>(t.numel()), std::numeric_limits<float>::quiet_NaN()));
  } else {
    std::vector<int64_t> v(static_cast<size_t>(t.numel()), kPoisonI64);
    copy_bytes(t.raw(), t.device(), v.data(), Device::CPU, t.nbytes());
  }
}

inline Tensor poisoned(const Shape& shape, Device device = Device::CPU, DType dtype = DType::F32) {
  Tensor t = Tensor::empty(shape, dtype, device);
  poison(t);
  return t;
}

// Values of an f32 or i64 tensor on any device, widened to double (exactly).
inline std::vector<double> to_doubles(const Tensor& t) {
  const Tensor host = t.device() == Device::CPU ? t : t.to_cpu();
  std::vector<double> out(static_cast<size_t>(host.numel()));
  if (host.dtype() == DType::F32) {
    const float* p = host.f32();
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    const int64_t* p = host.i64();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  }
  return out;
}

inline int64_t count_nonfinite(const std::vector<double>& v) {
  int64_t n = 0;
  for (double x : v) n += std::isfinite(x) ? 0 : 1;
  return n;
}
inline int64_t count_nonfinite(const Tensor& t) { return count_nonfinite(to_doubles(t)); }
inline bool all_finite(const Tensor& t) { return count_nonfinite(t) == 0; }

// Normalised mean squared error Σ(a-b)² / Σb², with b the reference. An all-zero reference falls back to the
// absolute Σa², and a size mismatch or a non-finite value is reported as infinity so comparisons fail.
inline double nmse(const std::vector<double>& a, const std::vector<double>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = a[i] - ref[i];
    err += d * d;
    norm += ref[i] * ref[i];
  }
  if (!std::isfinite(err)) return std::numeric_limits<double>::infinity();
  return norm > 0.0 ? err / norm : err;
}
inline double nmse(const Tensor& a, const Tensor& ref) { return nmse(to_doubles(a), to_doubles(ref)); }

// Bitwise equality (so +0 vs -0 and differing NaN payloads count as differences).
inline bool bit_identical(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// The message of the error of type E that `f` throws, or a marker that makes the caller's substring checks fail
// (so a wrong exception type or no exception shows up in the failure message).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type: ") + e.what() + ">";
  }
  return "<no exception>";
}
template <class F>
std::string input_error_of(F&& f) {
  return error_of<InputError>(std::forward<F>(f));
}
template <class F>
std::string usage_error_of(F&& f) {
  return error_of<UsageError>(std::forward<F>(f));
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A fresh directory under $LETHE_TEST_TMP (or the system temp directory), removed with everything in it when the
// object goes out of scope. `tag` makes leftovers of a crashed run recognisable.
// Whole-file helpers for tests that build or corrupt files byte by byte.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test") {
    const char* env = std::getenv("LETHE_TEST_TMP");
    const std::filesystem::path base =
        env && *env ? std::filesystem::path(env) : std::filesystem::temp_directory_path();
    std::filesystem::create_directories(base);
    static std::atomic<uint64_t> counter{0};
    std::random_device entropy;
    // create_directory returns false if the name exists (another process), so retry with a new name.
    for (;;) {
      path_ = base / ("lethe-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                      std::to_string(entropy()));
      if (std::filesystem::create_directory(path_)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;  // a destructor must not throw; a leftover temp dir is harmless
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A small synthetic image set (1x12x12). With `signal`, class y lights row y * 12 / classes, so a few steps of
// training learn it; without, pixels are noise and only memorisation can fit the labels. A `label_noise` fraction
// of the labels are replaced by random ones.
// The 2-thread CPU backend the test cases share (models built on it may live in function statics across cases).
inline Backend& cpu() {
  static const std::unique_ptr<Backend> backend = make_cpu_backend(2);
  return *backend;
}

// LeNet-5's spec at Fashion-MNIST's shape and normalisation (the arch most tests build).
inline ModelSpec lenet5_spec() {
  ModelSpec spec;
  spec.arch = "lenet5";
  spec.mean = {0.2860f};
  spec.std = {0.3530f};
  return spec;  // ModelSpec's defaults: 1x28x28, 10 classes
}

inline Dataset synthetic_dataset(int64_t n, int64_t classes, uint64_t seed, bool signal = true,
                                 double label_noise = 0.0) {
  Rng rng(seed);
  Dataset d;
  d.name = "synthetic";
  d.num_classes = classes;
  d.images = Tensor::empty({n, 1, 12, 12});
  d.labels = Tensor::empty({n}, DType::I64);
  d.mean = {0.5f};
  d.std = {0.25f};
  float* px = d.images.f32();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = i % classes;
    for (int64_t p = 0; p < 144; ++p) {
      const bool lit = signal && p / 12 == y * 12 / classes;
      px[i * 144 + p] = std::clamp(rng.uniform(0.0f, signal ? 0.4f : 1.0f) + (lit ? 0.6f : 0.0f), 0.0f, 1.0f);
    }
    d.labels.i64()[i] = label_noise > 0 && rng.uniform01() < label_noise ? rng.integer(0, classes - 1) : y;
  }
  return d;
}

}  // namespace lethe::test
