#include "datasets/registry.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "datasets/cifar.h"
#include "datasets/idx.h"
#include "datasets/mat5.h"
#include "datasets/stl10.h"
#include "engine/error.h"

namespace lethe {

namespace {

namespace fs = std::filesystem;

// Reads one split from the files named in the table, resolved to existing paths in the same order.
using SplitLoader = Dataset (*)(const std::vector<std::string>& files, const LoadOptions& options);

Dataset load_idx_files(const std::vector<std::string>& files, const LoadOptions&) {
  LETHE_CHECK(files.size() == 2, "an idx split is an images file and a labels file");
  return load_idx_pair(files[0], files[1], 10);
}

Dataset load_cifar10_files(const std::vector<std::string>& files, const LoadOptions&) {
  return load_cifar(files, CifarVariant::Cifar10);
}

const std::vector<std::string> kCifar100Fine = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm"};
const std::vector<std::string> kCifar100Coarse = {
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"};

Dataset load_cifar100_files(const std::vector<std::string>& files, const LoadOptions& options) {
  const bool coarse = options.label == "coarse";
  Dataset d = load_cifar(files, coarse ? CifarVariant::Cifar100Coarse : CifarVariant::Cifar100Fine);
  d.class_names = coarse ? kCifar100Coarse : kCifar100Fine;
  return d;
}

Dataset load_svhn_files(const std::vector<std::string>& files, const LoadOptions&) {
  if (files.size() == 1) return load_svhn(files[0]);
  std::vector<Dataset> parts;
  for (const std::string& f : files) parts.push_back(load_svhn(f));
  return concat(parts);
}

Dataset load_stl10_files(const std::vector<std::string>& files, const LoadOptions&) {
  LETHE_CHECK(files.size() == 2, "an STL-10 split is an X file and a y file");
  return load_stl10(files[0], files[1]);
}

// Everything the loader knows about one dataset. Adding a dataset means adding a row (and, for a new file
// format, a SplitLoader).
struct DatasetSpec {
  std::string name;
  std::vector<std::string> archive_dirs;  // where the official archive unpacks, tried inside each searched directory
  std::vector<std::string> train_files, test_files, extra_files;
  bool gzip_ok;                           // each file may also be present with a ".gz" suffix
  SplitLoader load;
  std::vector<std::string> class_names;   // empty: the loader names them
  std::vector<float> mean, std;           // per channel
  AugmentConfig augment;
  std::string how_to_get;
};

const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

const std::vector<DatasetSpec>& dataset_table() {
  static const std::vector<DatasetSpec> table = {
      {"mnist", {},
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
       {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
       {}, true, load_idx_files, kDigits, {0.1307f}, {0.3081f}, {},
       "download the four files from the official site (http://yann.lecun.com/exdb/mnist/) into ./data/mnist "
       "(gzipped or not)"},
      {"fashion-mnist", {},
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
       {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
       {}, true, load_idx_files,
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
       {0.2860f}, {0.3530f}, {},
       "apt-get install dataset-fashion-mnist (installs it into /usr/share/datasets/fashion-mnist)"},
      {"cifar10", {"cifar-10-batches-bin"},
       {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
       {"test_batch.bin"},
       {}, false, load_cifar10_files,
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"},
       {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, {4, true},
       "download the CIFAR-10 binary version (cifar-10-binary.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html) "
       "and unpack it into ./data/cifar10"},
      {"cifar100", {"cifar-100-binary"},
       {"train.bin"},
       {"test.bin"},
       {}, false, load_cifar100_files, {},
       {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, {4, true},
       "download the CIFAR-100 binary version (cifar-100-binary.tar.gz, "
       "https://www.cs.toronto.edu/~kriz/cifar.html) and unpack it into ./data/cifar100"},
      {"svhn", {},
       {"train_32x32.mat"},
       {"test_32x32.mat"},
       {"extra_32x32.mat"}, false, load_svhn_files, kDigits,
       {0.4377f, 0.4438f, 0.4728f}, {0.1980f, 0.2010f, 0.1970f}, {4, false},
       "download the cropped digits (train_32x32.mat, test_32x32.mat, optionally extra_32x32.mat; "
       "http://ufldl.stanford.edu/housenumbers/) into ./data/svhn"},
      {"stl10", {"stl10_binary"},
       {"train_X.bin", "train_y.bin"},
       {"test_X.bin", "test_y.bin"},
       {}, false, load_stl10_files,
       {"airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"},
       {0.4467f, 0.4398f, 0.4066f}, {0.2603f, 0.2566f, 0.2713f}, {12, true},
       "download the STL-10 binary version (stl10_binary.tar.gz, https://cs.stanford.edu/~acoates/stl10/) and "
       "unpack it into ./data/stl10"},
  };
  return table;
}

// Image folders have no fixed files; they are resolved separately (see folder_dir).
constexpr const char* kFolder = "folder";

const DatasetSpec& find_spec(const std::string& name) {
  for (const DatasetSpec& s : dataset_table())
    if (s.name == name) return s;
  std::string known;
  for (const std::string& k : known_datasets()) known += (known.empty() ? "" : ", ") + k;
  throw UsageError("unknown dataset '" + name + "' (known: " + known + ", folder:PATH)");
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The path of `base` (or `base.gz` where allowed) in `dir`, or empty if not there.
std::string find_file(const fs::path& dir, const std::string& base, bool gzip_ok) {
  if (is_file(dir / base)) return (dir / base).string();
  if (gzip_ok && is_file(dir / (base + ".gz"))) return (dir / (base + ".gz")).string();
  return {};
}

// "a[.gz], b[.gz]": how file names appear in messages.
std::string file_list(const std::vector<std::string>& bases, bool gzip_ok) {
  std::string s;
  for (const std::string& base : bases) s += (s.empty() ? "" : ", ") + base + (gzip_ok ? "[.gz]" : "");
  return s;
}

const std::vector<std::string>& split_files(const DatasetSpec& spec, Split split) {
  switch (split) {
    case Split::Train: return spec.train_files;
    case Split::Test: return spec.test_files;
    case Split::Extra: return spec.extra_files;
  }
  LETHE_CHECK(false, "unknown split");
  return spec.train_files;
}

// Where a split's files were found, or the report of every place looked at.
struct Located {
  std::string dir;
  std::vector<std::string> files;
  std::string looked;  // one line per directory tried, for the error
};

Located locate(const DatasetSpec& spec, const DataRef& ref, Split split) {
  const std::vector<std::string>& bases = split_files(spec, split);
  const std::vector<std::string> roots = ref.path.empty() ? data_search_path(ref.name)
                                                          : std::vector<std::string>{ref.path};
  Located found;
  for (const std::string& root : roots) {
    std::vector<fs::path> candidates = {root};
    for (const std::string& sub : spec.archive_dirs) candidates.push_back(fs::path(root) / sub);
    for (const fs::path& dir : candidates) {
      std::vector<std::string> files, missing;
      for (const std::string& base : bases) {
        files.push_back(find_file(dir, base, spec.gzip_ok));
        if (files.back().empty()) missing.push_back(base);
      }
      if (missing.empty()) {
        found.dir = dir.string();
        found.files = files;
        return found;
      }
      std::error_code ec;
      const fs::file_status st = fs::status(dir, ec);
      if (dir != fs::path(root) && !fs::exists(st)) continue;  // an absent archive sub-directory is not news
      found.looked += "\n  " + dir.string();
      if (fs::is_directory(st)) found.looked += " (lacks " + file_list(missing, spec.gzip_ok) + ")";
      else found.looked += fs::exists(st) ? " (not a directory)" : " (no such directory)";
    }
  }
  return found;
}

// The directory of a folder dataset's split, or empty if the folder has no such split.
std::string folder_dir(const DataRef& ref, Split split) {
  const fs::path root(ref.path);
  if (!is_dir(root / "train")) return split == Split::Train ? ref.path : std::string();
  switch (split) {
    case Split::Train: return (root / "train").string();
    case Split::Test:
      if (is_dir(root / "test")) return (root / "test").string();
      return is_dir(root / "val") ? (root / "val").string() : std::string();
    case Split::Extra: return {};
  }
  return {};
}

Dataset load_folder(const DataRef& ref, Split split, const LoadOptions& options) {
  const std::string dir = folder_dir(ref, split);
  if (dir.empty())
    throw InputError("folder:" + ref.path + " has no " + split_name(split) + " split (a folder with train/ and " +
                     "test/ (or val/) sub-directories has both; a plain ROOT/CLASS_NAME/*.png folder is a train "
                     "split only)");
  Dataset d = load_image_folder(dir, options.resize);
  if (split != Split::Train) {
    // Labels are positions of class names, so the test classes must be the train classes in the same order.
    const std::string train_dir = folder_dir(ref, Split::Train);
    std::vector<std::string> train_classes;
    for (const auto& entry : fs::directory_iterator(train_dir))
      if (entry.is_directory() && entry.path().filename().string()[0] != '.')
        train_classes.push_back(entry.path().filename().string());
    std::sort(train_classes.begin(), train_classes.end());
    if (train_classes != d.class_names)
      throw InputError("folder:" + ref.path + ": the class directories of " + dir + " differ from those of " +
                       train_dir + " (both splits need the same class names)");
  }
  return d;
}

// Resizes every image (bilinear) unless it already has the size.
Dataset resized(Dataset d, ImageSize to) {
  if (to.empty() || (d.height() == to.height && d.width() == to.width)) return d;
  const int64_t n = d.size(), c = d.channels();
  Tensor out = Tensor::empty({n, c, to.height, to.width});
  const int64_t in_row = c * d.height() * d.width(), out_row = c * to.height * to.width;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    Tensor image = Tensor::empty({c, d.height(), d.width()});
    std::copy_n(d.images.f32() + i * in_row, in_row, image.f32());
    const Tensor r = resize_bilinear(image, to);
    std::copy_n(r.f32(), out_row, out.f32() + i * out_row);
  }
  d.images = out;
  return d;
}

void check_options(const DataRef& ref, const LoadOptions& options) {
  if (options.label != "fine" && options.label != "coarse")
    throw UsageError("--label must be fine or coarse, not '" + options.label + "'");
  if (options.label == "coarse" && ref.name != "cifar100")
    throw UsageError("--label coarse applies to cifar100 only");
  if (options.with_extra && ref.name != "svhn") throw UsageError("--with-extra applies to svhn only");
}

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Test: return "test";
    case Split::Extra: return "extra";
  }
  return "?";
}

nlohmann::json LoadOptions::to_json() const {
  nlohmann::json j = {{"label", label}, {"with_extra", with_extra}};
  j["resize"] = resize.empty() ? nlohmann::json(nullptr)
                               : nlohmann::json(std::to_string(resize.height) + "x" + std::to_string(resize.width));
  return j;
}

DataRef parse_data_ref(const std::string& text) {
  const size_t colon = text.find(':');
  DataRef ref;
  ref.name = text.substr(0, colon);
  if (colon != std::string::npos) {
    ref.path = text.substr(colon + 1);
    if (ref.path.empty()) throw UsageError("--data " + text + ": empty path after ':' (use NAME or NAME:PATH)");
  }
  if (ref.name.empty()) throw UsageError("--data '" + text + "': no dataset name (use NAME or NAME:PATH)");
  if (ref.name == kFolder) {
    if (ref.path.empty()) throw UsageError("--data folder needs a path: folder:PATH (PATH/CLASS_NAME/*.png)");
  } else {
    find_spec(ref.name);
  }
  return ref;
}

std::vector<std::string> known_datasets() {
  std::vector<std::string> names;
  for (const DatasetSpec& s : dataset_table()) names.push_back(s.name);
  return names;
}

std::vector<std::string> data_search_path(const std::string& name) {
  std::vector<std::string> dirs;
  const char* env = std::getenv("LETHE_DATA");
  if (env && *env) dirs.push_back((fs::path(env) / name).string());
  dirs.push_back("./data/" + name);
  dirs.push_back("/usr/share/datasets/" + name);
  return dirs;
}

std::vector<Split> dataset_splits(const DataRef& ref) {
  if (ref.name == kFolder) {
    std::vector<Split> splits = {Split::Train};
    if (!folder_dir(ref, Split::Test).empty()) splits.push_back(Split::Test);
    return splits;
  }
  const DatasetSpec& spec = find_spec(ref.name);
  std::vector<Split> splits = {Split::Train, Split::Test};
  if (!spec.extra_files.empty()) splits.push_back(Split::Extra);
  return splits;
}

bool split_available(const DataRef& ref, Split split) {
  if (ref.name == kFolder) return !folder_dir(ref, split).empty();
  const DatasetSpec& spec = find_spec(ref.name);
  return !split_files(spec, split).empty() && !locate(spec, ref, split).dir.empty();
}

Dataset load_dataset(const DataRef& ref, Split split, const LoadOptions& options) {
  check_options(ref, options);
  if (ref.name == kFolder) {
    Dataset d = load_folder(ref, split, options);
    d.name = kFolder;
    return d;
  }
  const DatasetSpec& spec = find_spec(ref.name);
  if (split_files(spec, split).empty())
    throw UsageError("dataset '" + spec.name + "' has no " + split_name(split) + " split");
  const Located at = locate(spec, ref, split);
  if (at.dir.empty()) {
    std::string msg = "dataset '" + spec.name + "' (" + split_name(split) + " split) not found. Looked in:" +
                      at.looked + "\nexpected files: " + file_list(split_files(spec, split), spec.gzip_ok) +
                      "\nto get it: " + spec.how_to_get;
    if (ref.path.empty()) {
      msg += "; or point LETHE_DATA at a directory holding " + spec.name + "/, or pass --data " + spec.name +
             ":PATH";
    }
    throw InputError(msg);
  }
  std::vector<std::string> files = at.files;
  if (split == Split::Train && options.with_extra) {
    const Located extra = locate(spec, DataRef{ref.name, at.dir}, Split::Extra);
    if (extra.dir.empty())
      throw InputError("--with-extra: " + file_list(spec.extra_files, spec.gzip_ok) + " not found in " + at.dir);
    files.insert(files.end(), extra.files.begin(), extra.files.end());
  }
  Dataset d = resized(spec.load(files, options), options.resize);
  d.name = spec.name;
  d.source = at.dir;
  if (!spec.class_names.empty()) d.class_names = spec.class_names;
  LETHE_CHECK(static_cast<int64_t>(d.class_names.size()) == d.num_classes, "class names of " + spec.name);
  d.mean = spec.mean;
  d.std = spec.std;
  return d;
}

AugmentConfig default_augment(const std::string& name) {
  if (name == kFolder) return {};
  return find_spec(name).augment;
}

}  // namespace lethe
