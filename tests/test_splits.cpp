#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "datasets/splits.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace lethe;
using lethe::test::Rng;
using lethe::test::TempDir;

using lethe::test::usage_error_of;

namespace {

// `n` one-pixel images with shuffled labels: class c has about n/k members, spread over the file.
Dataset toy(int64_t n, int64_t k, uint64_t seed, const std::string& name = "toy") {
  Rng rng(seed);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i % k;
  std::shuffle(labels.begin(), labels.end(), rng.engine());
  Dataset d;
  d.name = name;
  d.num_classes = k;
  d.labels = Tensor::from_labels(labels);
  d.images = Tensor::empty({n, 1, 1, 1});
  for (int64_t i = 0; i < n; ++i) d.images.f32()[i] = static_cast<float>(i) / static_cast<float>(n);
  return d;
}

std::vector<int64_t> of_class(const Dataset& d, const std::vector<int64_t>& rows, int64_t c) {
  std::vector<int64_t> out;
  for (const int64_t i : rows)
    if (d.labels.i64()[i] == c) out.push_back(i);
  return out;
}

bool disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both.empty();
}

bool sorted_unique(const std::vector<int64_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](int64_t a, int64_t b) { return a >= b; }) == v.end();
}

}  // namespace

TEST_CASE("splits: owner, auxiliary and pool parts are disjoint, cover the data and are deterministic") {
  const Dataset train = toy(400, 4, 1), test = toy(80, 4, 2);
  SplitSpec spec;
  spec.seed = 7;
  spec.aux_fraction = 0.2;
  spec.user_pool = 60;
  spec.user_size = 16;
  const SplitParts p = make_split(spec, train, test);
  for (const std::string& name : SplitParts::names()) CHECK(sorted_unique(p.part(name)));
  CHECK(disjoint(p.train, p.aux));
  CHECK(disjoint(p.train, p.pool));
  CHECK(disjoint(p.aux, p.pool));
  CHECK(p.train.size() + p.aux.size() + p.pool.size() == 400);
  // Hu et al.'s pool is the first N training images in file order.
  for (int64_t i = 0; i < 60; ++i) CHECK(p.pool[static_cast<size_t>(i)] == i);
  CHECK(p.user.size() == 16);
  CHECK(std::includes(p.pool.begin(), p.pool.end(), p.user.begin(), p.user.end()));
  // The auxiliary set takes round(fraction * n_c) of every class outside the pool.
  for (int64_t c = 0; c < 4; ++c) {
    std::vector<int64_t> rest;
    for (int64_t i = 60; i < 400; ++i) rest.push_back(i);
    const auto n_c = static_cast<double>(of_class(train, rest, c).size());
    CHECK(static_cast<double>(of_class(train, p.aux, c).size()) == std::round(0.2 * n_c));
  }
  CHECK(p.test.size() == 80);

  const SplitParts again = make_split(spec, train, test);
  CHECK(again.aux == p.aux);
  CHECK(again.user == p.user);
  CHECK(again.indices_hash() == p.indices_hash());
  spec.seed = 8;
  const SplitParts other = make_split(spec, train, test);
  CHECK(other.aux != p.aux);
  CHECK(other.user != p.user);
  CHECK(other.indices_hash() != p.indices_hash());
}

