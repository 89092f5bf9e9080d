// The audit's report: the summary tables (markdown, CSV, JSON), the figures, and index.html, all from result rows.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "attacks/audit.h"
#include "attacks/plot.h"
#include "datasets/bytes.h"
#include "engine/error.h"
#include "engine/safetensors.h"

namespace lethe::attacks::audit {
namespace {

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

// The attack's column in the tables: "param-dot · kmeans".
std::string column_of(const std::string& attack, const std::string& variant) {
  return variant.empty() ? attack : attack + " · " + variant;
}

constexpr size_t kMaxFigureBytes = size_t{64} << 20;  // a prototype grid is kilobytes; this only bounds a stray file

const char* kIntro =
    "ASR: the fraction of trials whose predicted set of forgotten classes is exactly the forgotten set; mean ± "
    "sample std over seeds (n = trials). Chance is the probability of naming that set by a uniform guess.";

std::string markdown_of(const std::vector<Table>& tables) {
  std::ostringstream md;
  md << "# Lethe audit\n\n" << kIntro << "\n";
  for (const Table& t : tables) {
    md << "\n## " << t.title << "\n\n|";
    for (const std::string& h : t.header) md << " " << h << " |";
    md << "\n|";
    for (size_t i = 0; i < t.header.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& row : t.rows) {
      md << "|";
      for (const std::string& c : row) md << " " << c << (c.empty() ? "|" : " |");
      md << "\n";
    }
  }
  return md.str();
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t chunk = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) chunk |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) chunk |= static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[chunk & 63] : '=';
  }
  return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

// The built-in font is ASCII: the tables' "·" becomes "/" in figure text.
std::string ascii(const std::string& text) { return replace_all(text, "·", "/"); }

}  // namespace

std::string file_stem(const std::string& text) {
  std::string s;
  for (const char c : text)
    s += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '=' || c == ',' ? c : '_';
  return s;
}

