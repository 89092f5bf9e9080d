#pragma once
// The architectures, with PyTorch state-dict names and layouts.
#include <memory>
#include <string>
#include <vector>

#include "engine/data.h"
#include "engine/model.h"

namespace lethe {

// Builds an initialised model (PyTorch's default distributions for the arch, seeded). Throws UsageError for an
// unknown arch or an input shape the arch cannot take.
std::unique_ptr<Model> make_model(const ModelSpec& spec, Backend& be, uint64_t seed);
// Builds the layer tree only, uninitialised (loading a file overwrites every value anyway).
std::unique_ptr<Model> make_model_uninitialised(const ModelSpec& spec, Backend& be);
std::vector<std::string> known_archs();  // {"lenet5", "convnet", "resnet18", "mlp"}
// The spec of `arch` for a dataset: its image shape, class count and normalisation (hidden: mlp widths).
ModelSpec spec_for_data(const std::string& arch, const Dataset& data, std::vector<int64_t> hidden = {});

}  // namespace lethe