TEST_CASE("splits: a forget fraction takes the first floor(p * n_c) of the class in one seeded order") {
  const Dataset train = toy(1000, 10, 3), test = toy(50, 10, 4);
  SplitSpec spec;
  spec.seed = 11;
  spec.forget.fractions = {{3, 0.29}};
  const SplitParts p29 = make_split(spec, train, test);
  const size_t n3 = of_class(train, p29.train, 3).size();
  REQUIRE(n3 == 100);
  CHECK(p29.forget.size() == 29);  // 0.29 * 100 is 28.999999999999996 in doubles
  for (const int64_t i : p29.forget) CHECK(train.labels.i64()[i] == 3);
  // Seeded order, not file order: the smaller fraction is a prefix of the larger one's draw.
  spec.forget.fractions = {{3, 0.5}};
  const SplitParts p50 = make_split(spec, train, test);
  CHECK(p50.forget.size() == 50);
  CHECK(std::includes(p50.forget.begin(), p50.forget.end(), p29.forget.begin(), p29.forget.end()));
  CHECK(p50.forget != of_class(train, p50.train, 3) /* not simply everything */);
  std::vector<int64_t> first_in_file = of_class(train, p50.train, 3);
  first_in_file.resize(50);
  CHECK(p50.forget != first_in_file);
  // Retain is the rest of the owner's set, and forgetting never moves the auxiliary set.
  CHECK(disjoint(p50.retain, p50.forget));
  CHECK(p50.retain.size() + p50.forget.size() == p50.train.size());
  spec.aux_fraction = 0.1;
  const SplitParts with_aux = make_split(spec, train, test);
  spec.forget.fractions = {{3, 0.9}, {5, 1.0}};
  const SplitParts more_forget = make_split(spec, train, test);
  CHECK(with_aux.aux == more_forget.aux);
  CHECK(more_forget.forget.size() == of_class(train, more_forget.train, 5).size() +
                                         static_cast<size_t>(std::floor(0.9 * static_cast<double>(
                                             of_class(train, more_forget.train, 3).size()))));
}

TEST_CASE("splits: forget classes and explicit indices - the forget set comes from D_u when a user pool is set") {
  const Dataset train = toy(300, 3, 5), test = toy(30, 3, 6);
  SplitSpec spec;
  spec.forget.classes = {1};
  spec.aux_fraction = 0.1;
  SplitParts p = make_split(spec, train, test);
  CHECK(p.forget == of_class(train, p.train, 1));
  CHECK(of_class(train, p.retain, 1).empty());

  // An explicit index in the auxiliary part is refused with where it is.
  const int64_t in_aux = p.aux.front();
  spec.forget.classes.clear();
  spec.forget.indices = {in_aux};
  CHECK(usage_error_of([&] { make_split(spec, train, test); }).find("aux part") != std::string::npos);
  spec.forget.indices = {p.train.front(), p.train.back(), p.train.front()};
  p = make_split(spec, train, test);
  CHECK(p.forget == std::vector<int64_t>{p.train.front(), p.train.back()});
  spec.forget.indices = {300};
  CHECK_THROWS_AS(make_split(spec, train, test), UsageError);

  SplitSpec hu;
  hu.user_pool = 100;
  hu.user_size = 32;
  hu.forget.fractions = {{0, 0.5}};
  p = make_split(hu, train, test);
  const std::vector<int64_t> user_class0 = of_class(train, p.user, 0);
  CHECK(p.forget.size() == user_class0.size() / 2);
  CHECK(std::includes(p.user.begin(), p.user.end(), p.forget.begin(), p.forget.end()));
  CHECK(p.retain.size() + p.forget.size() == 32);
  CHECK(disjoint(p.retain, p.forget));
  CHECK(disjoint(p.user, p.train));
}

TEST_CASE("splits: the class filter applies to every part and to the test split") {
  const Dataset train = toy(200, 5, 7), test = toy(100, 5, 8);
  SplitSpec spec;
  spec.exclude_classes = {2, 4};
  spec.aux_fraction = 0.25;
  const SplitParts p = make_split(spec, train, test);
  for (const char* name : {"train", "aux", "test"}) {
    const Dataset& d = std::string(name) == "test" ? test : train;
    std::set<int64_t> seen;
    for (const int64_t i : p.part(name)) seen.insert(d.labels.i64()[i]);
    CHECK(seen == std::set<int64_t>{0, 1, 3});
  }
  spec.exclude_classes.clear();
  spec.classes = {4};
  spec.forget.classes = {1};
  CHECK(usage_error_of([&] { make_split(spec, train, test); }).find("excluded") != std::string::npos);
  spec.classes = {5};
  CHECK_THROWS_AS(make_split(spec, train, test), UsageError);
}

