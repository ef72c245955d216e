// Self-conditioning at sampling time: the feedback wrapper hands each call the previous call's x0 estimate.
#include <gtest/gtest.h>

#include "core/categorical.h"
#include "core/gaussian.h"
#include "core/registry.h"
#include "core/self_condition.h"
#include "models/transformer.h"
#include "sample/export.h"
#include "sample/guidance.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace gsdiff {
namespace self_condition_sample {

using torch::Tensor;

struct ScCall {
  Tensor net_in, t, est, out;
  bool grad = false;
};

// A mock self-conditioned network that records its inputs: its output is a fixed function of (x, t) plus the
// estimate's own values (so a wrong estimate changes the chain), in float64.
SelfCondFn recording_fn(std::vector<ScCall>& calls, int64_t K) {
  return [&calls, K](const Tensor& x, const Tensor& t, const Tensor& est) {
    auto base = x.to(torch::kFloat64);
    Tensor out = K > 0 ? torch::sin(base.unsqueeze(-1) * torch::arange(1, K + 1, torch::kFloat64) + t.view({-1, 1, 1}))
                       : 0.3 * base + torch::cos(t.view({-1, 1}) * 3.0);
    if (est.defined()) out = out + 0.7 * est;
    calls.push_back({x.clone(), t.clone(), est.defined() ? est.clone() : est, out.clone(), torch::GradMode::is_enabled()});
    return out;
  };
}

// The states the chain passes through (prior draw, then every x_s), from the sampler's hook.
StepHook recording_hook(std::vector<Tensor>& states) {
  return [&states](const Tensor& x, const StepInfo&, torch::Generator&) {
    states.push_back(x.clone());
    return x;
  };
}

// Call k > 0 sees exactly the estimate of call k - 1, computed here from the state the hook saw (not from what
// the network was given): exp(read_output) for a categorical process, read_output itself for a Gaussian one.
void expect_feedback(const Process& p, const std::vector<ScCall>& calls, const std::vector<Tensor>& states, double tol) {
  ASSERT_EQ(calls.size() + 1, states.size());  // one call per step; the last state is the chain's output
  EXPECT_FALSE(calls[0].est.defined());          // zeros at the first call
  for (size_t k = 1; k < calls.size(); ++k) {
    const auto& c = calls[k - 1];
    EXPECT_TRUE(torch::allclose(c.net_in.to(torch::kFloat64), p.network_input(states[k - 1], c.t).to(torch::kFloat64), 1e-6, 1e-6));
    auto want = p.read_output(c.out, states[k - 1], c.t);
    if (p.space() == Space::Discrete) want = torch::exp(want);
    ASSERT_TRUE(calls[k].est.defined()) << k;
    EXPECT_LE((calls[k].est - want).abs().max().item<double>(), tol) << "call " << k;
  }
}

TEST(SelfConditionSampling, FeedsThePreviousEstimateToACategoricalChain) {
  register_builtins();
  auto p = make_process({{"name", "uniform"}, {"K", 4}, {"steps", 0}, {"dtype", "float64"}});
  std::vector<ScCall> calls;
  std::vector<Tensor> states;
  auto gen = testing::seeded(1);
  auto f = self_condition_feedback(*p, recording_fn(calls, 4));
  make_sampler("ancestral")(*p, f, time_grid(*p, 12), {5, 6}, gen, {}, recording_hook(states));
  ASSERT_EQ(calls.size(), 12u);
  expect_feedback(*p, calls, states, 1e-12);  // the same float64 operations: rounding only
}

// gaussian-ve's network input is x_t / sqrt(alpha^2 + sigma^2): the estimate needs x_t back from it.
TEST(SelfConditionSampling, FeedsThePreviousEstimateToAGaussianChainThroughTheInputScaling) {
  register_builtins();
  auto p = make_process({{"name", "gaussian-ve"}, {"steps", 0}, {"parameterization", "eps"}});
  std::vector<ScCall> calls;
  std::vector<Tensor> states;
  auto gen = testing::seeded(2);
  auto f = self_condition_feedback(*p, recording_fn(calls, 0));
  make_sampler("ancestral")(*p, f, time_grid(*p, 10), {4, 3}, gen, {}, recording_hook(states));
  // The chain is float32: x_t comes back from the float32 input x_t c(t) by one division, off by a few ulp of |x_t|.
  double xmax = 0;
  for (const auto& s : states) xmax = std::max(xmax, s.abs().max().item<double>());
  expect_feedback(*p, calls, states, 4 * 1.2e-7 * xmax);
}

// Two passes at one (x_t, t): the first without gradient and with zeros, the second with its estimate; the
// gradient of the output is that of the second pass alone, with the estimate held constant.
TEST(SelfConditionSampling, TwoPassesFeedTheFirstEstimateWithoutItsGradient) {
  register_builtins();
  auto p = make_process({{"name", "absorbing"}, {"K", 3}, {"steps", 0}, {"dtype", "float64"}});
  auto w = torch::tensor({1.3}, torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true));
  std::vector<ScCall> calls;
  auto inner = recording_fn(calls, 3);
  SelfCondFn scaled = [&](const Tensor& x, const Tensor& t, const Tensor& est) { return w * inner(x, t, est); };
  auto x = torch::randint(0, 4, {3, 5}, testing::seeded(3)), t = torch::full({3}, 0.6, torch::kFloat64);
  auto out = self_condition_two_pass(*p, scaled)(x, t);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_FALSE(calls[0].grad);
  EXPECT_FALSE(calls[0].est.defined());
  EXPECT_TRUE(calls[1].grad);
  auto want = torch::exp(p->read_output(w.detach() * calls[0].out, x, t));
  EXPECT_LE((calls[1].est - want).abs().max().item<double>(), 1e-12);
  EXPECT_FALSE(calls[1].est.requires_grad());
  out.sum().backward();  // d/dw sum(w * inner(x, t, est)) = sum(inner(x, t, est)) with est a constant
  EXPECT_NEAR(w.grad().item<double>(), calls[1].out.sum().item<double>(), 1e-9);
}

