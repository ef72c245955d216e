// Validation and sample grids use the EMA weights and leave training bit-identical.
#include <gtest/gtest.h>

#include "core/registry.h"
#include "data/factory.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

class ValidateEma : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    testing::register_test_models();
  }
  static Config cfg() {
    auto j = testing::gmm_config(40, 16);
    j["train"]["ema_decay"] = 0.9;  // far enough from the raw weights after a few steps to change the bound
    j["eval"] = {{"limit", 256}, {"batch_size", 128}, {"time_samples", 2}, {"seed", 3}};
    return parse_config(j);
  }
  static TrainerEnv env(const std::string& dir) {
    return testing::quiet_env(dir);
  }
  static std::vector<torch::Tensor> params(Trainer& t) {
    std::vector<torch::Tensor> out;
    for (auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
    return out;
  }
  // Parameters and EMA; the optimizer's moments are covered by the twin run below (later steps equal).
  static std::vector<torch::Tensor> state(Trainer& t) {
    auto out = params(t);
    for (auto& kv : t.ema()->shadow()) out.push_back(kv.second.clone());
    return out;
  }
  static bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!torch::equal(a[i], b[i])) return false;
    return true;
  }
};

TEST_F(ValidateEma, BoundIsTheEmaModelsAndTrainingIsUntouched) {
  auto c = cfg();
  Trainer t(c, env(testing::fresh_dir("val_ema")));
  for (int i = 0; i < 15; ++i) t.step();
  double gap = 0;  // the EMA really differs from the raw weights
  for (auto& p : t.model()->named_parameters())
    gap = std::max(gap, (p.value() - t.ema()->shadow().at(p.key())).abs().max().item<double>());
  ASSERT_GT(gap, 1e-3);

  auto before = state(t);
  auto r = t.validate();
  EXPECT_TRUE(all_equal(before, state(t)));  // bit for bit
  EXPECT_TRUE(t.model()->is_training());

  // The same bound from an independent model loaded with the EMA weights; the raw weights score otherwise.
  auto ds = data::make_dataset(eval_data_config(c));
  auto ema_model = build_model(c);
  t.ema()->copy_to(*ema_model);
  auto ref = evaluate_bound(t.process(), ema_model, *ds, c.eval, torch::kCPU);
  EXPECT_EQ(r.mean, ref.mean);
  EXPECT_EQ(r.stderr_, ref.stderr_);
  auto raw = evaluate_bound(t.process(), t.model(), *ds, c.eval, torch::kCPU);
  EXPECT_GT(std::abs(raw.mean - ref.mean), 1e-6) << raw.mean;

  // Training goes on exactly as in a twin run that never validated (run after, from the same seeds).
  for (int i = 0; i < 5; ++i) t.step();
  Trainer twin(c, env(testing::fresh_dir("val_ema_twin")));
  for (int i = 0; i < 20; ++i) twin.step();
  EXPECT_EQ(t.losses(), twin.losses());
  EXPECT_TRUE(all_equal(state(t), state(twin)));

  // eval.ema = false scores the raw weights.
  auto c2 = c;
  c2.eval.ema(false);
  Trainer t2(c2, env(testing::fresh_dir("val_raw")));
  for (int i = 0; i < 20; ++i) t2.step();
  EXPECT_EQ(t2.validate().mean, evaluate_bound(t2.process(), t2.model(), *ds, c2.eval, torch::kCPU).mean);
}

TEST_F(ValidateEma, SampleCallbackSeesEmaWeightsThenRawAreRestored) {
  auto dir = testing::fresh_dir("sample_ema");
  Trainer t(cfg(), env(dir));
  int calls = 0;
  bool saw_ema = true;
  t.on_sample = [&](Trainer& tr) {
    ++calls;
    for (auto& p : tr.model()->named_parameters())
      saw_ema = saw_ema && torch::equal(p.value(), tr.ema()->shadow().at(p.key()));
  };
  t.run(6);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(saw_ema);
  // After the callback the model holds the raw weights again: those the final checkpoint saved.
  auto saved = restore_for_inference(dir + "/" + checkpoint_name(6), /*use_ema=*/false, torch::kCPU);
  auto a = t.model()->parameters();
  auto b = saved.model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  bool differs = false;
  for (auto& p : t.model()->named_parameters()) differs = differs || !torch::equal(p.value(), t.ema()->shadow().at(p.key()));
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace gsdiff
