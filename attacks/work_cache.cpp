#include "attacks/work_cache.h"

#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "engine/hash.h"
#include "engine/safetensors.h"
#include "nets/model_io.h"
#include "nets/nets.h"

namespace lethe::attacks {

std::string json_hash(const nlohmann::json& j) {
  const std::string text = j.dump();
  return hex64(fnv1a(kFnvBasis, text.data(), text.size()));
}

std::string data_hash(const Dataset& d) {
  uint64_t h = fnv1a(kFnvBasis, d.images.raw(), d.images.nbytes());
  h = fnv1a(h, d.labels.raw(), d.labels.nbytes());
  return hex64(h);
}

std::string model_hash(const Model& m) {
  const ModelSpec& s = m.spec();
  const std::string arch = nlohmann::json({s.arch, s.channels, s.height, s.width, s.num_classes, s.hidden,
                                           s.base_channels, s.mean, s.std})
                               .dump();
  uint64_t h = fnv1a(kFnvBasis, arch.data(), arch.size());
  for (const auto& [name, t] : m.state_dict()) {
    const Tensor host = t.to_cpu();
    h = fnv1a(h, name.data(), name.size());
    h = fnv1a(h, host.raw(), host.nbytes());
  }
  return hex64(h);
}

std::unique_ptr<Model> copy_of(const Model& m) {
  auto c = make_model_uninitialised(m.spec(), m.backend());
  c->copy_state_from(m);
  return c;
}

WorkCache::WorkCache(std::string dir, CacheCounts& counts, const AttackLogFn& log)
    : dir_(std::move(dir)), counts_(counts), log_(log) {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    throw UsageError("--work " + dir_ + ": cannot create the directory (" + ec.message() + ")");
}

std::unique_ptr<Model> WorkCache::model(const std::string& what, const nlohmann::json& key, Backend& be,
                                        const std::function<std::unique_ptr<Model>()>& build) {
  const std::string path = file(what, key, ".safetensors");
  if (!path.empty() && std::filesystem::exists(path)) {
    ++counts_.models_cached;
    say(what + ": cached " + path);
    return load_model(path, be);
  }
  say(what + ": training");
  auto m = build();
  ++counts_.models_trained;
  if (!path.empty()) save_model(*m, path);
  return m;
}

nlohmann::json WorkCache::json(const std::string& what, const nlohmann::json& key,
                               const std::function<nlohmann::json()>& build) {
  const std::string path = file(what, key, ".json");
  if (!path.empty() && std::filesystem::exists(path)) {
    std::ifstream in(path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object() && j.value("key", nlohmann::json()) == key) {
      say(what + ": cached " + path);
      return j["value"];
    }
    say(what + ": ignoring unreadable cache entry " + path);
  }
  nlohmann::json value = build();
  if (!path.empty()) write_file_atomic(path, nlohmann::json{{"key", key}, {"value", value}}.dump());
  return value;
}

void WorkCache::say(const std::string& message) const {
  if (log_) log_(message);
}

std::string WorkCache::file(const std::string& what, const nlohmann::json& key, const std::string& ext) const {
  if (dir_.empty()) return {};
  return (std::filesystem::path(dir_) / (what + "-" + json_hash(key) + ext)).string();
}

}  // namespace lethe::attacks
