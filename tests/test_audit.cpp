#include <doctest/doctest.h>

#include <set>

#include "attacks/audit.h"
#include "engine/error.h"
#include "tests/test_util.h"

using namespace lethe;
using namespace lethe::attacks::audit;
using lethe::test::TempDir;
using lethe::test::usage_error_of;

namespace {

nlohmann::json attack_row(uint64_t seed, std::vector<int64_t> forget, const std::string& method,
                          nlohmann::json predictions) {
  const ForgetCase f{seed, forget.size() == 1 ? "single" : "multi", forget};
  return {{"type", "attack"},   {"key", Trial{{f, method}, "param-dot"}.key()},
          {"seed", seed},       {"scenario", f.scenario},
          {"forget", forget},   {"method", method},
          {"attack", "param-dot"}, {"classes", 10},
          {"predictions", std::move(predictions)}, {"queries", 40}};
}

}  // namespace

TEST_CASE("audit plan: single-class cases per class, multi-class sets cycle through the list without repeats") {
  PlanConfig plan;
  plan.seeds = {4, 5};
  plan.scenarios = {"single", "multi"};
  plan.classes = {7, 1, 3};
  plan.methods = {"finetune", "neggrad"};
  const std::vector<ForgetCase> cases = forget_cases(plan);
  REQUIRE(cases.size() == 12);  // 2 seeds x (3 single + 3 multi)
  CHECK(cases[0].key() == "seed=4/single/forget=7");
  CHECK(cases[3].key() == "seed=4/multi/forget=1,7");
  CHECK(cases[4].classes == std::vector<int64_t>{1, 3});
  CHECK(cases[5].classes == std::vector<int64_t>{3, 7});
  CHECK(cases[6].key() == "seed=5/single/forget=7");
  const std::vector<UnlearningRun> runs = unlearning_runs(plan);
  REQUIRE(runs.size() == 24);
  CHECK(runs[1].key() == "seed=4/single/forget=7/neggrad");
  CHECK(Trial{runs[1], "hu-label"}.key() == "seed=4/single/forget=7/neggrad/hu-label");
  CHECK(Trial{runs[1], "hu-label", "prune:0.5"}.key() == "seed=4/single/forget=7/neggrad/prune:0.5/hu-label");
  std::set<std::string> keys;
  for (const UnlearningRun& r : runs) keys.insert(r.key());
  CHECK(keys.size() == runs.size());

  plan.classes = {2, 6, 2};  // a repeated class counts once, and {2, 6} and {6, 2} are one set
  plan.seeds = {0};
  plan.scenarios = {"multi"};
  CHECK(forget_cases(plan).size() == 1);
  plan.scenarios = {"single"};
  CHECK(forget_cases(plan).size() == 2);
  plan.scenarios = {"multi"};
  plan.multi_size = 3;
  CHECK(usage_error_of([&] { forget_cases(plan); }).find("sets of 3") != std::string::npos);
  plan.multi_size = 2;
  plan.scenarios = {"pairs"};
  CHECK(usage_error_of([&] { forget_cases(plan); }).find("pairs") != std::string::npos);
}

TEST_CASE("audit shards: I/N parsing, and N shards partition the unlearning runs") {
  const Shard s = Shard::parse("1/3");
  CHECK(s.index == 1);
  CHECK(s.count == 3);
  CHECK(s.results_file() == "results.1-of-3.jsonl");
  CHECK(Shard::parse("0/1").results_file() == "results.jsonl");
  for (const char* bad : {"3/3", "-1/2", "1/0", "1", "a/b", "1/2x", ""})
    CHECK(usage_error_of([&] { Shard::parse(bad); }).find("--shard") != std::string::npos);
  for (int64_t run = 0; run < 20; ++run) {
    int owners = 0;
    for (int64_t i = 0; i < 3; ++i) owners += Shard{i, 3}.owns(run) ? 1 : 0;
    CHECK(owners == 1);
  }
}

TEST_CASE("audit results log: appended rows survive reopening, a cut-short last line is dropped and redone") {
  TempDir dir("audit");
  const std::string path = dir.file("results.jsonl");
  {
    ResultsLog log(path);
    CHECK(log.rows().empty());
    log.append({{"key", "a"}, {"v", 1}});
    log.append({{"key", "b"}, {"v", 2}});
    CHECK(log.has("a"));
    CHECK_FALSE(log.has("c"));
  }
  // An interrupted append: half a line, no newline.
  const std::string whole = test::read_bytes(path);
  test::write_bytes(path, whole + R"({"key": "c", "v)");
  {
    ResultsLog log(path);
    CHECK(log.dropped_lines() == 1);
    CHECK(log.rows().size() == 2);
    CHECK_FALSE(log.has("c"));
    CHECK(test::read_bytes(path) == whole);  // the broken tail is gone from the file
    log.append({{"key", "c"}, {"v", 3}});
  }
  CHECK(ResultsLog(path).rows().size() == 3);
  CHECK(ResultsLog(path).dropped_lines() == 0);
  // A complete final line that is not a result is also redone; a bad line anywhere else is damage, not an
  // interruption.
  test::write_bytes(path, whole + "{\"v\": 9}\n");
  CHECK(ResultsLog(path).dropped_lines() == 1);
  test::write_bytes(path, "not json\n" + whole);
  const std::string msg = test::input_error_of([&] { ResultsLog log(path); });
  CHECK(msg.find("line 1") != std::string::npos);
  CHECK(msg.find(path) != std::string::npos);
}

