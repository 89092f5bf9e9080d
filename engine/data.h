#pragma once
// An in-memory labelled image set: the common currency between the loaders (datasets/) and the trainer.
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lethe {

struct Dataset {
  std::string name;                  // "fashion-mnist", ...
  std::string source;                // where it was read from
  Tensor images;                     // [N, C, H, W] f32 pixels in [0, 1], CPU
  Tensor labels;                     // [N] i64 in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<float> mean, std;      // per-channel normalisation the model should apply

  int64_t size() const { return labels.defined() ? labels.numel() : 0; }
  int64_t channels() const { return images.dim(1); }
  int64_t height() const { return images.dim(2); }
  int64_t width() const { return images.dim(3); }
};

// Rows `indices` of `d` (deep copy, same metadata).
Dataset subset(const Dataset& d, const std::vector<int64_t>& indices);
// The rows of `parts` one after another (e.g. a dataset shipped as several files). Every part must have the same
// class count and image shape apart from N (LETHE_CHECK); name, class names and normalisation are the first part's,
// and source lists the parts' sources.
Dataset concat(const std::vector<Dataset>& parts);
// Keeps samples whose label is in `keep` (if non-empty) and not in `drop`. Labels are NOT remapped: the model keeps
// all num_classes outputs, which is what class-unlearning experiments need.
Dataset filter_classes(const Dataset& d, const std::vector<int64_t>& keep, const std::vector<int64_t>& drop);
// The first n rows after a seeded shuffle (n >= size keeps all, shuffled).
Dataset take_shuffled(const Dataset& d, int64_t n, uint64_t seed);
// A seeded permutation of [0, n): Fisher-Yates driven by Philox, identical on every platform.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);
// Counts per label.
std::vector<int64_t> class_counts(const Dataset& d);

}  // namespace lethe