Summary summarise(const std::vector<nlohmann::json>& rows) {
  // ASR cells: (scenario, method, column) -> per seed (hits, trials); chance and queries alongside.
  struct Cell {
    std::map<uint64_t, std::pair<int64_t, int64_t>> per_seed;
    double chance = 0, queries = 0;
    int64_t trials = 0;
  };
  std::map<std::vector<std::string>, Cell> cells;
  // Unlearning metrics: (scenario, method) -> metric -> values over runs.
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::vector<double>>> unlearning;
  std::vector<std::string> scenario_order, method_order, column_order;
  const auto remember = [](std::vector<std::string>& order, const std::string& s) {
    if (std::find(order.begin(), order.end(), s) == order.end()) order.push_back(s);
  };

  // A group is a scenario under one defense ("none": the unlearned model itself): a table of its own.
  std::map<std::string, std::pair<std::string, std::string>> group_parts;
  for (const nlohmann::json& row : rows) {
    const std::string type = row.value("type", "");
    if (type != "attack" && type != "unlearning" && type != "defense") continue;
    const std::string defense = row.value("defense", "none");
    const std::string scenario = row.at("scenario").get<std::string>() + "|" + defense, method = row.at("method");
    group_parts[scenario] = {row.at("scenario"), defense};
    remember(scenario_order, scenario);
    remember(method_order, method);
    if (type != "attack") {
      auto& metrics = unlearning[{scenario, method}];
      for (const auto& [name, value] : row.at("metrics").items())
        if (value.is_number()) metrics[name].push_back(value.get<double>());
      metrics["seconds"].push_back(row.value("seconds", 0.0));
      continue;
    }
    // The harness's comparison: the attack's prediction against the classes the run forgot.
    const std::vector<int64_t> truth = int_list(row.at("forget"));
    for (const auto& [variant, predicted] : row.at("predictions").items()) {
      const std::string column = column_of(row.at("attack"), variant);
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
  s.csv = "scenario,defense,method,attack,asr_mean,asr_std,seeds,trials,chance,mean_queries\n";
  for (const std::string& scenario : scenario_order) {
    const auto& [scenario_name, defense] = group_parts[scenario];
    const std::string group_title =
        scenario_name + "-class forgetting" + (defense == "none" ? "" : ", defense " + defense);
    std::vector<std::string> columns;
    double chance = 0;
    for (const std::string& c : column_order)
      for (const std::string& m : method_order) {
        const auto it = cells.find({scenario, m, c});
        if (it == cells.end()) continue;
        chance = it->second.chance;
        if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
      }
    if (!columns.empty()) {
      Table t{group_title + ": attack success rate (chance " + pct(chance) + ")", {"method"}, {}};
      t.header.insert(t.header.end(), columns.begin(), columns.end());
      for (const std::string& method : method_order) {
        std::vector<std::string> line = {method};
        bool any = false;
        for (const std::string& column : columns) {
          const auto it = cells.find({scenario, method, column});
          if (it == cells.end()) {
            line.emplace_back();
            continue;
          }
          any = true;
          const Cell& cell = it->second;
          std::vector<double> asr;
          for (const auto& [seed, ht] : cell.per_seed)
            asr.push_back(static_cast<double>(ht.first) / static_cast<double>(ht.second));
          const double mean = mean_of(asr), std = sample_std(asr, mean);
          const int64_t seeds = static_cast<int64_t>(asr.size());
          const double mean_queries = cell.queries / static_cast<double>(cell.trials);
          line.push_back(pct_pm(mean, std, seeds) + " (n=" + std::to_string(cell.trials) + ")");
          s.json["asr"].push_back({{"scenario", scenario_name}, {"defense", defense}, {"method", method},
                                   {"attack", column},
                                   {"asr_mean", mean},     {"asr_std", std},   {"seeds", seeds},
                                   {"trials", cell.trials}, {"chance", cell.chance},
                                   {"mean_queries", mean_queries}});
          char buf[256];
          std::snprintf(buf, sizeof buf, "%s,%s,%s,\"%s\",%.6f,%.6f,%lld,%lld,%.6g,%.0f\n", scenario_name.c_str(),
                        defense.c_str(), method.c_str(), column.c_str(), mean, std, static_cast<long long>(seeds),
                        static_cast<long long>(cell.trials), cell.chance, mean_queries);
          s.csv += buf;
        }
        if (any) t.rows.push_back(std::move(line));
      }
      s.tables.push_back(std::move(t));
    }
    Table u{group_title + (defense == "none" ? ": unlearning metrics" : ": metrics after the defense") +
                " (mean over runs)",
            {"method", "runs", "UA", "RA", "TA", "MIA-efficacy", "seconds"},
            {}};
    for (const std::string& method : method_order) {
      const auto it = unlearning.find({scenario, method});
      if (it == unlearning.end()) continue;
      const auto& m = it->second;
      const auto cell = [&](const std::string& name) {
        const auto f = m.find(name);
        return f == m.end() ? std::string("n/a") : pct(mean_of(f->second));
      };
      const size_t runs = m.count("seconds") ? m.at("seconds").size() : 0;
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", m.count("seconds") ? mean_of(m.at("seconds")) : 0.0);
      u.rows.push_back({method, std::to_string(runs), cell("UA"), cell("RA"), cell("TA"), cell("MIA"), secs});
      nlohmann::json means = nlohmann::json::object();
      for (const auto& [name, values] : m) means[name] = mean_of(values);
      s.json["unlearning"].push_back(
          {{"scenario", scenario_name}, {"defense", defense}, {"method", method}, {"runs", runs}, {"mean", means}});
    }
    if (!u.rows.empty()) s.tables.push_back(std::move(u));
  }
  s.markdown = markdown_of(s.tables);
  return s;
}

void write_summary(const std::string& dir, const Summary& summary) {
  const std::filesystem::path d(dir);
  write_file_atomic((d / "summary.md").string(), summary.markdown);
  write_file_atomic((d / "summary.csv").string(), summary.csv);
  write_file_atomic((d / "summary.json").string(), summary.json.dump(2) + "\n");
}

std::vector<Figure> figures_of(const std::vector<nlohmann::json>& rows) {
  std::vector<Figure> figures;
  // Per attack variant: every single-class trial's per-class scores, the forgotten class's against the kept
  // classes', per method.
  std::map<std::string, std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>> scores;
  std::vector<std::string> columns, methods;
  std::set<uint64_t> seeds;
  // The undefended single-class trials.
  const auto pictured = [](const nlohmann::json& row) {
    return row.value("type", "") == "attack" && row.value("scenario", "") == "single" &&
           row.value("defense", "none") == "none" && row.contains("scores");
  };
  for (const nlohmann::json& row : rows)
    if (pictured(row)) seeds.insert(row.at("seed").get<uint64_t>());
  for (const nlohmann::json& row : rows) {
    if (!pictured(row)) continue;
    const std::string method = row.at("method"), attack = row.at("attack");
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
    const int64_t forgotten = row.at("forget").at(0);
    for (const auto& [variant, per_class] : row.at("scores").items()) {
      const std::string column = column_of(attack, variant);
      if (std::find(columns.begin(), columns.end(), column) == columns.end()) columns.push_back(column);
      auto& [forgot, kept] = scores[column][method];
      for (size_t k = 0; k < per_class.size(); ++k)
        (static_cast<int64_t>(k) == forgotten ? forgot : kept).push_back(per_class[k].get<double>());
    }
    // Hu's confidence change per class, for the first seed's trials.
    const bool first_seed = row.at("seed").get<uint64_t>() == *seeds.begin();
    if (attack == "hu-label" && first_seed && row.at("scores").contains("probability")) {
      plot::BarChart chart;
      chart.title = "hu-label: confidence drop per class (" + method + ", class " + std::to_string(forgotten) +
                    " forgotten)";
      chart.x_label = "class";
      chart.y_label = "-delta p (mean over probes)";
      for (size_t k = 0; k < row["scores"]["probability"].size(); ++k) {
        chart.categories.push_back(std::to_string(k));
        chart.values.push_back(row["scores"]["probability"][k].get<double>());
        chart.highlight.push_back(static_cast<int64_t>(k) == forgotten);
      }
      chart.reference = 0.0;
      figures.push_back({"hu-label-" + file_stem(method) + "-forget" + std::to_string(forgotten) + ".png",
                         chart.title, plot::encode_png(plot::render_bar_chart(chart, 640, 360))});
    }
  }
  for (const std::string& column : columns) {
    plot::StripPlot strip;
    strip.title = ascii(column) + ": per-class score, forgotten class (orange) vs the kept ones";
    strip.y_label = "score (higher: judged forgotten)";
    for (const std::string& method : methods) {
      const auto it = scores[column].find(method);
      if (it == scores[column].end()) continue;
      strip.groups.push_back(method + " forgot");
      strip.values.push_back(it->second.first);
      strip.highlight.push_back(true);
      strip.groups.push_back(method + " kept");
      strip.values.push_back(it->second.second);
      strip.highlight.push_back(false);
    }
    const int64_t width = std::max<int64_t>(640, 100 * static_cast<int64_t>(strip.groups.size()));
    figures.push_back({"scores-" + file_stem(replace_all(column, " · ", "-")) + ".png", strip.title,
                       plot::encode_png(plot::render_strip_plot(strip, width, 400))});
  }
  return figures;
}

std::string html_report(const Summary& summary, const std::vector<Figure>& figures,
                        const std::vector<Figure>& prototypes) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lethe audit</title>\n"
    << "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
       "th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:0.5em;vertical-align:top}"
       "figcaption{font-size:small;max-width:640px}img{max-width:100%}</style></head><body>\n"
    << "<h1>Lethe audit</h1>\n<p>" << html_escape(kIntro) << "</p>\n";
  for (const Table& t : summary.tables) {
    h << "<h2>" << html_escape(t.title) << "</h2>\n<table><tr>";
    for (const std::string& c : t.header) h << "<th>" << html_escape(c) << "</th>";
    h << "</tr>\n";
    for (const auto& row : t.rows) {
      h << "<tr>";
      for (const std::string& c : row) h << "<td>" << html_escape(c) << "</td>";
      h << "</tr>\n";
    }
    h << "</table>\n";
  }
  const auto gallery = [&](const std::string& title, const std::vector<Figure>& list) {
    if (list.empty()) return;
    h << "<h2>" << html_escape(title) << "</h2>\n";
    for (const Figure& f : list)
      h << "<figure><img alt=\"" << html_escape(f.caption) << "\" src=\"data:image/png;base64," << base64(f.png)
        << "\"><figcaption>" << html_escape(f.caption) << "</figcaption></figure>\n";
  };
  gallery("Figures", figures);
  gallery("Inversion prototypes (one per class, left to right 0..K-1)", prototypes);
  h << "</body></html>\n";
  return h.str();
}

void write_report(const std::string& dir, const std::vector<nlohmann::json>& rows) {
  const Summary summary = summarise(rows);
  write_summary(dir, summary);
  const std::filesystem::path d(dir);
  const std::vector<Figure> figures = figures_of(rows);
  std::filesystem::create_directories(d / "figures");
  for (const Figure& f : figures) write_file_atomic((d / "figures" / f.file).string(), f.png);
  // The prototype grids the inversion attacks left beside the results, in name order.
  std::vector<Figure> prototypes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(d / "prototypes", ec))
    if (entry.path().extension() == ".png")
      prototypes.push_back({entry.path().filename().string(), entry.path().stem().string(),
                            read_file_bytes(entry.path().string(), kMaxFigureBytes)});
  std::sort(prototypes.begin(), prototypes.end(), [](const Figure& a, const Figure& b) { return a.file < b.file; });
  write_file_atomic((d / "index.html").string(), html_report(summary, figures, prototypes));
}

}  // namespace lethe::attacks::audit