TEST_CASE("audit results directory: shards merge, a key counted once, an empty directory is an error") {
  TempDir dir("audit");
  CHECK(test::input_error_of([&] { read_results_dir(dir.path().string()); }).find("no results") !=
        std::string::npos);
  ResultsLog(dir.file(Shard{0, 2}.results_file())).append({{"key", "a"}});
  ResultsLog(dir.file(Shard{1, 2}.results_file())).append({{"key", "b"}});
  ResultsLog(dir.file("results.jsonl")).append({{"key", "a"}});  // the same trial, rerun unsharded
  test::write_bytes(dir.file("summary.json"), "{}");                   // not a results file
  const std::vector<nlohmann::json> rows = read_results_dir(dir.path().string());
  REQUIRE(rows.size() == 2);
  std::set<std::string> keys;
  for (const auto& r : rows) keys.insert(r["key"]);
  CHECK(keys == std::set<std::string>{"a", "b"});
}

TEST_CASE("audit summary: exact-set ASR per seed, mean and sample std over seeds, beside the chance baseline") {
  CHECK(chance_of_exact_set(10, 1) == doctest::Approx(0.1));
  CHECK(chance_of_exact_set(10, 2) == doctest::Approx(1.0 / 45));
  std::vector<nlohmann::json> rows;
  // Seed 0: 2 of 2 hits; seed 1: 1 of 2 (class 5 predicted for 4). The tree variant misses everything.
  rows.push_back(attack_row(0, {3}, "neggrad", {{"kmeans", {3}}, {"tree", {1}}}));
  rows.push_back(attack_row(0, {4}, "neggrad", {{"kmeans", {4}}, {"tree", {1}}}));
  rows.push_back(attack_row(1, {3}, "neggrad", {{"kmeans", {3}}, {"tree", {1}}}));
  rows.push_back(attack_row(1, {4}, "neggrad", {{"kmeans", {5}}, {"tree", {1}}}));
  // Multi-class: a set is a hit only when it matches exactly, in any order.
  rows.push_back(attack_row(0, {2, 6}, "retrain", {{"kmeans", {6, 2}}}));
  rows.push_back(attack_row(0, {2, 7}, "retrain", {{"kmeans", {2}}}));
  rows.push_back({{"type", "unlearning"}, {"key", "u1"}, {"seed", 0}, {"scenario", "single"},
                  {"forget", {3}}, {"method", "neggrad"}, {"classes", 10},
                  {"metrics", {{"UA", 0.9}, {"RA", 0.8}, {"TA", 0.7}, {"MIA", 0.5}}}, {"seconds", 2.0}});
  rows.push_back({{"type", "unlearning"}, {"key", "u2"}, {"seed", 1}, {"scenario", "single"},
                  {"forget", {4}}, {"method", "neggrad"}, {"classes", 10},
                  {"metrics", {{"UA", 0.7}, {"RA", 0.6}, {"TA", 0.5}, {"MIA", 0.3}}}, {"seconds", 4.0}});
  // The same trial after a defense, and the defended model's metrics: a table of their own.
  nlohmann::json defended = attack_row(0, {3}, "neggrad", {{"kmeans", {5}}});
  defended["defense"] = "prune:0.5";
  defended["key"] = "d1";
  rows.push_back(defended);
  rows.push_back({{"type", "defense"}, {"key", "d2"}, {"seed", 0}, {"scenario", "single"}, {"forget", {3}},
                  {"method", "neggrad"}, {"defense", "prune:0.5"}, {"classes", 10},
                  {"metrics", {{"UA", 1.0}, {"RA", 0.5}, {"TA", 0.4}, {"MIA", 0.9}}}, {"seconds", 0.5}});
  const Summary s = summarise(rows);
  CHECK(s.markdown.find("## single-class forgetting, defense prune:0.5: attack success rate (chance 10.0%)\n\n"
                        "| method | param-dot · kmeans |\n|---|---|\n| neggrad | 0.0% (n=1) |") != std::string::npos);
  CHECK(s.markdown.find("| neggrad | 1 | 100.0% | 50.0% | 40.0% | 90.0% | 0.5 |") != std::string::npos);

  const auto cell = [&](const std::string& scenario, const std::string& attack) {
    for (const auto& c : s.json["asr"])
      if (c["scenario"] == scenario && c["attack"] == attack) return c;
    FAIL("no cell " << scenario << " " << attack);
    return nlohmann::json();
  };
  const nlohmann::json kmeans = cell("single", "param-dot · kmeans");
  CHECK(kmeans["asr_mean"].get<double>() == doctest::Approx(0.75));
  CHECK(kmeans["asr_std"].get<double>() == doctest::Approx(std::sqrt(0.125)));  // sample std of {1, 0.5}
  CHECK(kmeans["seeds"] == 2);
  CHECK(kmeans["trials"] == 4);
  CHECK(kmeans["chance"].get<double>() == doctest::Approx(0.1));
  CHECK(kmeans["mean_queries"].get<double>() == doctest::Approx(40));
  CHECK(cell("single", "param-dot · tree")["asr_mean"].get<double>() == 0);
  const nlohmann::json multi = cell("multi", "param-dot · kmeans");
  CHECK(multi["asr_mean"].get<double>() == doctest::Approx(0.5));
  CHECK(multi["chance"].get<double>() == doctest::Approx(1.0 / 45));

  REQUIRE(s.json["unlearning"].size() == 2);
  const nlohmann::json& u = s.json["unlearning"][0];
  CHECK(u["defense"] == "none");
  CHECK(s.json["unlearning"][1]["defense"] == "prune:0.5");
  CHECK(u["runs"] == 2);
  CHECK(u["mean"]["UA"].get<double>() == doctest::Approx(0.8));
  CHECK(u["mean"]["seconds"].get<double>() == doctest::Approx(3.0));

  CHECK(s.markdown.find("| neggrad | 75.0% ± 35.4 (n=4) | 0.0% ± 0.0 (n=4) |") != std::string::npos);
  CHECK(s.markdown.find("chance 10.0%") != std::string::npos);
  CHECK(s.markdown.find("chance 2.2%") != std::string::npos);
  CHECK(s.markdown.find("| neggrad | 2 | 80.0% | 70.0% | 60.0% | 40.0% | 3.0 |") != std::string::npos);
  CHECK(s.csv.find("single,none,neggrad,\"param-dot · kmeans\",0.750000,0.353553,2,4,0.1,40\n") !=
        std::string::npos);

  TempDir dir("audit");
  write_summary(dir.path().string(), s);
  CHECK(test::read_bytes(dir.file("summary.md")) == s.markdown);
  CHECK(test::read_bytes(dir.file("summary.csv")) == s.csv);
  CHECK(nlohmann::json::parse(test::read_bytes(dir.file("summary.json"))) == s.json);
}

