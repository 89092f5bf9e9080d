#pragma once
// Strict reading of JSON written by Lethe (split specs, recorded training recipes): a missing key keeps its default,
// a value of the wrong type or an unknown key is an InputError naming the source and the key.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace lethe {

template <typename T>
T get_field(const nlohmann::json& j, const char* key, const std::string& source, const T& fallback) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(source + ": field '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}

inline void reject_unknown_keys(const nlohmann::json& j, const std::vector<std::string>& known,
                                const std::string& source, const std::string& where) {
  if (!j.is_object()) throw InputError(source + ": " + where + " must be a JSON object");
  for (const auto& item : j.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw InputError(source + ": unknown field '" + item.key() + "' in " + where);
}

}  // namespace lethe
