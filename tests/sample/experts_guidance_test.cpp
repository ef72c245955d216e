// Expert switching (routing, combined bound = per-side sum of expert terms) and classifier-free guidance.
#include <gtest/gtest.h>

#include "core/mixture_kernels.h"
#include "sample/guidance.h"
#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

using torch::Tensor;

// Two fixed closed-form "experts" with logits over K = 4 that depend on x_t and t differently.
Tensor kgrid(const Tensor& x) { return torch::arange(4, torch::kFloat64).view({1, 1, 4}).expand({x.size(0), x.size(1), 4}); }
Tensor high_logits(const Tensor& x, const Tensor& t) {
  return torch::cos(kgrid(x) + x.to(torch::kFloat64).unsqueeze(-1) + 5.0 * t.view({-1, 1, 1}));
}
Tensor low_logits(const Tensor& x, const Tensor& t) {
  return 1.5 * torch::sin(2.0 * kgrid(x) - x.to(torch::kFloat64).unsqueeze(-1) + t.view({-1, 1, 1}));
}

struct Call {
  Tensor x, t;
};

TEST(ExpertSwitching, RoutesByTimeWithOneCallWhenTheBatchSharesASide) {
  int hi = 0, lo = 0;
  auto h = [&](const Tensor& x, const Tensor& t) { ++hi; return high_logits(x, t); };
  auto l = [&](const Tensor& x, const Tensor& t) { ++lo; return low_logits(x, t); };
  auto f = switch_experts(h, l, 0.5);
  auto x = torch::randint(0, 4, {6, 3}, torch::kLong);
  EXPECT_TRUE(torch::equal(f(x, torch::full({6}, 0.7, torch::kFloat64)), high_logits(x, torch::full({6}, 0.7, torch::kFloat64))));
  EXPECT_EQ(hi, 1);
  EXPECT_EQ(lo, 0);
  EXPECT_TRUE(torch::equal(f(x, torch::full({6}, 0.5, torch::kFloat64)), low_logits(x, torch::full({6}, 0.5, torch::kFloat64))));
  EXPECT_EQ(lo, 1);  // t = tau goes to the low-noise expert
  auto t = torch::tensor({0.1, 0.9, 0.2, 0.8, 0.6, 0.4}, torch::kFloat64);
  auto out = f(x, t);
  auto want = torch::where((t > 0.5).view({-1, 1, 1}), high_logits(x, t), low_logits(x, t));
  EXPECT_TRUE(torch::allclose(out, want, 0, 1e-15));
  EXPECT_EQ(hi, 2);
  EXPECT_EQ(lo, 2);
}

// negative_elbo of the switched model = the sum, over steps, of each expert's own terms on its side of tau,
// evaluated at the very x_t the bound drew (recorded here); with exact time (all T terms) and Monte Carlo
// (per-example steps, so batches mix both experts).
TEST(ExpertSwitching, CombinedBoundIsTheSumOfEachExpertsTermsSplitAtTau) {
  register_builtins();
  auto p = make_process({{"name", "uniform"}, {"K", 4}, {"steps", 8}, {"dtype", "float64"}});
  const double tau = 0.45;
  auto gen0 = testing::seeded(1);
  auto x0 = at::randint(0, 4, {32, 3}, gen0, torch::TensorOptions().dtype(torch::kLong));
  for (bool exact : {true, false}) {
    std::vector<Call> calls;
    DenoiseFn combined = switch_experts(high_logits, low_logits, tau);
    auto recorder = [&](const Tensor& x, const Tensor& t) {
      calls.push_back({x.clone(), t.clone()});
      return combined(x, t);
    };
    auto gen = testing::seeded(2);
    auto opts = ElboOptions().exact(exact).time_samples(exact ? 1 : 4);
    auto terms = negative_elbo(*p, recorder, x0, gen, opts);
    ASSERT_EQ(calls.size(), exact ? 8u : 5u);  // reconstruction + (T - 1) steps, or + 4 Monte-Carlo draws
    auto ref = torch::zeros({32}, torch::kFloat64), all_high = torch::zeros({32}, torch::kFloat64);
    bool mixed = false;
    for (size_t c = 0; c < calls.size(); ++c) {
      auto xt = calls[c].x, t = calls[c].t;
      auto side = per_example(t > tau, xt, 1);
      auto lp_h = p->read_output(high_logits(xt, t), xt, t), lp_l = p->read_output(low_logits(xt, t), xt, t);
      auto lp = torch::where(side, lp_h, lp_l);
      mixed = mixed || ((t > tau).any().item<bool>() && (t <= tau).any().item<bool>());
      if (c == 0) {  // reconstruction at t_1 = 1/8 <= tau: the low-noise expert
        ref += sum_dims(p->reconstruction(x0, xt, t, lp));
        all_high += sum_dims(p->reconstruction(x0, xt, t, lp_h));
        continue;
      }
      auto s = t - 1.0 / 8.0;
      const double wgt = exact ? 1.0 : 7.0 / 4.0;
      ref += wgt * sum_dims(p->step_kl(x0, xt, s, t, lp));
      all_high += wgt * sum_dims(p->step_kl(x0, xt, s, t, lp_h));
    }
    auto got = terms.diffusion + terms.reconstruction;
    EXPECT_TRUE(torch::allclose(got, ref, 1e-10, 1e-12)) << "exact=" << exact;
    EXPECT_GT((got - all_high).abs().max().item<double>(), 1e-3) << "the split must matter";
    if (!exact) {
      EXPECT_TRUE(mixed) << "Monte-Carlo batches should mix both experts";
    }
  }
}

