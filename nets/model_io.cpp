#include "nets/model_io.h"

#include <cstdio>
#include <set>

#include "engine/safetensors.h"
#include "nets/nets.h"

namespace lethe {

namespace {

// JSON arrays as metadata strings (safetensors metadata values must be strings).
std::string int_list(const std::vector<int64_t>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(values[i]);
  }
  return s + "]";
}

// %.9g round-trips every float exactly.
std::string float_list(const std::vector<float>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(values[i]));
    if (i) s += ',';
    s += buf;
  }
  return s + "]";
}

class MetadataReader {
 public:
  MetadataReader(const std::string& path, const std::map<std::string, std::string>& metadata)
      : path_(path), metadata_(metadata) {}

  const std::string* find(const std::string& key) const {
    const auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(path_ + ": metadata \"" + key + "\" " + what);
  }
  const std::string& required(const std::string& key) const {
    const std::string* v = find(key);
    if (!v) fail(key, "is missing (a Lethe model file records arch, input_shape and num_classes in its __metadata__)");
    return *v;
  }
  nlohmann::json parse(const std::string& key, const std::string& text) const {
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error&) {
      fail(key, "is not valid JSON: '" + text + "'");
    }
  }
  // A JSON array of positive integers, of exactly `length` entries unless length < 0.
  std::vector<int64_t> positive_ints(const std::string& key, int length) const {
    const std::string& text = required(key);
    const nlohmann::json j = parse(key, text);
    if (!j.is_array() || (length >= 0 && j.size() != static_cast<size_t>(length)))
      fail(key, "must be a JSON array of " + (length >= 0 ? std::to_string(length) + " " : std::string()) +
                    "positive integers, found '" + text + "'");
    std::vector<int64_t> out;
    for (const auto& v : j) {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        fail(key, "must hold positive integers only, found '" + text + "'");
      out.push_back(v.get<int64_t>());
    }
    return out;
  }
  int64_t positive_int(const std::string& key) const {
    const std::string& text = required(key);
    const nlohmann::json j = parse(key, text);
    if (!j.is_number_integer() || j.get<int64_t>() <= 0) fail(key, "must be a positive integer, found '" + text + "'");
    return j.get<int64_t>();
  }
  // Optional per-channel floats: absent or "[]" means no normalisation.
  std::vector<float> channel_floats(const std::string& key, int64_t channels, bool positive) const {
    const std::string* text = find(key);
    if (!text) return {};
    const nlohmann::json j = parse(key, *text);
    if (!j.is_array() || (!j.empty() && j.size() != static_cast<size_t>(channels)))
      fail(key, "must be a JSON array of " + std::to_string(channels) + " numbers (one per channel), found '" +
                    *text + "'");
    std::vector<float> out;
    for (const auto& v : j) {
      if (!v.is_number() || (positive && v.get<double>() <= 0))
        fail(key, std::string("must hold ") + (positive ? "positive " : "") + "numbers only, found '" + *text + "'");
      out.push_back(v.get<float>());
    }
    return out;
  }

 private:
  const std::string& path_;
  const std::map<std::string, std::string>& metadata_;
};

ModelSpec spec_from_metadata(const std::string& path, const std::map<std::string, std::string>& metadata) {
  const MetadataReader meta(path, metadata);
  ModelSpec spec;
  spec.arch = meta.required("arch");
  const std::vector<int64_t> input = meta.positive_ints("input_shape", 3);
  spec.channels = input[0];
  spec.height = input[1];
  spec.width = input[2];
  spec.num_classes = meta.positive_int("num_classes");
  if (spec.arch == "mlp") spec.hidden = meta.positive_ints("hidden", -1);
  // Written only when set; a file without it has the arch's default width.
  if (meta.find("base_channels")) spec.base_channels = meta.positive_int("base_channels");
  spec.mean = meta.channel_floats("mean", spec.channels, false);
  spec.std = meta.channel_floats("std", spec.channels, true);
  if (spec.mean.size() != spec.std.size())
    throw InputError(path + ": metadata \"mean\" and \"std\" must both be given or both be empty");
  return spec;
}

std::string describe(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()); }

// Strict, like PyTorch's load_state_dict(strict=True): the file must hold exactly the model's tensors with the
// same dtypes and shapes. Everything is checked before anything is copied, so a rejected file leaves the model as
// it was.
void load_state(Model& model, const SafeTensorsFile& file, const std::string& path) {
  const auto state = model.state_dict();
  std::set<std::string> expected;
  for (const auto& [name, dst] : state) {
    expected.insert(name);
    const Tensor* src = file.find(name);
    if (!src)
      throw InputError(path + ": tensor '" + name + "' (" + describe(dst) + ") is missing for arch '" +
                       model.spec().arch + "'");
    if (src->dtype() != dst.dtype() || src->shape() != dst.shape())
      throw InputError(path + ": tensor '" + name + "' is " + describe(*src) + ", arch '" + model.spec().arch +
                       "' expects " + describe(dst));
  }
  for (const auto& [name, src] : file.tensors)
    if (!expected.count(name))
      throw InputError(path + ": unexpected tensor '" + name + "' (" + describe(src) + ") not in arch '" +
                       model.spec().arch + "'");
  for (const auto& [name, dst] : state) {
    const Tensor& src = *file.find(name);
    copy_bytes(dst.raw(), dst.device(), src.raw(), Device::CPU, src.nbytes());
  }
}

}  // namespace

void save_model(const Model& model, const std::string& path) {
  const ModelSpec& spec = model.spec();
  std::map<std::string, std::string> metadata{
      {"format", "pt"},
      {"arch", spec.arch},
      {"input_shape", int_list({spec.channels, spec.height, spec.width})},
      {"num_classes", std::to_string(spec.num_classes)},
      {"mean", float_list(spec.mean)},
      {"std", float_list(spec.std)},
      {"lethe_version", LETHE_VERSION},
      // replace: provenance strings that are not UTF-8 must not make saving fail.
      {"lethe", model.metadata().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
  };
  if (spec.arch == "mlp") metadata["hidden"] = int_list(spec.hidden);
  // Only when set, so a model at the default width writes the same file as before the field existed.
  if (spec.base_channels != 0) metadata["base_channels"] = std::to_string(spec.base_channels);
  write_safetensors(path, model.state_dict(), metadata);
}

std::unique_ptr<Model> load_model(const std::string& path, Backend& be) {
  const SafeTensorsFile file = read_safetensors(path);
  const ModelSpec spec = spec_from_metadata(path, file.metadata);
  std::unique_ptr<Model> model;
  try {
    model = make_model_uninitialised(spec, be);
  } catch (const UsageError& e) {  // an unknown arch or impossible shape is the file's fault here
    throw InputError(path + ": metadata describes a model Lethe cannot build: " + e.what());
  }
  load_state(*model, file, path);
  if (const auto it = file.metadata.find("lethe"); it != file.metadata.end()) {
    // Provenance only: an unreadable value costs the history, not the model.
    nlohmann::json provenance = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (provenance.is_object()) model->metadata() = std::move(provenance);
  }
  return model;
}

void load_weights(Model& model, const std::string& path) { load_state(model, read_safetensors(path), path); }

}  // namespace lethe
