// metrics.jsonl always has the run's last step: a run shorter than train.log_every, and the tail after the last
// full interval, each get one line averaging the steps since the previous line; log_every 0 writes none.
#include <gtest/gtest.h>

#include <fstream>

#include "core/registry.h"
#include "train/train_test_util.h"

namespace gsdiff {
namespace {

std::vector<nlohmann::json> lines_of(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<nlohmann::json> run_logged(const std::string& name, int64_t steps, int64_t log_every) {
  register_builtins();
  testing::register_test_models();
  auto j = testing::gmm_config(steps, 16);
  j["train"]["log_every"] = log_every;
  j["train"]["tensorboard"] = false;
  const auto dir = testing::fresh_dir(name);
  Trainer t(parse_config(j), testing::quiet_env(dir));
  t.run();
  return lines_of(dir + "/metrics.jsonl");
}

TEST(FinalLog, RunShorterThanLogEveryWritesItsLastStep) {
  auto lines = run_logged("final_log_short", 3, 50);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["step"], 3);
  EXPECT_TRUE(lines[0]["loss"].is_number() && lines[0]["grad_norm"].is_number() && lines[0]["lr"].is_number());
}

TEST(FinalLog, TailAfterTheLastIntervalIsLoggedOnce) {
  auto lines = run_logged("final_log_tail", 5, 2);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["step"], 2);
  EXPECT_EQ(lines[1]["step"], 4);
  EXPECT_EQ(lines[2]["step"], 5);
  // The tail line averages step 5 alone: its window holds one step, whose batch mean is bits_step.
  EXPECT_EQ(lines[2]["bits"], lines[2]["bits_step"]);
  auto exact = run_logged("final_log_exact", 4, 2);  // the last step ends an interval: no extra line
  ASSERT_EQ(exact.size(), 2u);
  EXPECT_EQ(exact[1]["step"], 4);
}

TEST(FinalLog, LogEveryZeroWritesNone) { EXPECT_TRUE(run_logged("final_log_none", 3, 0).empty()); }

}  // namespace
}  // namespace gsdiff
