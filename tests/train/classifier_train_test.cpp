// The classifier objective: `gsdiff train`'s trainer fits a noisy-input classifier p(y | x_t, t) (D-CBG's, Schiff et
// al. 2025) on Fashion-MNIST, and it beats chance.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/registry.h"
#include "models/classifier.h"
#include "test_util.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

const char* kFashionRoot = "/usr/share/datasets/fashion-mnist";

nlohmann::json classifier_run(int64_t steps) {
  // A Gaussian process: the objective is the same for every process, and a continuous-input trunk learns within the
  // test's budget (a categorical one, 257 embedded levels per pixel, stays at chance for 100 steps: issue noted in the
  // README).
  return {{"process", {{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}}},
          {"model", {{"type", "classifier"}, {"classes", 10}, {"features", 16},
                     {"trunk", {{"type", "unet"}, {"in_channels", 1},
                                {"ch", 8}, {"ch_mult", {1, 2}}, {"num_res_blocks", 1}, {"attn_resolutions", nlohmann::json::array()},
                                {"image_size", 28}, {"num_groups", 4}, {"dropout", 0.0}}}}},
          {"data", {{"name", "fashion-mnist"}, {"root", kFashionRoot}, {"batch_size", 32}, {"seed", 0}, {"prefetch", 0}}},
          {"eval_data", {{"split", "test"}}},
          {"objective", {{"name", "classifier"}}},
          {"train", {{"steps", steps}, {"lr", 5e-3}, {"warmup_steps", 10}, {"log_every", 0}, {"checkpoint_every", 0},
                     {"seed", 3}, {"ema_decay", 0.0}}},
          {"sample", {{"num", 0}}}};
}

// Accuracy on 1000 test images at t = 0.1 (log-SNR 11.7): chance is 0.1 on the balanced test set;
// a classifier at chance exceeds 0.1 + 5 sqrt(0.1 x 0.9 / 1000) = 0.147 with probability 3e-7.
TEST(ClassifierObjective, TrainsToBeatChance) {
  if (!std::filesystem::exists(std::string(kFashionRoot))) GTEST_SKIP() << "no Fashion-MNIST at " << kFashionRoot;
  register_builtins();
  auto cfg = parse_config(classifier_run(100));
  Trainer t(cfg, testing::quiet_env(testing::fresh_dir("classifier")));
  t.run();
  auto ds = data::make_dataset(eval_data_config(cfg));
  std::vector<int64_t> idx(1000);
  for (int64_t i = 0; i < 1000; ++i) idx[size_t(i)] = i;
  auto batch = ds->get_batch(idx, 0, 0);
  auto x0 = to_process_space(t.process(), batch.x);  // [1000, 1, 28, 28] levels
  auto gen = testing::seeded(4);
  auto tt = torch::full({1000}, 0.1, torch::kFloat64);
  auto xt = t.process().sample_xt(x0, tt, gen);
  t.model()->eval();
  torch::NoGradGuard ng;
  auto logits = t.model()->forward(t.process().network_input(xt, tt), tt.to(torch::kFloat32));  // [1000, 10]
  const double acc = (logits.argmax(1) == batch.labels).to(torch::kFloat64).mean().item<double>();
  std::cerr << "classifier accuracy at t = 0.1: " << acc << " (1000 test images)\n";
  EXPECT_GT(acc, 0.147) << "accuracy " << acc;
}

// The classifier objective and a classifier model go together; each without the other is refused, naming the field.
TEST(ClassifierObjective, NeedsAClassifierModelAndViceVersa) {
  register_builtins();
  auto j = classifier_run(1);
  j["model"] = j["model"]["trunk"];
  j["model"]["output_states"] = 256;
  try {
    Trainer t(parse_config(j), testing::quiet_env(testing::fresh_dir("classifier_bad")));
    ADD_FAILURE() << "a unet trained with the classifier objective";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("objective.name"), std::string::npos) << e.what();
  }
  auto bad = classifier_run(1);
  bad["model"]["trunk"]["type"] = "mlp";
  EXPECT_THROW(make_model(bad["model"]), std::invalid_argument);
}

}  // namespace
}  // namespace gsdiff
