// Self-conditioning in training: a first pass without gradient with probability 1/2, and bit-exact resume.
#include <gtest/gtest.h>

#include "core/registry.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

// What each call of the network saw: grad mode, whether an estimate came, whether it carried a graph.
struct ScTrainCall {
  bool grad, has_est, est_graph;
  int64_t step;
};
std::vector<ScTrainCall>& sc_train_log() {
  static std::vector<ScTrainCall> log;
  return log;
}
int64_t& sc_train_step() {
  static int64_t s = 0;
  return s;
}

// The toy MLP with self-conditioning: [x, estimate (zeros when none), time features] -> eps [B, D].
struct ScMlpImpl : DenoiserNetImpl {
  explicit ScMlpImpl(int64_t dim) : dim_(dim) {
    net = register_module("net", torch::nn::Sequential(torch::nn::Linear(2 * dim + 16, 32), torch::nn::SiLU(),
                                                        torch::nn::Linear(32, dim)));
  }
  torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) override {
    return forward_self_cond(x, t, y, {});
  }
  torch::Tensor forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor, torch::Tensor est) override {
    sc_train_log().push_back({torch::GradMode::is_enabled(), est.defined(), est.defined() && est.requires_grad(), sc_train_step()});
    auto freqs = torch::exp(torch::arange(8, torch::kFloat32) * std::log(1000.0) / 7.0);
    auto a = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, 8]
    auto e = est.defined() ? est.to(torch::kFloat32) : torch::zeros_like(x, torch::kFloat32);
    return net->forward(torch::cat({x.to(torch::kFloat32), e, torch::sin(a), torch::cos(a)}, 1));
  }
  bool self_conditioned() const override { return true; }
  int64_t num_classes() const override { return 0; }
  nlohmann::json config() const override { return {{"type", "test-sc-mlp"}, {"dim", dim_}}; }
  int64_t dim_;
  torch::nn::Sequential net{nullptr};
};

class SelfConditionTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    register_model("test-sc-mlp", [](const nlohmann::json& j) { return as_denoiser(std::make_shared<ScMlpImpl>(j.value("dim", 2))); });
  }
  static Config cfg(int64_t steps) {
    auto j = testing::gmm_config(steps);
    j["model"] = {{"type", "test-sc-mlp"}, {"dim", 2}};
    j["data"]["batch_size"] = 8;
    return parse_config(j);
  }
};

// Every step is one pass with zeros, or two: the first with gradient off and no estimate, the second with
// gradient on and an estimate that carries no graph (stop-gradient). Two-pass steps are Binomial(n, 1/2):
// within 4 standard deviations, 4 sqrt(n / 4) = 2 sqrt(n) (a correct sampler fails with probability 6e-5).
TEST_F(SelfConditionTrain, FirstPassHasNoGradientAndComesWithProbabilityOneHalf) {
  const int64_t n = 400;
  Trainer t(cfg(n), testing::quiet_env(testing::fresh_dir("sc_half")));
  sc_train_log().clear();
  for (int64_t s = 0; s < n; ++s) {
    sc_train_step() = s;
    t.step();
  }
  std::vector<std::vector<ScTrainCall>> per(n);
  for (const auto& c : sc_train_log()) per[size_t(c.step)].push_back(c);
  int64_t two = 0;
  for (const auto& calls : per) {
    ASSERT_TRUE(calls.size() == 1 || calls.size() == 2);
    const auto& last = calls.back();
    EXPECT_TRUE(last.grad);
    EXPECT_FALSE(last.est_graph);
    if (calls.size() == 1) {
      EXPECT_FALSE(last.has_est);
      continue;
    }
    ++two;
    EXPECT_FALSE(calls[0].grad);
    EXPECT_FALSE(calls[0].has_est);
    EXPECT_TRUE(last.has_est);
  }
  EXPECT_NEAR(double(two), 0.5 * n, 2.0 * std::sqrt(double(n))) << two << " of " << n << " steps fed an estimate";
}

// The coin is drawn from the micro-batch's seeded generator: a run resumed from a checkpoint is the same run.
TEST_F(SelfConditionTrain, ResumeIsBitExact) {
  std::vector<torch::Tensor> full;
  std::vector<double> full_losses;
  {
    Trainer t(cfg(10), testing::quiet_env(testing::fresh_dir("sc_full")));
    t.run(10);
    full_losses = t.losses();
    for (auto& p : t.model()->parameters()) full.push_back(p.detach().clone());
  }
  auto dir = testing::fresh_dir("sc_parts");
  std::vector<double> losses;
  for (int64_t until : {5, 10}) {
    Trainer t(cfg(10), testing::quiet_env(dir, "auto"));
    t.run(until);
    losses.insert(losses.end(), t.losses().begin(), t.losses().end());
    if (until == 10) {
      auto ps = t.model()->parameters();
      ASSERT_EQ(ps.size(), full.size());
      for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(torch::equal(ps[i], full[i])) << "parameter " << i;
    }
  }
  ASSERT_EQ(losses.size(), full_losses.size());
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(losses[i], full_losses[i]) << "step " << i + 1;
}

// Validation and `gsdiff eval` score the two-pass denoiser: two calls per batch, the second with the estimate.
TEST_F(SelfConditionTrain, TheBoundUsesTwoPasses) {
  Trainer t(cfg(1), testing::quiet_env(testing::fresh_dir("sc_bound")));
  sc_train_log().clear();
  auto c = t.config().eval;
  c.exact(false).limit(16).batch_size(16);
  auto ds = data::make_dataset(eval_data_config(t.config()));
  evaluate_bound(t.process(), t.model(), *ds, c, torch::kCPU);
  ASSERT_GE(sc_train_log().size(), 2u);
  ASSERT_EQ(sc_train_log().size() % 2, 0u);
  for (size_t i = 0; i < sc_train_log().size(); ++i) EXPECT_EQ(sc_train_log()[i].has_est, i % 2 == 1) << i;
}

}  // namespace
}  // namespace gsdiff
