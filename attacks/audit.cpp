#include "attacks/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace lethe::attacks::audit {
namespace {

std::string join_classes(const std::vector<int64_t>& classes) {
  std::string s;
  for (size_t i = 0; i < classes.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(classes[i]);
  }
  return s;
}

// The lines of a results file, each with the 1-based line number; `complete` is false for a last line with no
// newline after it (an append that was cut short).
struct Line {
  std::string text;
  int64_t number = 0;
  bool complete = true;
};
std::vector<Line> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::vector<Line> lines;
  std::string text;
  int64_t number = 0;
  while (std::getline(in, text)) lines.push_back({text, ++number, !in.eof()});
  return lines;
}

// Parses the results in `lines`; the final line may be broken (returned as `broken`), any other bad line throws.
std::vector<nlohmann::json> parse_results(const std::string& path, const std::vector<Line>& lines, bool* broken) {
  std::vector<nlohmann::json> rows;
  *broken = false;
  for (const Line& line : lines) {
    if (line.text.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line.text, nullptr, /*allow_exceptions=*/false);
    const bool good = line.complete && row.is_object() && row.contains("key") && row["key"].is_string();
    if (good) {
      rows.push_back(std::move(row));
    } else if (line.number == lines.back().number) {
      *broken = true;
    } else {
      throw InputError(path + ": line " + std::to_string(line.number) + " is not a result (a JSON object with a "
                       "\"key\"); the file is damaged, not just cut short: move it aside to start afresh");
    }
  }
  return rows;
}

// Sample standard deviation (0 for fewer than two values).
double sample_std(const std::vector<double>& v, double mean) {
  if (v.size() < 2) return 0;
  double ss = 0;
  for (const double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (const double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

std::string pct(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * fraction);
  return buf;
}

// "87.5% ± 4.2", or "87.5%" from a single seed.
std::string pct_pm(double mean, double std, int64_t seeds) {
  if (seeds < 2) return pct(mean);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f%% ± %.1f", 100 * mean, 100 * std);
  return buf;
}

std::vector<int64_t> int_list(const nlohmann::json& j) {
  std::vector<int64_t> v = j.get<std::vector<int64_t>>();
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names = {"single", "multi"};
  return names;
}

std::string ForgetCase::key() const {
  return "seed=" + std::to_string(seed) + "/" + scenario + "/forget=" + join_classes(classes);
}
std::string UnlearningRun::key() const { return forget.key() + "/" + method; }
std::string Trial::key() const { return run.key() + "/" + attack; }

std::vector<ForgetCase> forget_cases(const PlanConfig& plan) {
  std::vector<int64_t> classes;  // in the given order, each once
  for (const int64_t c : plan.classes)
    if (std::find(classes.begin(), classes.end(), c) == classes.end()) classes.push_back(c);
  const int64_t n = static_cast<int64_t>(classes.size());
  std::vector<ForgetCase> cases;
  const auto add = [&](uint64_t seed, const std::string& scenario, std::vector<int64_t> set) {
    std::sort(set.begin(), set.end());
    const bool repeated = std::any_of(cases.begin(), cases.end(), [&](const ForgetCase& f) {
      return f.seed == seed && f.scenario == scenario && f.classes == set;
    });
    if (!repeated) cases.push_back({seed, scenario, std::move(set)});
  };
  for (const uint64_t seed : plan.seeds) {
    for (const std::string& scenario : plan.scenarios) {
      if (scenario == "single") {
        for (const int64_t c : classes) add(seed, scenario, {c});
      } else if (scenario == "multi") {
        if (plan.multi_size < 2 || plan.multi_size > n)
          throw UsageError("multi-class scenario: sets of " + std::to_string(plan.multi_size) + " classes need at "
                           "least that many classes to forget (have " + std::to_string(n) + ")");
        for (int64_t i = 0; i < n; ++i) {
          std::vector<int64_t> set;
          for (int64_t j = 0; j < plan.multi_size; ++j) set.push_back(classes[(i + j) % n]);
          add(seed, scenario, std::move(set));
        }
      } else {
        throw UsageError("unknown scenario '" + scenario + "' (have: single, multi)");
      }
    }
  }
  return cases;
}

std::vector<UnlearningRun> unlearning_runs(const PlanConfig& plan) {
  std::vector<UnlearningRun> runs;
  for (const ForgetCase& f : forget_cases(plan))
    for (const std::string& method : plan.methods) runs.push_back({f, method});
  return runs;
}

Shard Shard::parse(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  const auto number = [&](const std::string& part, int64_t& out) {
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out);
    return ec == std::errc() && end == part.data() + part.size();
  };
  if (slash == std::string::npos || !number(text.substr(0, slash), s.index) ||
      !number(text.substr(slash + 1), s.count) || s.count < 1 || s.index < 0 || s.index >= s.count)
    throw UsageError("--shard '" + text + "': expected I/N with 0 <= I < N (e.g. 0/4)");
  return s;
}

std::string Shard::results_file() const {
  if (count == 1) return "results.jsonl";
  return "results." + std::to_string(index) + "-of-" + std::to_string(count) + ".jsonl";
}

ResultsLog::ResultsLog(std::string path) : path_(std::move(path)) {
  const std::vector<Line> lines = read_lines(path_);
  bool broken = false;
  rows_ = parse_results(path_, lines, &broken);
  if (!broken) return;
  // Rewrite the file without the broken last line, so the next append starts on a line of its own.
  std::string kept;
  for (const Line& line : lines)
    if (line.number != lines.back().number) kept += line.text + "\n";
  write_file_atomic(path_, kept);
  dropped_ = 1;
}

bool ResultsLog::has(const std::string& key) const {
  return std::any_of(rows_.begin(), rows_.end(), [&](const nlohmann::json& r) { return r["key"] == key; });
}

void ResultsLog::append(const nlohmann::json& row) {
  if (!row.is_object() || !row.contains("key")) throw std::logic_error("ResultsLog::append: a row needs a key");
  const std::string line = row.dump() + "\n";
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(path_ + ": cannot open for appending results");
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n <= 0) {
      ::close(fd);
      throw InputError(path_ + ": cannot append a result (disk full?)");
    }
    written += static_cast<size_t>(n);
  }
  ::fsync(fd);  // a finished trial survives a crash of the machine, not only of the process
  ::close(fd);
  rows_.push_back(row);
}

