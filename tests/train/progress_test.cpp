// Progress bar: durations, ETA and throughput arithmetic, the drawn line and redraw throttling (injected clock).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "train/progress.h"

namespace gsdiff {
namespace {

TEST(Progress, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.4), "0:59");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(3600), "1:00:00");
  EXPECT_EQ(format_duration(90061), "25:01:01");
  EXPECT_EQ(format_duration(NAN), "--:--");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Progress, EtaThroughputAndLine) {
  double now = 100.0;
  std::ostringstream out;
  ProgressBar bar(out, "ex/s", [&] { return now; }, /*min_interval=*/0.0, /*bar_width=*/10);
  bar.start(0, 100);
  EXPECT_TRUE(std::isnan(bar.eta_seconds()));
  EXPECT_TRUE(std::isnan(bar.throughput()));
  for (int s = 1; s <= 25; ++s) {
    now += 0.5;
    EXPECT_TRUE(bar.update(s, 2.0, NAN, 32));
  }
  // 25 steps in 12.5 s: 0.5 s per step, 75 left -> 37.5 s; 800 examples / 12.5 s = 64 ex/s.
  EXPECT_DOUBLE_EQ(bar.eta_seconds(), 37.5);
  EXPECT_DOUBLE_EQ(bar.throughput(), 64.0);
  EXPECT_EQ(bar.line(), "[##--------] 25/100  loss 2  64.0 ex/s  ETA 0:38");
  EXPECT_EQ(out.str().substr(out.str().rfind('\r')), "\r" + bar.line() + "\033[K");
}

TEST(Progress, ResumedRunCountsOnlyItsOwnSteps) {
  double now = 0.0;
  std::ostringstream out;
  ProgressBar bar(out, "tok/s", [&] { return now; }, 0.0, 4);
  bar.start(1000, 2000);  // resumed at step 1000
  now = 50.0;
  bar.update(1100, 1.5, 3.25, 256.0 * 100);  // 100 steps in 50 s, 25600 tokens
  EXPECT_DOUBLE_EQ(bar.eta_seconds(), 900 * 0.5);  // 900 left at 0.5 s per step
  EXPECT_DOUBLE_EQ(bar.throughput(), 512.0);
  EXPECT_EQ(bar.line(), "[##--] 1100/2000  loss 1.5  bits 3.2500  512 tok/s  ETA 7:30");
}

TEST(Progress, ThrottlesAndAveragesSinceLastDraw) {
  double now = 0.0;
  std::ostringstream out;
  ProgressBar bar(out, "ex/s", [&] { return now; }, /*min_interval=*/1.0, 10);
  bar.start(0, 10);
  now = 0.1;
  EXPECT_TRUE(bar.update(1, 4.0, 1.0, 1));  // first update draws
  now = 0.5;
  EXPECT_FALSE(bar.update(2, 2.0, 3.0, 1));  // within 1 s of the last draw
  now = 0.9;
  EXPECT_FALSE(bar.update(3, 3.0, NAN, 1));
  now = 1.2;
  EXPECT_TRUE(bar.update(4, 1.0, 5.0, 1));
  // loss mean of steps 2..4 = 2, bits mean of the finite ones = 4
  EXPECT_NE(bar.line().find("loss 2  bits 4.0000"), std::string::npos) << bar.line();
  now = 1.3;
  EXPECT_TRUE(bar.update(10, 1.0, NAN, 1));  // the last step always draws
  EXPECT_EQ(bar.line().substr(0, 12), "[##########]");
  const std::string before = out.str();
  bar.clear();
  EXPECT_EQ(out.str().substr(before.size()), "\r\033[K");
  bar.finish();  // nothing shown after clear: no newline
  EXPECT_EQ(out.str().size(), before.size() + 4);
}

}  // namespace
}  // namespace gsdiff
