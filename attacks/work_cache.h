#pragma once
// The attacks' work directory (`--work DIR`): models and JSON artefacts stored under a hash of everything they depend
// on, so a repeated attack reuses them and a changed input never picks up a stale entry. Writes are atomic.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/data.h"
#include "engine/model.h"

namespace lethe::attacks {

// Progress of the long parts of an attack (auxiliary, shadow and reference models): a line for each step.
using AttackLogFn = std::function<void(const std::string& message)>;

// How many models an attack trained, and how many it found in the work directory.
struct CacheCounts {
  int64_t models_trained = 0, models_cached = 0;
};

// FNV-1a of a JSON value's text, and of a dataset's content (pixels and labels), for cache keys.
std::string json_hash(const nlohmann::json& j);
std::string data_hash(const Dataset& d);
// FNV-1a of a model's architecture, parameters and buffers: two models hash alike only if they compute alike.
std::string model_hash(const Model& m);

// A copy of a model's architecture and state on its backend.
std::unique_ptr<Model> copy_of(const Model& m);

class WorkCache {
 public:
  // An empty `dir` caches nothing (every artefact is built). Throws a UsageError if the directory cannot be made.
  WorkCache(std::string dir, CacheCounts& counts, const AttackLogFn& log);

  // The model stored under `key`, or build(), stored for next time.
  std::unique_ptr<Model> model(const std::string& what, const nlohmann::json& key, Backend& be,
                               const std::function<std::unique_ptr<Model>()>& build);
  // The JSON stored under `key`, or build(), stored for next time.
  nlohmann::json json(const std::string& what, const nlohmann::json& key, const std::function<nlohmann::json()>& build);

  void say(const std::string& message) const;
  // The same counters and log, caching nothing (for intermediate models not worth their disk space).
  WorkCache transient() const { return WorkCache("", counts_, log_); }

 private:
  std::string file(const std::string& what, const nlohmann::json& key, const std::string& ext) const;

  std::string dir_;
  CacheCounts& counts_;
  AttackLogFn log_;
};

}  // namespace lethe::attacks
