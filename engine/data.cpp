#include "engine/data.h"

#include <algorithm>
#include <cstring>

#include "kernels/philox.h"

namespace lethe {

namespace {

// The Philox stream reserved for permutations, so they never share draws with weight init or dropout.
constexpr uint64_t kPermutationStream = 0x5045524D;  // "PERM"

// High 64 bits of the 128-bit product a * b, in portable 64-bit arithmetic.
uint64_t mulhi64(uint64_t a, uint64_t b) {
  const uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32, b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
  const uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
  const uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + lo_hi;
  return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

std::string describe(const Dataset& d) {
  return "dataset " + (d.name.empty() ? std::string("(unnamed)") : "'" + d.name + "'") + " of " +
         std::to_string(d.size()) + " samples";
}

void check_class(const Dataset& d, int64_t c) {
  if (c < 0 || c >= d.num_classes) {
    throw UsageError("class " + std::to_string(c) + " is out of range for " + describe(d) + " with " +
                     std::to_string(d.num_classes) + " classes");
  }
}

}  // namespace

Dataset subset(const Dataset& d, const std::vector<int64_t>& indices) {
  const int64_t n = d.size();
  for (int64_t i : indices) {
    if (i < 0 || i >= n) throw InputError("index " + std::to_string(i) + " is out of range for " + describe(d));
  }
  Dataset out;
  out.name = d.name;
  out.source = d.source;
  out.num_classes = d.num_classes;
  out.class_names = d.class_names;
  out.mean = d.mean;
  out.std = d.std;
  if (!d.labels.defined()) {
    LETHE_CHECK(indices.empty(), "indices into an empty dataset");
    return out;
  }
  LETHE_CHECK(d.images.defined() && d.images.ndim() == 4 && d.images.dim(0) == n,
              "dataset images must be [N, C, H, W] matching the labels");
  LETHE_CHECK(d.images.device() == Device::CPU && d.labels.device() == Device::CPU, "datasets live on the CPU");

  const auto k = static_cast<int64_t>(indices.size());
  Shape shape = d.images.shape();
  shape[0] = k;
  out.images = Tensor::empty(shape, DType::F32);
  out.labels = Tensor::empty({k}, DType::I64);
  const int64_t row = d.channels() * d.height() * d.width();
  const float* src = d.images.f32();
  float* dst = out.images.f32();
  const int64_t* src_labels = d.labels.i64();
  int64_t* dst_labels = out.labels.i64();
  for (int64_t r = 0; r < k; ++r) {
    const int64_t i = indices[static_cast<size_t>(r)];
    std::memcpy(dst + r * row, src + i * row, static_cast<size_t>(row) * sizeof(float));
    dst_labels[r] = src_labels[i];
  }
  return out;
}

Dataset concat(const std::vector<Dataset>& parts) {
  LETHE_CHECK(!parts.empty(), "concat of no datasets");
  const Dataset& first = parts.front();
  Shape row_shape;  // [C, H, W] of the first part with samples
  int64_t total = 0;
  std::string source;
  for (const Dataset& p : parts) {
    LETHE_CHECK(p.num_classes == first.num_classes, "concat of datasets with different class counts (" +
                                                         std::to_string(p.num_classes) + " vs " +
                                                         std::to_string(first.num_classes) + ")");
    source += (source.empty() ? "" : ", ") + p.source;
    if (p.size() == 0) continue;
    LETHE_CHECK(p.images.defined() && p.images.ndim() == 4 && p.images.dim(0) == p.size(),
                "dataset images must be [N, C, H, W] matching the labels");
    LETHE_CHECK(p.images.device() == Device::CPU && p.labels.device() == Device::CPU, "datasets live on the CPU");
    const Shape shape(p.images.shape().begin() + 1, p.images.shape().end());
    if (row_shape.empty()) row_shape = shape;
    LETHE_CHECK(shape == row_shape, "concat of datasets with different image shapes (" + shape_str(shape) +
                                        " vs " + shape_str(row_shape) + ")");
    total += p.size();
  }
  Dataset out;
  out.name = first.name;
  out.source = source;
  out.num_classes = first.num_classes;
  out.class_names = first.class_names;
  out.mean = first.mean;
  out.std = first.std;
  if (row_shape.empty()) return out;
  Shape shape = row_shape;
  shape.insert(shape.begin(), total);
  out.images = Tensor::empty(shape, DType::F32);
  out.labels = Tensor::empty({total}, DType::I64);
  int64_t at = 0;
  for (const Dataset& p : parts) {
    if (p.size() == 0) continue;
    std::memcpy(out.images.f32() + at * shape_numel(row_shape), p.images.f32(), p.images.nbytes());
    std::memcpy(out.labels.i64() + at, p.labels.i64(), p.labels.nbytes());
    at += p.size();
  }
  return out;
}

Dataset filter_classes(const Dataset& d, const std::vector<int64_t>& keep, const std::vector<int64_t>& drop) {
  std::vector<char> wanted(static_cast<size_t>(d.num_classes), keep.empty() ? 1 : 0);
  for (int64_t c : keep) {
    check_class(d, c);
    wanted[static_cast<size_t>(c)] = 1;
  }
  for (int64_t c : drop) {
    check_class(d, c);
    wanted[static_cast<size_t>(c)] = 0;
  }
  std::vector<int64_t> indices;
  const int64_t* labels = d.size() > 0 ? d.labels.i64() : nullptr;
  for (int64_t i = 0; i < d.size(); ++i) {
    const int64_t y = labels[i];
    LETHE_CHECK(y >= 0 && y < d.num_classes, "label " + std::to_string(y) + " out of range in " + describe(d));
    if (wanted[static_cast<size_t>(y)]) indices.push_back(i);
  }
  return subset(d, indices);
}

Dataset take_shuffled(const Dataset& d, int64_t n, uint64_t seed) {
  LETHE_CHECK(n >= 0, "take_shuffled of a negative count");
  std::vector<int64_t> order = seeded_permutation(d.size(), seed);
  order.resize(static_cast<size_t>(std::min(n, d.size())));
  return subset(d, order);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  LETHE_CHECK(n >= 0, "permutation of a negative size");
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  // Fisher-Yates from the top. Each step picks j uniformly in [0, i] as the high word of a 64-bit Philox draw
  // times (i + 1): no modulo, and a bias below (i + 1) / 2^64, which no experiment can see.
  for (int64_t i = n - 1; i > 0; --i) {
    const auto step = static_cast<uint64_t>(n - 1 - i);
    const uint64_t draw = (uint64_t(kernels::philox_word(seed, kPermutationStream, 2 * step)) << 32) |
                          kernels::philox_word(seed, kPermutationStream, 2 * step + 1);
    const auto j = static_cast<int64_t>(mulhi64(draw, static_cast<uint64_t>(i) + 1));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

std::vector<int64_t> class_counts(const Dataset& d) {
  std::vector<int64_t> counts(static_cast<size_t>(std::max<int64_t>(d.num_classes, 0)), 0);
  const int64_t* labels = d.size() > 0 ? d.labels.i64() : nullptr;
  for (int64_t i = 0; i < d.size(); ++i) {
    const int64_t y = labels[i];
    LETHE_CHECK(y >= 0 && y < d.num_classes, "label " + std::to_string(y) + " out of range in " + describe(d));
    ++counts[static_cast<size_t>(y)];
  }
  return counts;
}

}  // namespace lethe
