#pragma once
// Finding datasets by name: `--data NAME` searches $LETHE_DATA/NAME, ./data/NAME, /usr/share/datasets/NAME (and in
// each, the directory the official archive unpacks to, e.g. cifar-10-batches-bin/); `--data NAME:PATH` reads PATH.
// If nothing is found the error lists every place looked at, the files expected there and how to get them.
// `folder:PATH` reads an image folder: PATH/train/CLASS and PATH/test/CLASS (or PATH/val/CLASS) when PATH/train
// exists, otherwise PATH/CLASS as a train split with no test split.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/image_folder.h"
#include "engine/augment.h"
#include "engine/data.h"

namespace lethe {

enum class Split { Train, Test, Extra };
const char* split_name(Split s);  // "train", "test", "extra"

struct DataRef {
  std::string name;   // "fashion-mnist", "cifar10", "folder", ...
  std::string path;   // explicit directory, or empty to search
};
// Parses "NAME" or "NAME:PATH". Throws UsageError for an unknown name (or "folder" without a path).
DataRef parse_data_ref(const std::string& text);
std::vector<std::string> known_datasets();
// Directories searched for `name`, in order.
std::vector<std::string> data_search_path(const std::string& name);

// How to read a dataset beyond its files; recorded in model metadata.
struct LoadOptions {
  std::string label = "fine";   // CIFAR-100 only: "fine" (100 classes) or "coarse" (20 superclasses)
  ImageSize resize;             // bilinear resize of every image (empty: keep)
  bool with_extra = false;      // SVHN only: append extra_32x32.mat to the train split
  nlohmann::json to_json() const;
};

// The splits the dataset defines (train and test; SVHN also extra; a flat image folder train only).
std::vector<Split> dataset_splits(const DataRef& ref);
// Whether the split's files are present (searching as load_dataset does).
bool split_available(const DataRef& ref, Split split);
// Loads a split with the dataset's class names and normalisation (mean/std) filled in. Throws InputError listing
// every place looked at if the files are missing, UsageError for options the dataset does not take.
Dataset load_dataset(const DataRef& ref, Split split, const LoadOptions& options = {});
// The training-time augmentation the dataset gets by default: crop (pad 4; STL-10 pad 12) and flip for CIFAR and
// STL-10, crop without flip for SVHN (digits are not mirror-symmetric), none for idx data and image folders.
AugmentConfig default_augment(const std::string& name);

}  // namespace lethe
