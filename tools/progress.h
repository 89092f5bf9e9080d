#pragma once
// Progress of long work on stderr. On a terminal: one redrawn line with a bar, counts, a status and the ETA.
// Otherwise (logs, CI): a plain line at every 10% step or at least every 5 seconds, so logs stay short but alive.
#include <chrono>
#include <cstdint>
#include <string>

namespace lethe::cli {

class Progress {
 public:
  // `total` items of work; silent when `quiet`.
  Progress(std::string label, int64_t total, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` items finished so far; `status` is shown after the counts (e.g. "loss 0.4132").
  void update(int64_t done, const std::string& status = {});
  // Clears the terminal line so the next output starts clean. Idempotent; the destructor calls it.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  void draw_bar(int64_t done, const std::string& status, double elapsed);
  void write_line(int64_t done, const std::string& status, double elapsed);

  std::string label_;
  int64_t total_;
  bool quiet_, tty_, drawn_ = false;
  Clock::time_point start_, last_output_;
  int last_step_ = 0;  // tenths reported so far (plain mode)
};

// "1:05", "1:02:09"; "?" for unknown.
std::string format_duration(double seconds);

}  // namespace lethe::cli
