// iDDPM's loss-aware term sampler: its moments and proposal in closed form, lower variance with the same bound
// through the training objective, exact resume, and the config errors.
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"
#include "train/loss_aware.h"
#include "train/objectives.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

using torch::Tensor;
using J = nlohmann::json;

Tensor f64(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

// One step's sums as the trainer folds them: the terms recorded into bins, then committed.
void step_with(LossAwareTimes& la, std::vector<int64_t> bins, std::vector<double> terms) {
  la.record(torch::tensor(bins, torch::kLong), f64(terms));
  la.commit(la.pending());
}

// E[L^2] per bin: the running mean of the first `history` squared terms, then each step's mean enters with weight
// min(1, c / history). Hand-computed for history 4 on bin 0 (bin 1 only receives terms to stay behind).
TEST(LossAware, MomentsAreTheRunningMeanThenAWindow) {
  LossAwareTimes la(2, 4, 0.001, torch::kCPU);
  step_with(la, {0}, {2.0});             // 4
  EXPECT_DOUBLE_EQ(la.moments()[0].item<double>(), 4.0);
  step_with(la, {0}, {4.0});             // mean of 4, 16
  EXPECT_DOUBLE_EQ(la.moments()[0].item<double>(), 10.0);
  step_with(la, {0, 0, 1}, {0.0, 0.0, 3.0});  // mean of 4, 16, 0, 0
  EXPECT_DOUBLE_EQ(la.moments()[0].item<double>(), 5.0);
  EXPECT_DOUBLE_EQ(la.moments()[1].item<double>(), 9.0);
  step_with(la, {0}, {std::sqrt(8.0)});  // a full window: 5 + (8 - 5) / 4
  EXPECT_NEAR(la.moments()[0].item<double>(), 5.75, 1e-12);
  step_with(la, {0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1});  // 6 terms > history: the step's mean replaces it
  EXPECT_DOUBLE_EQ(la.moments()[0].item<double>(), 1.0);
  EXPECT_TRUE(la.counts().equal(f64({11, 1})));
  step_with(la, {-1, 1}, {100.0, 3.0});  // bin -1 (a continuous-time reconstruction) is not a bin's term
  EXPECT_TRUE(la.counts().equal(f64({11, 2})));
  la.record(torch::tensor({0}, torch::kLong), f64({50.0}));
  la.discard();  // a skipped step
  la.commit(la.pending());
  EXPECT_DOUBLE_EQ(la.moments()[0].item<double>(), 1.0);
}

// Uniform until every bin has `history` terms; then (1 - u) sqrt(m_k) / sum sqrt(m) + u / N.
TEST(LossAware, ProposalIsUniformUntilWarmThenSqrtOfTheSecondMoments) {
  LossAwareTimes la(3, 2, 0.01, torch::kCPU);
  step_with(la, {0, 0, 1, 1, 2}, {1.0, 1.0, 2.0, 2.0, 4.0});
  EXPECT_FALSE(la.warm());
  EXPECT_TRUE(torch::allclose(la.probs(), torch::full({3}, 1.0 / 3, torch::kFloat64)));
  step_with(la, {2}, {4.0});
  EXPECT_TRUE(la.warm());
  auto want = f64({1.0, 2.0, 4.0}) / 7.0 * 0.99 + 0.01 / 3;
  EXPECT_TRUE(torch::allclose(la.probs(), want, 0, 1e-14)) << la.probs();
}

// Through the training objective (what `gsdiff train` runs with objective.time_sampling loss-aware): DDPM's
// discrete process, T = 40, and a fixed imperfect eps-network whose terms differ by orders of magnitude across t.
// After a warm-up of 64 batches the loss-aware estimate has the all-terms bound's mean (within 5 joint standard
// errors) and a smaller spread than uniform i; the margin (ratio < 0.8) is far outside the ratio's sampling error
// at n = 20000 (a few percent).
TEST(LossAware, SameBoundWithLessVarianceThroughTheObjective) {
  register_builtins();
  auto proc = make_process(J{{"name", "gaussian-vp"}, {"schedule", "linear-beta-discrete"}, {"steps", 40}});
  auto& g = dynamic_cast<const GaussianProcess&>(*proc);
  auto gen = testing::seeded(3);
  DenoiseFn net = [&g](const Tensor& in, const Tensor& t) { return 0.8 * in - 0.1 * g.at(t, in).sigma; };
  auto data = [&](int64_t n) { return at::randint(0, 256, {n, 2}, gen).to(torch::kFloat64) / 127.5 - 1.0; };

  auto o = ObjectiveOptions().time_sampling("loss-aware");
  auto la = make_loss_aware(o, *proc, torch::kCPU);
  ASSERT_EQ(la->bins(), 40);
  auto aware = make_objective(o, *proc, la);
  for (int k = 0; k < 64; ++k) {
    aware(*proc, net, data(256), gen);
    la->commit(la->pending());
  }
  ASSERT_TRUE(la->warm());
  auto uniform = make_objective(ObjectiveOptions(), *proc);

  auto x0 = data(20000);
  auto a = aware(*proc, net, x0, gen).nelbo, u = uniform(*proc, net, x0, gen).nelbo;  // [n] nats
  la->discard();
  auto all = negative_elbo(*proc, net, x0, gen, ElboOptions().exact(true)).total();  // every term
  auto mse = [](const Tensor& v) { return v.std().item<double>() / std::sqrt(double(v.numel())); };
  const double m_all = all.mean().item<double>();
  for (const auto& [name, v] : {std::pair<const char*, Tensor>{"loss-aware", a}, {"uniform", u}}) {
    double se = std::sqrt(mse(v) * mse(v) + mse(all) * mse(all));
    EXPECT_NEAR(v.mean().item<double>(), m_all, 5 * se) << name;
  }
  const double ratio = a.var().item<double>() / u.var().item<double>();
  std::cout << "variance loss-aware / uniform: " << ratio << " (sd " << a.std().item<double>() << " vs "
            << u.std().item<double>() << " nats, bound " << m_all << ")\n";
  EXPECT_LT(ratio, 0.8);
}

class LossAwareTrainer : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    testing::register_test_models();
  }
  Config cfg(int64_t steps) {
    auto j = testing::gmm_config(steps, 32);
    j["objective"]["time_sampling"] = "loss-aware";
    j["objective"]["loss_aware_bins"] = 8;
    j["objective"]["loss_aware_history"] = 2;
    j["train"]["checkpoint_every"] = 4;
    return parse_config(j);
  }
};

