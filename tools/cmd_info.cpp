// `lethe info`: what a model file holds: arch, provenance, tensors and parameter counts. Plain safetensors files
// (e.g. a PyTorch state dict) are listed too; a file that claims to be a Lethe model must load as one.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <CLI/CLI.hpp>

#include "engine/safetensors.h"
#include "nets/model_io.h"
#include "tools/common.h"

namespace lethe::cli {
namespace {

struct InfoOptions {
  std::string model;
};

// Metadata values are strings; the ones holding JSON objects or arrays are shown as JSON.
nlohmann::json metadata_value(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() || j.is_array() ? j : nlohmann::json(text);
}

std::string indent_after_first_line(const std::string& text, const std::string& pad) {
  std::string out;
  for (const char c : text) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}

std::string float_list(const std::vector<float>& values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4g", i ? ", " : "", static_cast<double>(values[i]));
    s += buf;
  }
  return s + "]";
}

int run_info(const InfoOptions& o, const GlobalOptions& g) {
  const SafeTensorsFile file = read_safetensors(o.model);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(o.model, ec);

  // A Lethe model names its arch; load it fully so a damaged one is reported, and to tell parameters from buffers.
  std::unique_ptr<Backend> be;
  std::unique_ptr<Model> model;
  if (file.metadata.count("arch")) {
    be = make_backend(g.device, g.threads);
    model = load_model(o.model, *be);
  }

  int64_t total_elements = 0;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, t] : file.tensors) {
    total_elements += t.numel();
    tensors.push_back({{"name", name}, {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"numel", t.numel()}});
  }
  const int64_t parameters = model ? model->arena().size() : total_elements;
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : file.metadata) metadata[key] = metadata_value(value);

  if (g.json) {
    nlohmann::json result = {{"file", o.model},
                             {"bytes", ec ? 0 : static_cast<int64_t>(bytes)},
                             {"arch", model ? nlohmann::json(model->spec().arch) : nlohmann::json(nullptr)},
                             {"metadata", metadata},
                             {"tensors", tensors},
                             {"parameters", parameters},
                             {"buffer_elements", total_elements - parameters}};
    if (model) {
      const ModelSpec& s = model->spec();
      result["spec"] = {{"arch", s.arch}, {"input_shape", {s.channels, s.height, s.width}},
                        {"num_classes", s.num_classes}, {"hidden", s.hidden}, {"mean", s.mean}, {"std", s.std}};
    }
    std::printf("%s\n", result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }

  std::printf("file:       %s (%s bytes)\n", o.model.c_str(), ec ? "?" : group_digits(static_cast<int64_t>(bytes)).c_str());
  if (model) {
    const ModelSpec& s = model->spec();
    std::printf("arch:       %s\n", s.arch.c_str());
    std::printf("input:      %s pixels, %lld classes\n", shape_str({s.channels, s.height, s.width}).c_str(),
                static_cast<long long>(s.num_classes));
    if (!s.hidden.empty()) std::printf("hidden:     %s\n", shape_str(s.hidden).c_str());
    if (!s.mean.empty())
      std::printf("normalise:  mean %s, std %s\n", float_list(s.mean).c_str(), float_list(s.std).c_str());
    std::printf("parameters: %s trainable, %s buffer elements\n", group_digits(parameters).c_str(),
                group_digits(total_elements - parameters).c_str());
  } else {
    std::printf("arch:       none (a plain safetensors file, not a Lethe model)\n");
    std::printf("parameters: %s elements\n", group_digits(total_elements).c_str());
  }

  std::printf("metadata:%s\n", metadata.empty() ? " none" : "");
  for (const auto& [key, value] : metadata.items()) {
    const std::string shown = value.is_string() ? value.get<std::string>()
                              : value.is_array() ? value.dump()
                                                 : value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("  %s: %s\n", key.c_str(), indent_after_first_line(shown, "  ").c_str());
  }

  size_t name_width = 4;
  for (const auto& [name, t] : file.tensors) name_width = std::max(name_width, name.size());
  std::printf("tensors: %zu\n", file.tensors.size());
  for (const auto& [name, t] : file.tensors)
    std::printf("  %-*s  %-3s  %-18s %s\n", static_cast<int>(name_width), name.c_str(), dtype_name(t.dtype()),
                shape_str(t.shape()).c_str(), group_digits(t.numel()).c_str());
  return 0;
}

}  // namespace

Command add_info_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* app = parent.add_subcommand("info", "Show a model file's arch, metadata, tensors and parameter count");
  app->add_option("model,--model", o->model, "Model file (.safetensors)")->required();
  add_global_options(*app, g);
  return {app, [o, &g] { return run_info(*o, g); }};
}

}  // namespace lethe::cli
