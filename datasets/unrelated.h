#pragma once
// Unrelated (out-of-distribution) images, generated: the parameter attacks fine-tune an auxiliary model on data the
// target never saw, labelled afterwards by the model's own predictions. Deterministic in the seed (Philox streams
// keyed by image index, so image i is the same whatever n is and however many threads run).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data.h"

namespace lethe {

enum class UnrelatedKind {
  UniformNoise,   // i.i.d. uniform pixels
  GaussianNoise,  // clamp(N(0.5, 0.25^2))
  SmoothNoise,    // low-frequency noise: a coarse random grid upsampled bilinearly
  Shapes,         // procedural shapes (rectangles, ellipses, lines, triangles) in random colours on a random background
  Mixed,          // image i takes kind i mod 4, so every kind is equally represented
};
UnrelatedKind parse_unrelated_kind(const std::string& text);  // "uniform", "gaussian", "smooth", "shapes", "mixed"
std::string unrelated_kind_name(UnrelatedKind k);

// n images [n, channels, height, width] in [0, 1]. Labels are all 0 and num_classes is 1: callers relabel.
// Throws UsageError for a non-positive size or more than 2^31 pixels in total.
Dataset make_unrelated(int64_t n, int64_t channels, int64_t height, int64_t width, UnrelatedKind kind,
                       uint64_t seed);

}  // namespace lethe
