// Terminal progress bar for training: one \r-updated line with bar, step/total, loss, bits, throughput, ETA.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace gsdiff {

// "m:ss" under an hour, else "h:mm:ss"; "--:--" when not finite or negative.
std::string format_duration(double seconds);

class ProgressBar {
 public:
  using Clock = std::function<double()>;  // seconds on a monotonic clock
  static double steady_seconds();

  // unit: the throughput label ("ex/s", or "tok/s" for text). Redraws at most every min_interval seconds.
  explicit ProgressBar(std::ostream& out, std::string unit = "ex/s", Clock clock = steady_seconds,
                       double min_interval = 0.1, int bar_width = 24);
  // The run goes from step `first` (a resumed run starts above 0) to step `total`; the clock starts now.
  void start(int64_t first, int64_t total);
  // Step `step` finished, having processed `items` examples (or tokens); loss and bits of that step (bits NaN
  // when the objective gives none). Redraws when min_interval has passed since the last draw, and always at
  // the last step; loss and bits shown are means over the steps since the last draw. Returns whether it drew.
  bool update(int64_t step, double loss, double bits, double items);
  void clear();   // erases the shown line (call before other output); the next update redraws it
  void finish();  // a newline after the shown line, if any

  // ETA = (total - step) * elapsed / (step - first): the mean step time of this run so far; NaN before a step.
  double eta_seconds() const;
  double throughput() const;  // items / elapsed since start(); NaN before a step
  std::string line() const;   // the line last drawn (no \r or escape codes)

 private:
  std::string format() const;

  std::ostream& out_;
  std::string unit_;
  Clock clock_;
  double min_interval_;
  int width_;
  int64_t first_ = 0, total_ = 0, step_ = 0;
  double t_start_ = 0, t_now_ = 0, t_drawn_ = -1e300, items_ = 0;
  double win_loss_ = 0, win_bits_ = 0;
  int64_t win_n_ = 0, win_bits_n_ = 0;
  double shown_loss_ = 0, shown_bits_ = 0;
  bool shown_ = false;  // a line is on screen (not yet cleared or finished)
  std::string line_;
};

}  // namespace gsdiff
