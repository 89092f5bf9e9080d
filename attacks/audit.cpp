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

}  // namespace

const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names = {"single", "multi"};
  return names;
}

std::string ForgetCase::key() const {
  return "seed=" + std::to_string(seed) + "/" + scenario + "/forget=" + join_classes(classes);
}
std::string UnlearningRun::key() const { return forget.key() + "/" + method; }
std::string Trial::key() const { return run.key() + (defense == "none" ? "" : "/" + defense) + "/" + attack; }

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
  for (const nlohmann::json& row : rows_) keys_.insert(row["key"].get<std::string>());
  if (!broken) return;
  // Rewrite the file without the broken last line, so the next append starts on a line of its own.
  std::string kept;
  for (const Line& line : lines)
    if (line.number != lines.back().number) kept += line.text + "\n";
  write_file_atomic(path_, kept);
  dropped_ = 1;
}

bool ResultsLog::has(const std::string& key) const { return keys_.count(key) > 0; }

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
  keys_.insert(row["key"].get<std::string>());
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

}  // namespace lethe::attacks::audit