TEST_CASE("audit report: score strip plots per attack variant, Hu's bars per trial, one self-contained index.html") {
  std::vector<nlohmann::json> rows;
  for (const int64_t forgotten : {3, 5}) {
    nlohmann::json row = attack_row(0, {forgotten}, "neggrad", {{"kmeans", {forgotten}}});
    std::vector<double> scores(10, 0.1);
    scores[static_cast<size_t>(forgotten)] = 2.5;
    row["scores"] = {{"kmeans", scores}};
    rows.push_back(row);
    nlohmann::json hu = row;
    hu["attack"] = "hu-label";
    hu["key"] = row["key"].get<std::string>() + "-hu";
    hu["predictions"] = {{"probability", {forgotten}}};
    hu["scores"] = {{"probability", scores}};
    rows.push_back(hu);
  }
  const std::vector<Figure> figures = figures_of(rows);
  std::set<std::string> files;
  for (const Figure& f : figures) {
    files.insert(f.file);
    CHECK(f.png.rfind("\x89PNG\r\n\x1a\n", 0) == 0);
  }
  CHECK(files == std::set<std::string>{"hu-label-neggrad-forget3.png", "hu-label-neggrad-forget5.png",
                                       "scores-param-dot-kmeans.png", "scores-hu-label-probability.png"});
  rows[0]["scores"]["kmeans"][0] = nullptr;  // a score that is not a number is refused, never plotted as 0
  CHECK_THROWS(figures_of(rows));

  const Figure proto{"p.png", "seed=0/single/forget=3/neggrad/invert-white", "\x89PNG-bytes"};
  const std::string html = html_report(summarise(rows), figures, {proto});
  CHECK(html.find("<table>") != std::string::npos);
  CHECK(html.find("single-class forgetting: attack success rate (chance 10.0%)") != std::string::npos);
  CHECK(html.find("data:image/png;base64,iVBORw0KGgo") != std::string::npos);  // "\x89PNG\r\n\x1a\n"
  CHECK(html.find("data:image/png;base64,iVBORy1ieXRlcw==") != std::string::npos);  // "\x89PNG-bytes"
  CHECK(html.find("src=\"http") == std::string::npos);  // no external asset
  CHECK(html.find("seed=0/single/forget=3/neggrad/invert-white") != std::string::npos);
}
