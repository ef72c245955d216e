// Training with VDM's learned schedule: the schedule trains beside the network, resumes bit for bit, and is restored.
#include <gtest/gtest.h>

#include "core/options.h"
#include "core/registry.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

using J = nlohmann::json;

Config learned_cfg(int64_t steps) {
  register_builtins();
  testing::register_test_models();
  auto j = testing::gmm_config(steps, 32);
  j["process"]["schedule"] = "learned-logsnr";
  j["process"]["schedule_hidden"] = 8;
  j["train"]["checkpoint_every"] = 4;
  j["train"]["lr"] = 2e-2;  // the schedule's Adam moves visibly in a few steps
  return parse_config(j);
}

std::vector<double> values_of(const Process& p) { return p.options_json().at("schedule_values").get<std::vector<double>>(); }

// 12 straight steps against 4 + 4 + 4 with two resumes (the schedule's values and its Adam state in the checkpoint):
// the same losses and schedule values bit for bit; the values moved from their start (endpoints on the ELBO, the
// shape on its variance); and restore_for_inference (what eval and sample use) gives the trained schedule.
TEST(LearnedScheduleTrainer, TrainsResumesBitForBitAndRestores) {
  const auto start = values_of(*build_process(learned_cfg(12)));
  Trainer full(learned_cfg(12), testing::quiet_env(testing::fresh_dir("ls_full")));
  full.run(12);
  const auto trained = values_of(full.process());
  ASSERT_EQ(trained.size(), start.size());
  EXPECT_NE(trained[0], start[0]);  // lambda_max
  EXPECT_NE(trained[3], start[3]);  // a_0, a shape parameter
  const auto dir = testing::fresh_dir("ls_parts");
  std::vector<double> parts;
  std::string last;
  for (int64_t until : {4, 8, 12}) {
    Trainer t(learned_cfg(12), testing::quiet_env(dir, "auto"));
    t.run(until);
    parts.insert(parts.end(), t.losses().begin(), t.losses().end());
    if (until == 12) {
      EXPECT_EQ(values_of(t.process()), trained);
    }
  }
  ASSERT_EQ(parts.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(full.losses()[i], parts[i]) << "step " << i + 1;
  auto r = restore_for_inference(dir + "/" + checkpoint_name(12), false, torch::kCPU);
  EXPECT_EQ(values_of(*r.process), trained);
}

// A learned schedule trains on the ELBO: another objective is refused, naming the field.
TEST(LearnedScheduleTrainer, OtherObjectivesAreRefusedByName) {
  auto cfg = learned_cfg(2);
  cfg.objective.name("simple");
  try {
    Trainer t(cfg, testing::quiet_env(testing::fresh_dir("ls_bad")));
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("objective.name"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gsdiff
