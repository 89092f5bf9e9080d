#pragma once
// Models on disk: safetensors with PyTorch state-dict names. __metadata__ carries what is needed to rebuild the
// model (arch, input shape, classes, mean/std, mlp widths, base_channels when set) and its provenance (dataset,
// split/seed, training config, lethe version) from Model::metadata().
#include <memory>
#include <string>

#include "engine/model.h"

namespace lethe {

void save_model(const Model& model, const std::string& path);
// Rebuilds the arch named in the metadata and loads every tensor, checking names, dtypes and shapes against the
// arch. Throws InputError naming the file and the defect.
std::unique_ptr<Model> load_model(const std::string& path, Backend& be);
// Loads a state dict (e.g. written by PyTorch) into an existing model of the right arch; same checks.
void load_weights(Model& model, const std::string& path);

}  // namespace lethe
