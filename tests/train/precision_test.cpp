// train.precision = bf16: the forward pass runs under bf16 autocast (CPU here, CUDA alike) and stays close to fp32.
#include <gtest/gtest.h>

#include "core/registry.h"
#include "models/autocast.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {

class Precision : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    testing::register_test_models();
  }
  static std::vector<double> losses(const std::string& precision, int64_t steps) {
    auto j = testing::gmm_config(steps, 32);
    j["train"]["precision"] = precision;
    j["train"]["tensorboard"] = false;
    Trainer t(parse_config(j), testing::quiet_env(testing::fresh_dir("precision_" + precision)));
    for (int64_t i = 0; i < steps; ++i) EXPECT_TRUE(t.step()) << precision << " step " << i;
    return t.losses();
  }
};

// The scope really lowers matmuls to bf16 and restores fp32 on exit.
TEST_F(Precision, AutocastScopeLowersMatmulsAndRestores) {
  auto a = torch::randn({8, 8}), b = torch::randn({8, 8});
  {
    Bf16Autocast amp(/*cuda=*/false);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), at::kBFloat16);
    EXPECT_EQ((a + b).scalar_type(), at::kFloat);  // pointwise ops keep their dtype
  }
  EXPECT_EQ(torch::mm(a, b).scalar_type(), at::kFloat);
  {
    Bf16Autocast off(/*cuda=*/false, /*enabled=*/false);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), at::kFloat);
  }
}

// Same seed, same data: bf16 losses differ from fp32 (autocast was on) by no more than bf16 rounding
// allows (8 mantissa bits: ~0.4% per op; 3% over a few layers and steps), and every step updates.
TEST_F(Precision, Bf16TrainingTracksFp32) {
  auto f32 = losses("fp32", 5), b16 = losses("bf16", 5);
  ASSERT_EQ(f32.size(), 5u);
  ASSERT_EQ(b16.size(), 5u);
  double max_rel = 0;
  for (size_t i = 0; i < f32.size(); ++i) max_rel = std::max(max_rel, std::abs(b16[i] - f32[i]) / std::abs(f32[i]));
  EXPECT_GT(max_rel, 0.0) << "bf16 run is bit-identical to fp32: autocast was not applied";
  EXPECT_LT(max_rel, 0.03);
}

TEST_F(Precision, UnknownPrecisionIsAConfigError) {
  auto j = testing::gmm_config(1);
  j["train"]["precision"] = "fp16";
  try {
    parse_config(j);
    ADD_FAILURE() << "fp16 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision"), std::string::npos) << e.what();
  }
}

}  // namespace gsdiff