TEST(SelfConditionSampling, FeedbackRefusesACallOnOtherRows) {
  register_builtins();
  auto p = make_process({{"name", "absorbing"}, {"K", 3}, {"steps", 0}});
  std::vector<ScCall> calls;
  auto f = self_condition_feedback(*p, recording_fn(calls, 3));
  auto t = torch::full({4}, 0.5, torch::kFloat64);
  f(torch::full({4, 2}, 3, torch::kLong), t);
  EXPECT_THROW(f(torch::full({2, 2}, 3, torch::kLong), t.narrow(0, 0, 2)), std::invalid_argument);
}

// A self-conditioned transformer: sampling_denoise_fn feeds back, and refuses a call on other rows than the last
// (its export: tests/sample/export_self_condition_test.cpp).
TEST(SelfConditionSampling, ModelWrapperFeedsBackOnTheSameRows) {
  register_builtins();
  auto p = make_process({{"name", "absorbing"}, {"K", 5}, {"steps", 0}});
  TransformerOptions o;
  o.vocab_size(6).out_dim(5).dim(16).depth(1).num_heads(2).cond_dim(8).dropout(0).self_condition(true);
  auto net = as_denoiser(Transformer(o));
  net->eval();
  auto x = torch::full({2, 4}, 5, torch::kLong);
  auto t = torch::full({2}, 0.9, torch::kFloat64);
  auto f = sampling_denoise_fn(*p, net);
  f(x, t);
  EXPECT_THROW(f(x.narrow(0, 0, 1), t.narrow(0, 0, 1)), std::invalid_argument);  // it holds an estimate of 2 rows
}

}  // namespace self_condition_sample
}  // namespace gsdiff