TEST_CASE("splits: specs that cannot fit the data are usage errors") {
  const Dataset train = toy(20, 4, 9), test = toy(8, 4, 10);
  SplitSpec spec;
  spec.aux_fraction = 0.9;  // would leave the owner nothing of some class
  CHECK_THROWS_AS(make_split(spec, train, test), UsageError);
  spec = {};
  spec.user_pool = 21;
  CHECK_THROWS_AS(make_split(spec, train, test), UsageError);
  spec.user_pool = 5;
  spec.user_size = 6;
  CHECK_THROWS_AS(make_split(spec, train, test), UsageError);
  spec = {};
  spec.dataset = "cifar10";
  CHECK(usage_error_of([&] { make_split(spec, train, test); }).find("cifar10") != std::string::npos);
  CHECK_THROWS_AS(parse_class_fraction("3"), UsageError);
  CHECK_THROWS_AS(parse_class_fraction("3:0"), UsageError);
  CHECK_THROWS_AS(parse_class_fraction("3:1.5"), UsageError);
  CHECK_THROWS_AS(parse_class_fraction("x:0.5"), UsageError);
  const ClassFraction f = parse_class_fraction("7:0.25");
  CHECK(f.cls == 7);
  CHECK(f.fraction == 0.25);
}

TEST_CASE("splits: specs round-trip through JSON and files - hashes catch edits and different data") {
  SplitSpec spec;
  spec.dataset = "toy";
  spec.seed = 0xFFFFFFFFFFFFFFFFull;
  spec.classes = {0, 1, 2};
  spec.aux_fraction = 0.1;
  spec.user_pool = 30;
  spec.user_size = 10;
  spec.forget = {{1}, {{2, 0.5}}, {3}};
  const SplitSpec back = SplitSpec::from_json(spec.to_json(), "test");
  CHECK(back.to_json() == spec.to_json());
  CHECK(back.hash() == spec.hash());
  CHECK(spec.hash().size() == 16);
  SplitSpec changed = spec;
  changed.seed = 1;
  CHECK(changed.hash() != spec.hash());

  nlohmann::json typo = spec.to_json();
  typo["aux_fractoin"] = 0.2;
  CHECK_THROWS_AS(SplitSpec::from_json(typo, "t"), InputError);
  nlohmann::json bad_type = spec.to_json();
  bad_type["user_pool"] = "many";
  CHECK_THROWS_AS(SplitSpec::from_json(bad_type, "t"), InputError);

  const Dataset train = toy(300, 4, 11), test = toy(40, 4, 12);
  SplitSpec small;
  small.dataset = "toy";
  small.seed = 3;
  small.aux_fraction = 0.1;
  small.forget.fractions = {{2, 0.5}};
  const SplitParts parts = make_split(small, train, test);
  TempDir tmp("splits");
  const std::string path = tmp.file("split.json");
  write_split_file(path, small, parts);
  const SplitFile file = read_split_file(path);
  CHECK(file.spec.hash() == small.hash());
  CHECK(file.indices_hash == parts.indices_hash());
  CHECK_NOTHROW(check_split_matches(file, make_split(file.spec, train, test), path));
  // The same spec on different data gives other indices, which the recorded hash exposes.
  const Dataset other = toy(300, 4, 99);
  CHECK_THROWS_AS(check_split_matches(file, make_split(file.spec, other, test), path), InputError);

  nlohmann::json edited = nlohmann::json::parse(lethe::test::read_bytes(path));
  edited["spec"]["seed"] = 4;
  lethe::test::write_bytes(path, edited.dump());
  CHECK_THROWS_AS(read_split_file(path), InputError);
  lethe::test::write_bytes(path, "{not json");
  CHECK_THROWS_AS(read_split_file(path), InputError);
  CHECK_THROWS_AS(read_split_file(tmp.file("missing.json")), InputError);
  // A bare spec (hand-written) is accepted.
  lethe::test::write_bytes(path, R"({"dataset": "toy", "seed": 3, "forget": {"classes": [1]}})");
  const SplitFile bare = read_split_file(path);
  CHECK(bare.spec.forget.classes == std::vector<int64_t>{1});
  CHECK(bare.indices_hash.empty());

  const nlohmann::json record = split_record(small, parts, "retain");
  CHECK(record["hash"] == small.hash());
  CHECK(record["seed"] == 3);
  CHECK(record["part"] == "retain");
  CHECK(record["counts"]["forget"] == parts.forget.size());
}
