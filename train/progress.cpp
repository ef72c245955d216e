// Progress bar formatting and ETA arithmetic; the clock is injected so tests need no terminal.
#include "train/progress.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace gsdiff {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t s = int64_t(std::llround(seconds));
  char buf[64];
  if (s < 3600) std::snprintf(buf, sizeof(buf), "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                     (long long)(s % 60));
  return buf;
}

double ProgressBar::steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressBar::ProgressBar(std::ostream& out, std::string unit, Clock clock, double min_interval, int bar_width)
    : out_(out), unit_(std::move(unit)), clock_(std::move(clock)), min_interval_(min_interval), width_(bar_width) {}

void ProgressBar::start(int64_t first, int64_t total) {
  first_ = step_ = first;
  total_ = total;
  t_start_ = t_now_ = clock_();
  t_drawn_ = -1e300;
  items_ = 0;
  win_loss_ = win_bits_ = 0;
  win_n_ = win_bits_n_ = 0;
}

double ProgressBar::eta_seconds() const {
  const int64_t done = step_ - first_;
  if (done <= 0) return NAN;
  return double(total_ - step_) * (t_now_ - t_start_) / double(done);
}

double ProgressBar::throughput() const {
  const double dt = t_now_ - t_start_;
  return step_ > first_ && dt > 0 ? items_ / dt : NAN;
}

bool ProgressBar::update(int64_t step, double loss, double bits, double items) {
  step_ = step;
  t_now_ = clock_();
  items_ += items;
  win_loss_ += loss;
  ++win_n_;
  if (std::isfinite(bits)) win_bits_ += bits, ++win_bits_n_;
  if (step < total_ && t_now_ - t_drawn_ < min_interval_) return false;
  shown_loss_ = win_loss_ / double(win_n_);
  shown_bits_ = win_bits_n_ ? win_bits_ / double(win_bits_n_) : NAN;
  win_loss_ = win_bits_ = 0;
  win_n_ = win_bits_n_ = 0;
  t_drawn_ = t_now_;
  line_ = format();
  out_ << '\r' << line_ << "\033[K" << std::flush;  // ESC[K: erase what a longer earlier line left
  shown_ = true;
  return true;
}

void ProgressBar::clear() {
  if (!shown_) return;
  out_ << "\r\033[K" << std::flush;
  shown_ = false;
  t_drawn_ = -1e300;  // redraw at the next update
}

void ProgressBar::finish() {
  if (!shown_) return;
  out_ << '\n' << std::flush;
  shown_ = false;
}

std::string ProgressBar::line() const { return line_; }

std::string ProgressBar::format() const {
  const double frac = total_ > 0 ? std::min(1.0, std::max(0.0, double(step_) / double(total_))) : 1.0;
  const int filled = int(std::floor(frac * width_));
  std::string s = "[" + std::string(filled, '#') + std::string(width_ - filled, '-') + "] ";
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%lld/%lld  loss %.4g", (long long)step_, (long long)total_, shown_loss_);
  s += buf;
  if (std::isfinite(shown_bits_)) {
    std::snprintf(buf, sizeof(buf), "  bits %.4f", shown_bits_);
    s += buf;
  }
  const double rate = throughput();
  if (std::isfinite(rate)) {
    std::snprintf(buf, sizeof(buf), rate < 100 ? "  %.1f %s" : "  %.0f %s", rate, unit_.c_str());
    s += buf;
  }
  return s + "  ETA " + format_duration(eta_seconds());
}

}  // namespace gsdiff
