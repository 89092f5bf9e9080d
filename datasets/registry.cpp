#include "datasets/registry.h"

#include <cstdlib>
#include <filesystem>

#include "datasets/idx.h"
#include "engine/error.h"

namespace lethe {

namespace {

namespace fs = std::filesystem;

// Reads one split from the files named in the table, resolved to existing paths in the same order.
using SplitLoader = Dataset (*)(const std::vector<std::string>& files, int64_t num_classes);

Dataset load_idx_files(const std::vector<std::string>& files, int64_t num_classes) {
  LETHE_CHECK(files.size() == 2, "an idx split is an images file and a labels file");
  return load_idx_pair(files[0], files[1], num_classes);
}

// Everything the loader knows about one dataset. Adding a dataset means adding a row (and, for a new file
// format, a SplitLoader).
struct DatasetSpec {
  std::string name;
  std::vector<std::string> train_files;  // base names; each may also be present with a ".gz" suffix
  std::vector<std::string> test_files;
  SplitLoader load;
  int64_t num_classes;
  std::vector<std::string> class_names;
  std::vector<float> mean, std;  // per channel
  std::string how_to_get;
};

const std::vector<DatasetSpec>& dataset_table() {
  static const std::vector<DatasetSpec> table = {
      {"mnist",
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
       {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
       load_idx_files,
       10,
       {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
       {0.1307f},
       {0.3081f},
       "download the four files from the official site (http://yann.lecun.com/exdb/mnist/) into ./data/mnist "
       "(gzipped or not)"},
      {"fashion-mnist",
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
       {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
       load_idx_files,
       10,
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
       {0.2860f},
       {0.3530f},
       "apt-get install dataset-fashion-mnist (installs it into /usr/share/datasets/fashion-mnist)"},
  };
  return table;
}

const DatasetSpec& find_spec(const std::string& name) {
  for (const DatasetSpec& s : dataset_table())
    if (s.name == name) return s;
  std::string known;
  for (const std::string& k : known_datasets()) known += (known.empty() ? "" : ", ") + k;
  throw UsageError("unknown dataset '" + name + "' (known: " + known + ")");
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The path of `base` or `base.gz` in `dir`, or empty if neither is there.
std::string find_file(const std::string& dir, const std::string& base) {
  for (const fs::path& p : {fs::path(dir) / base, fs::path(dir) / (base + ".gz")})
    if (is_file(p)) return p.string();
  return {};
}

// "a[.gz], b[.gz]": how file names appear in messages, since either form is accepted.
std::string file_list(const std::vector<std::string>& bases) {
  std::string s;
  for (const std::string& base : bases) s += (s.empty() ? "" : ", ") + base + "[.gz]";
  return s;
}

}  // namespace

DataRef parse_data_ref(const std::string& text) {
  const size_t colon = text.find(':');
  DataRef ref;
  ref.name = text.substr(0, colon);
  if (colon != std::string::npos) {
    ref.path = text.substr(colon + 1);
    if (ref.path.empty()) throw UsageError("--data " + text + ": empty path after ':' (use NAME or NAME:PATH)");
  }
  if (ref.name.empty()) throw UsageError("--data '" + text + "': no dataset name (use NAME or NAME:PATH)");
  find_spec(ref.name);
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

Dataset load_dataset(const DataRef& ref, Split split) {
  const DatasetSpec& spec = find_spec(ref.name);
  const std::vector<std::string>& bases = split == Split::Train ? spec.train_files : spec.test_files;
  const std::vector<std::string> dirs = ref.path.empty() ? data_search_path(ref.name)
                                                         : std::vector<std::string>{ref.path};

  std::string looked;  // one line per directory, for the error if no directory has every file
  for (const std::string& dir : dirs) {
    std::vector<std::string> files, missing;
    for (const std::string& base : bases) {
      files.push_back(find_file(dir, base));
      if (files.back().empty()) missing.push_back(base);
    }
    if (missing.empty()) {
      Dataset d = spec.load(files, spec.num_classes);
      d.name = spec.name;
      d.source = dir;
      d.class_names = spec.class_names;
      d.mean = spec.mean;
      d.std = spec.std;
      return d;
    }
    std::error_code ec;
    const fs::file_status st = fs::status(dir, ec);
    looked += "\n  " + dir;
    if (fs::is_directory(st)) looked += " (lacks " + file_list(missing) + ")";
    else looked += fs::exists(st) ? " (not a directory)" : " (no such directory)";
  }

  const char* split_name = split == Split::Train ? "train" : "test";
  std::string msg = "dataset '" + spec.name + "' (" + split_name + " split) not found. Looked in:" + looked +
                    "\nexpected files: " + file_list(bases) + "\nto get it: " + spec.how_to_get;
  if (ref.path.empty()) {
    msg += "; or point LETHE_DATA at a directory holding " + spec.name + "/, or pass --data " + spec.name + ":PATH";
  }
  throw InputError(msg);
}

}  // namespace lethe
