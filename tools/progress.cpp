#include "tools/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace lethe::cli {
namespace {

constexpr double kRedrawSeconds = 0.1;     // terminal: at most 10 redraws a second
constexpr double kPlainLineSeconds = 5.0;  // plain: a line at least this often
constexpr int kPlainSteps = 10;            // plain: and at every 10%

int terminal_columns() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string eta(int64_t done, int64_t total, double elapsed) {
  if (done <= 0 || done > total) return "?";
  return format_duration(elapsed * static_cast<double>(total - done) / static_cast<double>(done));
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

Progress::Progress(std::string label, int64_t total, bool quiet)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      quiet_(quiet),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(Clock::now()),
      last_output_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& status) {
  if (quiet_) return;
  done = std::clamp<int64_t>(done, 0, total_);
  const auto now = Clock::now();
  const double elapsed = seconds_between(start_, now);
  const double since_last = seconds_between(last_output_, now);
  if (tty_) {
    if (done < total_ && drawn_ && since_last < kRedrawSeconds) return;
    draw_bar(done, status, elapsed);
  } else {
    const int step = static_cast<int>(done * kPlainSteps / total_);
    if (step <= last_step_ && since_last < kPlainLineSeconds) return;
    last_step_ = std::max(step, last_step_);
    write_line(done, status, elapsed);
  }
  last_output_ = now;
}

void Progress::finish() {
  if (quiet_ || !tty_ || !drawn_) return;
  std::fputs("\r\033[K", stderr);  // erase the bar: the caller prints the summary line
  std::fflush(stderr);
  drawn_ = false;
}

void Progress::draw_bar(int64_t done, const std::string& status, double elapsed) {
  // Counts padded to the width of the total, so the bar does not change length as they grow.
  const int digits = static_cast<int>(std::to_string(total_).size());
  char counts[96];
  std::snprintf(counts, sizeof counts, " %3d%% %*lld/%lld", static_cast<int>(done * 100 / total_), digits,
                static_cast<long long>(done), static_cast<long long>(total_));
  std::string tail = counts;
  if (!status.empty()) tail += "  " + status;
  tail += "  ETA " + eta(done, total_, elapsed);

  // The bar takes what is left of the terminal line, so the line never wraps (wrapping breaks "\r" redraws).
  const int columns = terminal_columns();
  const int fixed = static_cast<int>(label_.size() + tail.size()) + 3;  // " [" and "]"
  const int width = std::clamp(columns - 1 - fixed, 0, 40);
  std::string line = label_;
  if (width >= 5) {
    const int filled = static_cast<int>(static_cast<int64_t>(width) * done / total_);
    line += " [" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  }
  line += tail;
  if (static_cast<int>(line.size()) >= columns) line.resize(std::max(columns - 1, 0));
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::write_line(int64_t done, const std::string& status, double elapsed) {
  std::string line = label_;
  char counts[96];
  std::snprintf(counts, sizeof counts, ": %3d%% (%lld/%lld)", static_cast<int>(done * 100 / total_),
                static_cast<long long>(done), static_cast<long long>(total_));
  line += counts;
  if (!status.empty()) line += " " + status;
  line += ", elapsed " + format_duration(elapsed);
  if (done < total_) line += ", ETA " + eta(done, total_, elapsed);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace lethe::cli
