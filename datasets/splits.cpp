#include "datasets/splits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "datasets/bytes.h"
#include "engine/error.h"
#include "engine/hash.h"
#include "engine/json_fields.h"
#include "engine/safetensors.h"
#include "kernels/philox.h"

namespace lethe {

namespace {

using nlohmann::json;

// Each random choice of a split draws from its own seed, derived from the spec's seed, what it is for and the class
// it concerns, so changing the forget fraction never moves the auxiliary set and vice versa.
enum class Purpose : uint64_t { Aux = 0x617578, User = 0x75736572, Forget = 0x666f7267 };

uint64_t derive_seed(uint64_t seed, Purpose purpose, uint64_t k) {
  const kernels::Philox4 r = kernels::philox4x32_10(seed, k, static_cast<uint64_t>(purpose));
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

// The first `k` of `members` in the seeded order, returned sorted.
std::vector<int64_t> seeded_pick(const std::vector<int64_t>& members, size_t k, uint64_t seed) {
  const std::vector<int64_t> order = seeded_permutation(static_cast<int64_t>(members.size()), seed);
  std::vector<int64_t> picked;
  picked.reserve(k);
  for (size_t i = 0; i < k; ++i) picked.push_back(members[static_cast<size_t>(order[i])]);
  std::sort(picked.begin(), picked.end());
  return picked;
}

// Sorted a \ b, both sorted.
std::vector<int64_t> minus(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

bool contains(const std::vector<int64_t>& sorted, int64_t v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

void check_class(int64_t c, int64_t num_classes, const std::string& what) {
  if (c < 0 || c >= num_classes)
    throw UsageError(what + ": class " + std::to_string(c) + " is out of range (classes 0.." +
                     std::to_string(num_classes - 1) + ")");
}

}  // namespace

json SplitSpec::to_json() const {
  json fractions = json::array();
  for (const ClassFraction& f : forget.fractions) fractions.push_back({{"class", f.cls}, {"fraction", f.fraction}});
  return {{"dataset", dataset},
          {"seed", seed},
          {"classes", classes},
          {"exclude_classes", exclude_classes},
          {"aux_fraction", aux_fraction},
          {"user_pool", user_pool},
          {"user_size", user_size},
          {"forget", {{"classes", forget.classes}, {"fractions", fractions}, {"indices", forget.indices}}}};
}

SplitSpec SplitSpec::from_json(const json& j, const std::string& source) {
  reject_unknown_keys(j, {"dataset", "seed", "classes", "exclude_classes", "aux_fraction", "user_pool", "user_size",
                          "forget"},
                      source, "the split spec");
  SplitSpec s;
  s.dataset = get_field<std::string>(j, "dataset", source, "");
  s.seed = get_field<uint64_t>(j, "seed", source, 0);
  s.classes = get_field<std::vector<int64_t>>(j, "classes", source, {});
  s.exclude_classes = get_field<std::vector<int64_t>>(j, "exclude_classes", source, {});
  s.aux_fraction = get_field<double>(j, "aux_fraction", source, 0.0);
  s.user_pool = get_field<int64_t>(j, "user_pool", source, 0);
  s.user_size = get_field<int64_t>(j, "user_size", source, 0);
  if (j.contains("forget")) {
    const json& f = j.at("forget");
    reject_unknown_keys(f, {"classes", "fractions", "indices"}, source, "'forget'");
    s.forget.classes = get_field<std::vector<int64_t>>(f, "classes", source, {});
    s.forget.indices = get_field<std::vector<int64_t>>(f, "indices", source, {});
    for (const json& item : get_field<std::vector<json>>(f, "fractions", source, {})) {
      reject_unknown_keys(item, {"class", "fraction"}, source, "a forget fraction");
      s.forget.fractions.push_back(
          {get_field<int64_t>(item, "class", source, -1), get_field<double>(item, "fraction", source, 0.0)});
    }
  }
  return s;
}

std::string SplitSpec::hash() const {
  const std::string canonical = to_json().dump();  // object keys are sorted, so the text is canonical
  return hex64(fnv1a(kFnvBasis, canonical.data(), canonical.size()));
}

ClassFraction parse_class_fraction(const std::string& text) {
  const size_t colon = text.find(':');
  ClassFraction f;
  try {
    if (colon == std::string::npos) throw std::invalid_argument("no colon");
    size_t used = 0;
    f.cls = std::stoll(text.substr(0, colon), &used);
    if (used != colon) throw std::invalid_argument("class");
    const std::string p = text.substr(colon + 1);
    f.fraction = std::stod(p, &used);
    if (used != p.size()) throw std::invalid_argument("fraction");
  } catch (const std::exception&) {
    throw UsageError("forget fraction '" + text + "' is not CLASS:P (e.g. 3:0.5)");
  }
  if (!(f.fraction > 0.0 && f.fraction <= 1.0))
    throw UsageError("forget fraction '" + text + "': P must be in (0, 1]");
  return f;
}

const std::vector<std::string>& SplitParts::names() {
  static const std::vector<std::string> n = {"train", "aux", "pool", "user", "forget", "retain", "test"};
  return n;
}

const std::vector<int64_t>& SplitParts::part(const std::string& name) const {
  if (name == "train") return train;
  if (name == "aux") return aux;
  if (name == "pool") return pool;
  if (name == "user") return user;
  if (name == "forget") return forget;
  if (name == "retain") return retain;
  if (name == "test") return test;
  throw UsageError("unknown split part '" + name + "' (parts: train, aux, pool, user, forget, retain, test)");
}

std::string SplitParts::indices_hash() const {
  uint64_t h = kFnvBasis;
  for (const std::string& name : names()) {
    const std::vector<int64_t>& p = part(name);
    h = fnv1a(h, name.data(), name.size());
    const uint64_t n = p.size();
    h = fnv1a(h, &n, sizeof n);
    h = fnv1a(h, p.data(), p.size() * sizeof(int64_t));
  }
  return hex64(h);
}

SplitParts make_split(const SplitSpec& spec, const Dataset& train, const Dataset& test) {
  const int64_t k = train.num_classes, n = train.size();
  if (!spec.dataset.empty() && spec.dataset != train.name)
    throw UsageError("the split spec is for dataset '" + spec.dataset + "', not '" + train.name + "'");
  if (test.size() > 0 && test.num_classes != k)
    throw UsageError("train and test splits disagree on the class count");
  for (const int64_t c : spec.classes) check_class(c, k, "split classes");
  for (const int64_t c : spec.exclude_classes) check_class(c, k, "split exclude_classes");
  if (!(spec.aux_fraction >= 0.0 && spec.aux_fraction < 1.0))
    throw UsageError("aux fraction " + std::to_string(spec.aux_fraction) + " is outside [0, 1)");
  if (spec.user_pool < 0 || spec.user_size < 0) throw UsageError("user pool and user size must be >= 0");
  if (spec.user_size > spec.user_pool)
    throw UsageError("user size " + std::to_string(spec.user_size) + " exceeds the user pool of " +
                     std::to_string(spec.user_pool));

  std::vector<char> eligible_class(static_cast<size_t>(k), spec.classes.empty() ? 1 : 0);
  for (const int64_t c : spec.classes) eligible_class[static_cast<size_t>(c)] = 1;
  for (const int64_t c : spec.exclude_classes) eligible_class[static_cast<size_t>(c)] = 0;
  const auto eligible_indices = [&](const Dataset& d) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < d.size(); ++i)
      if (eligible_class[static_cast<size_t>(d.labels.i64()[i])]) idx.push_back(i);
    return idx;
  };
  const std::vector<int64_t> eligible = eligible_indices(train);
  if (eligible.empty()) throw UsageError("the class filter leaves no training images");
  if (spec.user_pool > static_cast<int64_t>(eligible.size()))
    throw UsageError("user pool of " + std::to_string(spec.user_pool) + " exceeds the " +
                     std::to_string(eligible.size()) + " eligible training images");

  SplitParts parts;
  parts.pool.assign(eligible.begin(), eligible.begin() + spec.user_pool);
  const std::vector<int64_t> rest(eligible.begin() + spec.user_pool, eligible.end());
  const int64_t* y = train.labels.i64();
  const auto members_of = [&](const std::vector<int64_t>& from, int64_t c) {
    std::vector<int64_t> m;
    for (const int64_t i : from)
      if (y[i] == c) m.push_back(i);
    return m;
  };

  if (spec.aux_fraction > 0.0) {
    for (int64_t c = 0; c < k; ++c) {
      if (!eligible_class[static_cast<size_t>(c)]) continue;
      const std::vector<int64_t> members = members_of(rest, c);
      const auto take = std::max<int64_t>(1, std::llround(spec.aux_fraction * static_cast<double>(members.size())));
      if (take >= static_cast<int64_t>(members.size()))
        throw UsageError("class " + std::to_string(c) + " has " + std::to_string(members.size()) +
                         " training images outside the user pool: too few for an auxiliary set that covers every "
                         "class and leaves the owner some");
      const std::vector<int64_t> picked =
          seeded_pick(members, static_cast<size_t>(take), derive_seed(spec.seed, Purpose::Aux, c));
      parts.aux.insert(parts.aux.end(), picked.begin(), picked.end());
    }
    std::sort(parts.aux.begin(), parts.aux.end());
  }
  parts.train = minus(rest, parts.aux);

  if (!parts.pool.empty()) {
    const size_t size = spec.user_size > 0 ? static_cast<size_t>(spec.user_size) : parts.pool.size();
    parts.user = seeded_pick(parts.pool, size, derive_seed(spec.seed, Purpose::User, 0));
  }

  // The forget set comes out of the data the forgetting model was trained on last: D_u in Hu's setting.
  const std::vector<int64_t>& source = parts.pool.empty() ? parts.train : parts.user;
  const char* source_name = parts.pool.empty() ? "train" : "user";
  std::vector<int64_t> forget;
  for (const int64_t c : spec.forget.classes) {
    check_class(c, k, "forget classes");
    if (!eligible_class[static_cast<size_t>(c)])
      throw UsageError("forget class " + std::to_string(c) + " is excluded by the class filter");
    const std::vector<int64_t> m = members_of(source, c);
    forget.insert(forget.end(), m.begin(), m.end());
  }
  for (const ClassFraction& f : spec.forget.fractions) {
    check_class(f.cls, k, "forget fraction");
    if (!(f.fraction > 0.0 && f.fraction <= 1.0))
      throw UsageError("forget fraction " + std::to_string(f.fraction) + " of class " + std::to_string(f.cls) +
                       " is outside (0, 1]");
    const std::vector<int64_t> m = members_of(source, f.cls);
    // floor(p * n_c); the epsilon keeps 0.29 * 100 at 29 although the double product is 28.999999999999996.
    const auto take = static_cast<size_t>(std::floor(f.fraction * static_cast<double>(m.size()) + 1e-9));
    const std::vector<int64_t> picked = seeded_pick(m, take, derive_seed(spec.seed, Purpose::Forget, f.cls));
    forget.insert(forget.end(), picked.begin(), picked.end());
  }
  for (const int64_t i : spec.forget.indices) {
    if (i < 0 || i >= n)
      throw UsageError("forget index " + std::to_string(i) + " is outside the training split (0.." +
                       std::to_string(n - 1) + ")");
    if (!contains(source, i)) {
      std::string where = "excluded by the class filter";
      for (const char* other : {"train", "aux", "pool"})
        if (contains(parts.part(other), i)) where = std::string("in the ") + other + " part";
      throw UsageError("forget index " + std::to_string(i) + " is not in the " + source_name +
                       " part the forget set is drawn from (it is " + where + ")");
    }
    forget.push_back(i);
  }
  std::sort(forget.begin(), forget.end());
  forget.erase(std::unique(forget.begin(), forget.end()), forget.end());
  parts.forget = forget;
  parts.retain = minus(source, parts.forget);
  parts.test = eligible_indices(test);
  return parts;
}

json split_record(const SplitSpec& spec, const SplitParts& parts, const std::string& part) {
  json counts = json::object();
  for (const std::string& name : SplitParts::names()) counts[name] = parts.part(name).size();
  return {{"spec", spec.to_json()},
          {"hash", spec.hash()},
          {"seed", spec.seed},
          {"part", part},
          {"indices_hash", parts.indices_hash()},
          {"counts", counts}};
}

SplitFile read_split_file(const std::string& path) {
  const std::string text = read_file_bytes(path, size_t(64) << 20);  // a split file is a few KB
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw InputError(path + ": a split file is a JSON object");
  SplitFile file;
  if (!j.contains("spec")) {
    file.spec = SplitSpec::from_json(j, path);  // a bare spec, e.g. written by hand
    return file;
  }
  reject_unknown_keys(j, {"lethe_split", "spec", "hash", "indices_hash", "counts"}, path, "the split file");
  file.spec = SplitSpec::from_json(j.at("spec"), path);
  const std::string hash = get_field<std::string>(j, "hash", path, "");
  if (!hash.empty() && hash != file.spec.hash())
    throw InputError(path + ": the recorded hash " + hash + " does not match the spec (hash " + file.spec.hash() +
                     "); if the spec was edited on purpose, delete the \"hash\" and \"indices_hash\" fields");
  file.indices_hash = get_field<std::string>(j, "indices_hash", path, "");
  return file;
}

void write_split_file(const std::string& path, const SplitSpec& spec, const SplitParts& parts) {
  json counts = json::object();
  for (const std::string& name : SplitParts::names()) counts[name] = parts.part(name).size();
  const json j = {{"lethe_split", 1},
                  {"spec", spec.to_json()},
                  {"hash", spec.hash()},
                  {"indices_hash", parts.indices_hash()},
                  {"counts", counts}};
  write_file_atomic(path, j.dump(2) + "\n");
}

void check_split_matches(const SplitFile& file, const SplitParts& parts, const std::string& path) {
  if (!file.indices_hash.empty() && file.indices_hash != parts.indices_hash())
    throw InputError(path + ": this split gives different indices on this data (indices hash " +
                     parts.indices_hash() + ", recorded " + file.indices_hash +
                     "): the dataset is not the one the split was made on");
}

}  // namespace lethe
