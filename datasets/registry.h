#pragma once
// Finding datasets by name: `--data NAME` searches $LETHE_DATA/NAME, ./data/NAME, /usr/share/datasets/NAME;
// `--data NAME:PATH` reads PATH. If nothing is found the error lists every place looked at, the files expected
// there and how to get them.
#include <string>
#include <vector>

#include "engine/data.h"

namespace lethe {

enum class Split { Train, Test };

struct DataRef {
  std::string name;   // "fashion-mnist", "mnist"
  std::string path;   // explicit directory, or empty to search
};
// Parses "NAME" or "NAME:PATH". Throws UsageError for an unknown name.
DataRef parse_data_ref(const std::string& text);
std::vector<std::string> known_datasets();
// Directories searched for `name`, in order.
std::vector<std::string> data_search_path(const std::string& name);

// Loads a split with the dataset's class names and normalisation (mean/std) filled in.
Dataset load_dataset(const DataRef& ref, Split split);

}  // namespace lethe
