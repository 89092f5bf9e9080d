#pragma once
// Experiment splits. A SplitSpec is a small, seeded, serialisable description of who holds which training images:
//   - the owner's training set D_train, the attacker's auxiliary set D_aux (disjoint, a per-class fraction so it
//     covers every class) and the official test split;
//   - Hu et al.'s user pool: the first `user_pool` eligible training images (file order, as their code holds out
//     the first 10,000 CIFAR images), from which D_u (`user_size` of them, seeded) is drawn;
//   - class include/exclude lists, applied to every part and to the test split;
//   - the forget set D_f: whole classes, a fraction p of a class (the first floor(p * n_c) of that class in a
//     seeded order), and explicit indices. It is drawn from D_u when a user pool is set, else from D_train; the
//     retain set is the rest of that source.
// make_split turns a spec into exact indices of the official training split, identical on every machine. The spec's
// hash (the seed is part of it) and the hash of the resulting indices go into model metadata and every result, so a
// number can be traced back to the images behind it.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data.h"

namespace lethe {

struct ClassFraction {
  int64_t cls = 0;
  double fraction = 0;  // in (0, 1]
};

struct ForgetSpec {
  std::vector<int64_t> classes;
  std::vector<ClassFraction> fractions;
  std::vector<int64_t> indices;  // positions in the official training split
  bool empty() const { return classes.empty() && fractions.empty() && indices.empty(); }
};

struct SplitSpec {
  std::string dataset;  // the dataset's name, so a spec is not applied to other data by mistake
  uint64_t seed = 0;
  std::vector<int64_t> classes, exclude_classes;
  double aux_fraction = 0;  // in [0, 1): per class, of what the user pool leaves
  int64_t user_pool = 0;
  int64_t user_size = 0;    // 0 with a pool: the whole pool
  ForgetSpec forget;

  nlohmann::json to_json() const;
  // Strict: unknown keys and ill-typed values are InputErrors naming `source`.
  static SplitSpec from_json(const nlohmann::json& j, const std::string& source);
  std::string hash() const;  // 16 hex digits (FNV-1a 64 of the canonical JSON)
};

// "3:0.5" -> {3, 0.5}. Throws UsageError.
ClassFraction parse_class_fraction(const std::string& text);

// The parts, as sorted positions in the official training split (test: in the official test split).
struct SplitParts {
  std::vector<int64_t> train, aux, pool, user, forget, retain, test;
  // "train", "aux", "pool", "user", "forget", "retain", "test"
  static const std::vector<std::string>& names();
  const std::vector<int64_t>& part(const std::string& name) const;  // UsageError for an unknown name
  std::string indices_hash() const;  // 16 hex digits over every part, so different data shows up as a new hash
};

// Throws UsageError if the spec does not fit the data (class ids out of range, a class too small for the auxiliary
// fraction, an explicit forget index outside the forget source, a pool larger than the data...).
SplitParts make_split(const SplitSpec& spec, const Dataset& train, const Dataset& test);

// What goes into model metadata and results: the spec, its hash, the part used, the counts and the indices hash.
nlohmann::json split_record(const SplitSpec& spec, const SplitParts& parts, const std::string& part);

// A split file (written by `lethe data split`): {"spec": ..., "hash": ..., "indices_hash": ..., "counts": ...}.
// Reading checks that the recorded hash matches the spec. Writing is atomic.
struct SplitFile {
  SplitSpec spec;
  std::string indices_hash;  // empty if the file does not record one
};
SplitFile read_split_file(const std::string& path);
void write_split_file(const std::string& path, const SplitSpec& spec, const SplitParts& parts);
// Throws InputError if `parts` are not the indices the file was made with (the data changed).
void check_split_matches(const SplitFile& file, const SplitParts& parts, const std::string& path);

}  // namespace lethe