TEST(Guidance, ContinuousExtrapolatesTheRawOutput) {
  auto c = [](const Tensor& x, const Tensor& t) { return x * 2.0; };
  auto u = [](const Tensor& x, const Tensor& t) { return x + 1.0; };
  auto x = torch::randn({3, 2}), t = torch::rand({3});
  EXPECT_TRUE(torch::allclose(classifier_free_guidance(c, u, 0.0, Space::Continuous)(x, t), 2.0 * x));
  EXPECT_TRUE(torch::allclose(classifier_free_guidance(c, u, 1.5, Space::Continuous)(x, t), 2.5 * 2.0 * x - 1.5 * (x + 1.0)));
}

// With exact denoisers of N(m_c, s^2) and N(m_u, s^2), guided x0-prediction is the exact denoiser of
// N(m_g, s^2), m_g = (1 + w) m_c - w m_u, so guided DDIM transports N(0, 1) to N(m_g (1 - s alpha_1 / std_1),
// s^2 / std_1^2) (the PF-ODE flow of the exact model started from N(0, 1) instead of p_1; see
// gaussian_samplers_test.cpp).
TEST(Guidance, GuidedDdimSamplesTheExtrapolatedGaussian) {
  auto g = testing::make_gauss({{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", "linear-logsnr"}, {"parameterization", "x0"}});
  auto s = torch::full({2}, 0.3, torch::kFloat64);
  auto mc = torch::tensor({0.4, -0.2}, torch::kFloat64), mu = torch::tensor({0.1, 0.1}, torch::kFloat64);
  const double w = 2.0;
  auto f = classifier_free_guidance(testing::exact_gaussian_denoiser(*g, mc, s), testing::exact_gaussian_denoiser(*g, mu, s), w,
                                    Space::Continuous);
  auto gen = testing::seeded(4);
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  const int64_t N = 8000;
  auto x = make_sampler("ddim", o)(*g, f, time_grid(*g, 100), {N, 2}, gen, {});
  auto v1 = g->schedule().at(torch::ones({1}, torch::kFloat64));
  auto std1 = torch::sqrt(v1.alpha * v1.alpha * 0.09 + v1.sigma * v1.sigma);
  auto want = ((1 + w) * mc - w * mu) * (1 - 0.3 * v1.alpha / std1);  // m_g = (1.0, -0.8)
  for (int d = 0; d < 2; ++d)
    EXPECT_NEAR(x.mean(0)[d].item<double>(), want[d].item<double>(), testing::mc_tol(0.3, N) + 0.006);
}

// Discrete guidance: read_output of the combined logits is normalise(p_c^(1+w) / p_u^w) over reachable x0.
TEST(Guidance, DiscreteIsAPowerRatioOfTheTwoLaws) {
  register_builtins();
  auto p = make_process({{"name", "absorbing"}, {"K", 4}, {"steps", 0}, {"dtype", "float64"}});
  auto x = torch::tensor({{4, 1, 4}, {2, 4, 0}}, torch::kLong);  // 4 = mask
  auto t = torch::full({2}, 0.5, torch::kFloat64);
  const double w = 0.7;
  auto lp = p->read_output(classifier_free_guidance(high_logits, low_logits, w, Space::Discrete)(x, t), x, t);
  auto pc = torch::softmax(high_logits(x, t), -1), pu = torch::softmax(low_logits(x, t), -1);
  auto want = torch::pow(pc, 1 + w) / torch::pow(pu, w);
  want = want / want.sum(-1, true);
  auto probs = torch::exp(lp);
  EXPECT_TRUE(torch::allclose(probs[0][0], want[0][0], 1e-9, 1e-12));  // masked: the guided law
  EXPECT_NEAR(probs[0][1][1].item<double>(), 1.0, 1e-12);              // unmasked: carried over
  EXPECT_NEAR(probs[1][2][0].item<double>(), 1.0, 1e-12);
  EXPECT_TRUE(torch::allclose(probs.sum(-1), torch::ones({2, 3}, torch::kFloat64)));
}

}  // namespace
}  // namespace gsdiff