// A resumed run continues the same run: the checkpoint carries the sampler's moments, so 4 + 4 + 4 steps with two
// resumes give the losses and moments of 12 straight steps bit for bit (a sampler restarted at uniform would not:
// it is warm after the first steps, and warm proposals move every t).
TEST_F(LossAwareTrainer, ResumeCarriesTheSampler) {
  Trainer full(cfg(12), testing::quiet_env(testing::fresh_dir("la_full")));
  full.run(12);
  ASSERT_TRUE(full.loss_aware()->warm());
  const auto dir = testing::fresh_dir("la_parts");
  std::vector<double> parts;
  for (int64_t until : {4, 8, 12}) {
    Trainer t(cfg(12), testing::quiet_env(dir, "auto"));
    t.run(until);
    parts.insert(parts.end(), t.losses().begin(), t.losses().end());
    if (until == 12) {
      EXPECT_TRUE(t.loss_aware()->moments().equal(full.loss_aware()->moments()));
      EXPECT_TRUE(t.loss_aware()->counts().equal(full.loss_aware()->counts()));
    }
  }
  ASSERT_EQ(parts.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(full.losses()[i], parts[i]) << "step " << i + 1;
}

// Bad settings name the field and what was expected.
TEST(LossAware, ConfigErrorsNameTheField) {
  register_builtins();
  testing::register_test_models();
  auto expect_error = [](J j, const std::string& needle) {
    try {
      Trainer t(parse_config(j), testing::quiet_env(testing::fresh_dir("la_bad")));
      ADD_FAILURE() << "no error for " << j["objective"].dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto j = testing::gmm_config(1, 8);
  j["objective"] = {{"name", "hybrid"}, {"time_sampling", "loss-aware"}};
  expect_error(j, "'objective.time_sampling'");
  j["objective"] = {{"name", "elbo"}, {"time_sampling", "sometimes"}};
  expect_error(j, "'objective.time_sampling'");
  j["objective"] = {{"name", "elbo"}, {"time_sampling", "loss-aware"}, {"loss_aware_uniform", 0}};
  expect_error(j, "'objective.loss_aware_uniform'");
  j["objective"] = {{"name", "elbo"}, {"time_sampling", "loss-aware"}, {"loss_aware_bins", 7}};
  j["process"] = {{"name", "gaussian-vp"}, {"schedule", "linear-beta-discrete"}, {"steps", 10}, {"parameterization", "eps"}};
  expect_error(j, "'objective.loss_aware_bins'");
  auto k = J{{"process", {{"name", "absorbing"}, {"K", 4}, {"steps", 0}}},
             {"model", {{"type", "transformer"}, {"vocab_size", 5}, {"out_dim", 4}, {"dim", 16}, {"depth", 1},
                        {"num_heads", 2}, {"cond_dim", 8}, {"max_len", 8}}},
             {"data", {{"name", "toy-markov"}, {"n", 64}, {"seq_len", 8}, {"batch_size", 8}}},
             {"objective", {{"name", "elbo"}, {"time_sampling", "logsnr"}}},
             {"train", {{"steps", 1}, {"tensorboard", false}}}};
  expect_error(k, "'objective.time_sampling' 'logsnr' needs a Gaussian process");
}

}  // namespace
}  // namespace gsdiff