std::vector<nlohmann::json> read_results_dir(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("results", 0) == 0 && name.size() > 6 && name.substr(name.size() - 6) == ".jsonl")
      files.push_back(entry.path().string());
  }
  if (ec) throw InputError(dir + ": cannot list the report directory (" + ec.message() + ")");
  if (files.empty()) throw InputError(dir + ": no results*.jsonl (run lethe audit --out " + dir + " first)");
  std::sort(files.begin(), files.end());
  std::vector<nlohmann::json> rows;
  std::set<std::string> keys;
  for (const std::string& file : files) {
    bool broken = false;
    for (nlohmann::json& row : parse_results(file, read_lines(file), &broken))
      if (keys.insert(row["key"].get<std::string>()).second) rows.push_back(std::move(row));
  }
  return rows;
}

double chance_of_exact_set(int64_t num_classes, int64_t m) {
  double sets = 1;
  for (int64_t i = 0; i < m; ++i) sets = sets * static_cast<double>(num_classes - i) / static_cast<double>(i + 1);
  return 1.0 / sets;
}

Summary summarise(const std::vector<nlohmann::json>& rows) {
  // ASR cells: (scenario, method, attack, variant) -> per seed (hits, trials); chance and queries alongside.
  struct Cell {
    std::map<uint64_t, std::pair<int64_t, int64_t>> per_seed;
    double chance = 0;
    double queries = 0;
    int64_t trials = 0;
  };
  std::map<std::vector<std::string>, Cell> cells;
  // Unlearning metrics: (scenario, method) -> metric -> values over runs.
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::vector<double>>> unlearning;
  std::vector<std::string> scenario_order, method_order, column_order;
  const auto remember = [](std::vector<std::string>& order, const std::string& s) {
    if (std::find(order.begin(), order.end(), s) == order.end()) order.push_back(s);
  };

  for (const nlohmann::json& row : rows) {
    const std::string type = row.value("type", "");
    const std::string scenario = row.at("scenario"), method = row.at("method");
    remember(scenario_order, scenario);
    remember(method_order, method);
    if (type == "unlearning") {
      auto& metrics = unlearning[{scenario, method}];
      for (const auto& [name, value] : row.at("metrics").items())
        if (value.is_number()) metrics[name].push_back(value.get<double>());
      metrics["seconds"].push_back(row.value("seconds", 0.0));
      continue;
    }
    if (type != "attack") continue;
    // The harness's comparison: the attack's prediction against the classes the run forgot.
    const std::vector<int64_t> truth = int_list(row.at("forget"));
    const std::string attack = row.at("attack");
    for (const auto& [variant, predicted] : row.at("predictions").items()) {
      const std::string column = attack + (variant.empty() ? "" : " · " + variant);
      remember(column_order, column);
      Cell& cell = cells[{scenario, method, column}];
      auto& [hits, trials] = cell.per_seed[row.at("seed").get<uint64_t>()];
      hits += int_list(predicted) == truth ? 1 : 0;
      trials += 1;
      cell.trials += 1;
      cell.chance = chance_of_exact_set(row.at("classes").get<int64_t>(), static_cast<int64_t>(truth.size()));
      cell.queries += row.value("queries", 0.0);
    }
  }

  Summary s;
  s.json = {{"asr", nlohmann::json::array()}, {"unlearning", nlohmann::json::array()}};
  s.csv = "scenario,method,attack,asr_mean,asr_std,seeds,trials,chance,mean_queries\n";
  std::ostringstream md;
  md << "# Lethe audit\n\n"
     << "ASR: the fraction of trials whose predicted set of forgotten classes is exactly the forgotten set; mean ± "
        "sample std over seeds (n = trials). Chance is the probability of naming that set by a uniform guess.\n";
  for (const std::string& scenario : scenario_order) {
    std::vector<std::string> columns;
    for (const std::string& c : column_order)
      for (const std::string& m : method_order)
        if (cells.count({scenario, m, c}) && std::find(columns.begin(), columns.end(), c) == columns.end())
          columns.push_back(c);
    if (!columns.empty()) {
      double chance = 0;
      for (const auto& [key, cell] : cells)
        if (key[0] == scenario) chance = cell.chance;
      md << "\n## " << scenario << "-class forgetting: attack success rate (chance " << pct(chance) << ")\n\n";
      md << "| method |";
      for (const std::string& c : columns) md << " " << c << " |";
      md << "\n|---|";
      for (size_t i = 0; i < columns.size(); ++i) md << "---|";
      md << "\n";
      for (const std::string& method : method_order) {
        bool any = false;
        std::string line = "| " + method + " |";
        for (const std::string& column : columns) {
          const auto it = cells.find({scenario, method, column});
          if (it == cells.end()) {
            line += " |";
            continue;
          }
          any = true;
          const Cell& cell = it->second;
          std::vector<double> asr;
          for (const auto& [seed, ht] : cell.per_seed)
            asr.push_back(static_cast<double>(ht.first) / static_cast<double>(ht.second));
          const double mean = mean_of(asr), std = sample_std(asr, mean);
          const int64_t seeds = static_cast<int64_t>(asr.size());
          line += " " + pct_pm(mean, std, seeds) + " (n=" + std::to_string(cell.trials) + ") |";
          const double mean_queries = cell.queries / static_cast<double>(cell.trials);
          s.json["asr"].push_back({{"scenario", scenario},
                                   {"method", method},
                                   {"attack", column},
                                   {"asr_mean", mean},
                                   {"asr_std", std},
                                   {"seeds", seeds},
                                   {"trials", cell.trials},
                                   {"chance", cell.chance},
                                   {"mean_queries", mean_queries}});
          char buf[256];
          std::snprintf(buf, sizeof buf, "%s,%s,\"%s\",%.6f,%.6f,%lld,%lld,%.6g,%.0f\n", scenario.c_str(),
                        method.c_str(), column.c_str(), mean, std, static_cast<long long>(seeds),
                        static_cast<long long>(cell.trials), cell.chance, mean_queries);
          s.csv += buf;
        }
        if (any) md << line << "\n";
      }
    }
    bool header = false;
    for (const std::string& method : method_order) {
      const auto it = unlearning.find({scenario, method});
      if (it == unlearning.end()) continue;
      if (!header) {
        md << "\n## " << scenario << "-class forgetting: unlearning metrics (mean over runs)\n\n"
           << "| method | runs | UA | RA | TA | MIA-efficacy | seconds |\n|---|---|---|---|---|---|---|\n";
        header = true;
      }
      const auto& m = it->second;
      const auto avg = [&](const std::string& name) {
        const auto f = m.find(name);
        return f == m.end() ? std::nan("") : mean_of(f->second);
      };
      const auto cell = [&](const std::string& name) {
        const double v = avg(name);
        return std::isnan(v) ? std::string("n/a") : pct(v);
      };
      const size_t runs = m.count("seconds") ? m.at("seconds").size() : 0;
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", avg("seconds"));
      md << "| " << method << " | " << runs << " | " << cell("UA") << " | " << cell("RA") << " | " << cell("TA")
         << " | " << cell("MIA") << " | " << secs << " |\n";
      nlohmann::json means = nlohmann::json::object();
      for (const auto& [name, values] : m) means[name] = mean_of(values);
      s.json["unlearning"].push_back({{"scenario", scenario}, {"method", method}, {"runs", runs}, {"mean", means}});
    }
  }
  s.markdown = md.str();
  return s;
}

void write_summary(const std::string& dir, const Summary& summary) {
  const std::filesystem::path d(dir);
  write_file_atomic((d / "summary.md").string(), summary.markdown);
  write_file_atomic((d / "summary.csv").string(), summary.csv);
  write_file_atomic((d / "summary.json").string(), summary.json.dump(2) + "\n");
}

}  // namespace lethe::attacks::audit
