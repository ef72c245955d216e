// Infilling with kept tokens (constraint_hook) under the exact denoiser of a joint law on 3 positions, K = 3.
#include <gtest/gtest.h>

#include <torch/special.h>

#include "core/categorical.h"
#include "core/registry.h"
#include "sample/constraint.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace gsdiff {
namespace constraint_discrete {

constexpr int64_t K = 3, L = 3, kKnownPos = 1, kKnownVal = 2;  // infill positions 0 and 2 given x0_1 = 2

std::unique_ptr<CategoricalProcess> make(const std::string& name) {
  register_builtins();
  auto p = make_process({{"name", name}, {"K", K}, {"steps", 0}, {"dtype", "float64"}, {"parameterization", "bayes"}});
  return std::unique_ptr<CategoricalProcess>(dynamic_cast<CategoricalProcess*>(p.release()));
}

// An arbitrary joint law p(x0_0, x0_1, x0_2) over 27 cells, far from a product (x0_0 and x0_2 depend on x0_1).
torch::Tensor joint() {
  auto w = torch::tensor({5., 1., 1., 2., 9., 1., 1., 1., 6., 1., 3., 8., 2., 1., 1., 7., 2., 1.,
                          1., 6., 2., 9., 1., 1., 1., 4., 12.}, torch::kFloat64);
  return w / w.sum();  // index j = 9 x0_0 + 3 x0_1 + x0_2
}

// One-hot of the 27 cells' values per position [27, L, K].
torch::Tensor cells() {
  auto j = torch::arange(27, torch::kLong);
  auto v = torch::stack({j.div(9, "floor"), j.div(3, "floor").remainder(3), j.remainder(3)}, 1);  // [27, L]
  return torch::one_hot(v, K).to(torch::kFloat64);
}

// The exact denoiser: p(x0_l = k | x_t) = sum over cells of p(x0) prod_l q(x_t,l | x0_l), marginalised, read
// back through the Bayes parameterisation (read_output multiplies by q(x_t | x0)), so the logits are
// log p(x0_l = k | x_t) - log q(x_t,l | x0_l = k) where q > 0.
// At t = 1 (alpha_1 = 0) a kept, unmasked token is off the forward process's support and q(x_t | x0) vanishes
// for every x0; the denoiser is taken as its limit t -> 1 (likelihoods at 1 - 1e-9), where an unmasked token is
// clean data, as a trained network reads it.
DenoiseFn exact_joint_denoiser(const CategoricalProcess& p) {
  return [&p](const torch::Tensor& xt, const torch::Tensor& t) {
    auto lik = p.likelihood_of_xt(xt, t.to(torch::kFloat64).clamp_max(1.0 - 1e-9)).to(torch::kFloat64);  // [B, L, K]
    auto loglik = torch::log(lik.clamp_min(1e-300));
    auto lj = torch::einsum("blk,jlk->bj", {loglik, cells()}) + torch::log(joint());  // log p(x0 = j, x_t) [B, 27]
    auto post = torch::softmax(lj, 1);
    auto marg = torch::einsum("bj,jlk->blk", {post, cells()});  // [B, L, K]
    return torch::where(lik > 0, torch::log(marg.clamp_min(1e-300)) - loglik, torch::zeros_like(lik));
  };
}

// The true conditional law of (x0_0, x0_2) given x0_1 = kKnownVal [K * K].
torch::Tensor true_conditional() { return joint().reshape({K, K, K}).select(1, kKnownVal).reshape({-1}) / joint().reshape({K, K, K}).select(1, kKnownVal).sum(); }

Constraint infill() {
  auto known = torch::zeros({L}, torch::kBool), values = torch::zeros({L}, torch::kLong);
  known[kKnownPos] = true;
  values[kKnownPos] = kKnownVal;
  return {known, values};
}

// The exact law of the ancestral chain with the kept token, by enumeration over the V^2 states of the free
// positions (an independent computation: the process's reverse_probs, not the sampler): start from the prior, then
// at each step pi <- pi M with M[(a, b), (c, d)] = p(x_s,0 = c | x_t) p(x_s,2 = d | x_t), x_t = (a, kKnownVal, b).
// With `resample` RePaint rounds each step continues pi <- pi (Q_{t|s} x Q_{t|s}) M on the free pair.
torch::Tensor ancestral_law(const CategoricalProcess& p, const std::vector<double>& grid, int64_t resample = 0) {
  const int64_t V = p.num_states();
  auto st = torch::arange(V * V, torch::kLong);
  auto xt = torch::stack({st.div(V, "floor"), torch::full({V * V}, kKnownVal, torch::kLong), st.remainder(V)}, 1);  // [V^2, L]
  auto prior = p.prior_probs().to(torch::kFloat64);
  auto pi = torch::outer(prior, prior).reshape({-1});  // [V^2]
  auto f = exact_joint_denoiser(p);
  for (size_t k = 0; k + 1 < grid.size(); ++k) {
    auto t = torch::full({V * V}, grid[k], torch::kFloat64), s = torch::full({V * V}, grid[k + 1], torch::kFloat64);
    auto lp = p.read_output(f(p.network_input(xt, t), t), xt, t);
    auto r = p.reverse_probs(xt, s, t, lp).to(torch::kFloat64);  // [V^2, L, V]
    auto M = torch::einsum("ic,id->icd", {r.select(1, 0), r.select(1, 2)}).reshape({V * V, V * V});
    M = torch::where(pi.unsqueeze(1) > 0, M, torch::zeros_like(M));  // unreachable states (absorbing: unmasked at t = 1) are undefined
    pi = torch::matmul(pi, M);
    if (grid[k + 1] <= 0.0) continue;
    auto Q = p.qstep(s.narrow(0, 0, 1), t.narrow(0, 0, 1))[0].to(torch::kFloat64);  // [V, V]
    for (int64_t r = 0; r < resample; ++r) pi = torch::matmul(torch::matmul(pi, torch::kron(Q, Q)), M);
  }
  return pi.reshape({V, V}).narrow(0, 0, K).narrow(1, 0, K).reshape({-1});  // mass off the data is lost (tested)
}

double tv(const torch::Tensor& a, const torch::Tensor& b) { return 0.5 * (a - b).abs().sum().item<double>(); }

// For absorbing the kept-token chain's law tends to the true conditional: an unmasked token is clean data, so the
// exact p(x0 | x_t) with x0_1 unmasked is p(x0 | x0_1, x_t), and each free position runs the exact reverse chain of
// the conditioned data; what is left is the reverse step's factorisation over positions (two free positions
// unmasked in one step are drawn independently), first order in the step. For uniform a kept token reads as a
// noisy one (p(x0_1 = kKnownVal | x_t) < 1 at t > 0): the law stays biased however fine the grid (measured below),
// though far closer to the conditional than the unconditional law is.
TEST(ConstraintDiscrete, EnumeratedLawTendsToTheConditionalForAbsorbing) {
  const auto cond = true_conditional();
  auto uncond = joint().reshape({K, K, K}).sum(1).reshape({-1});
  double fine_bias[2];
  int i = 0;
  for (const std::string name : {"absorbing", "uniform"}) {
    auto p = make(name);
    double bias[3];
    int j = 0;
    for (int64_t steps : {50, 200, 800}) {
      auto law = ancestral_law(*p, time_grid(*p, steps));
      EXPECT_NEAR(law.sum().item<double>(), 1.0, 1e-9) << name << ": mass left on the mask";
      bias[j++] = tv(law, cond);
    }
    std::cout << name << ": TV(kept-token law, true conditional) at 50 / 200 / 800 steps = " << bias[0] << " / "
              << bias[1] << " / " << bias[2] << "; TV(unconditional, conditional) = " << tv(uncond, cond) << "\n";
    EXPECT_LT(bias[2], 0.5 * tv(uncond, cond)) << name << ": conditioning barely moved the law";
    if (name == "absorbing") {
      EXPECT_LT(bias[1], bias[0] / 3.0) << "not first order in the step";
      EXPECT_LT(bias[2], bias[1] / 3.0) << "not first order in the step";
    }
    fine_bias[i++] = bias[2];
  }
  EXPECT_GT(fine_bias[1], 20.0 * fine_bias[0]) << "uniform's kept-token bias is expected to stay";
}

// RePaint rounds on the discrete chain (re-noise the free pair by Q_{t|s}, keep the token, redo the step) shrink
// uniform's bias: measured TV 0.080 / 0.053 / 0.035 at 0 / 1 / 4 rounds (absorbing: 0.0054 / 0.0036 / 0.0031).
TEST(ConstraintDiscrete, RePaintRoundsShrinkUniformsBias) {
  const auto cond = true_conditional();
  auto p = make("uniform");
  double prev = 1.0;
  for (int64_t R : {0, 1, 4}) {
    const double bias = tv(ancestral_law(*p, time_grid(*p, 50), R), cond);
    std::cout << "uniform, 50 steps, resample " << R << ": TV to the conditional = " << bias << "\n";
    EXPECT_LT(bias, 0.8 * prev) << "resample " << R;
    prev = bias;
  }
}

struct Case {
  std::string process, sampler;
  int64_t steps;
  double slack;  // TV slack for the first-order CTMC steps (tau-leaping, euler); 0 for the exact-step samplers
  int64_t resample = 0;  // RePaint rounds (the enumerated law has them too)
};

class ConstraintDiscreteSampling : public ::testing::TestWithParam<Case> {};

// Draws through make_sampler + constraint_hook (what `gsdiff sample --infill` runs). The known token is kept in
// every draw; the free pair follows the enumerated law of the ancestral chain at 50 steps: chi-square over the 9 cells with p-value > 1e-4 for exact-step samplers (a false alarm 1 in 10^4),
// else TV within 5 standard errors plus the discretisation slack (measured TV to the law at these steps: < slack/3).
TEST_P(ConstraintDiscreteSampling, FollowsTheChainLaw) {
  const auto c = GetParam();
  auto p = make(c.process);
  const int64_t N = 10000;
  auto gen = testing::seeded(3);
  SamplerOptions so;
  so.denoiser_uses_t = false;  // absorbing's exact p(x0 | x_t) does not depend on t
  auto hook = constraint_hook(*p, infill(), ConstraintOptions().resample(c.resample));
  auto x = make_sampler(c.sampler, so)(*p, exact_joint_denoiser(*p), time_grid(*p, c.steps), {N, L}, gen, {}, hook);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{N, L}));
  EXPECT_TRUE((x.select(1, kKnownPos) == kKnownVal).all().item<bool>()) << "the known token moved";
  ASSERT_TRUE(((x >= 0) & (x < K)).all().item<bool>()) << "mask or out-of-range states left";
  auto idx = x.select(1, 0) * K + x.select(1, 2);
  auto counts = torch::bincount(idx, {}, K * K).to(torch::kFloat64);
  // The exact-step samplers (ancestral, tweedie = the exact reverse step, mdlm-cached) share the chain's law.
  auto law = ancestral_law(*p, time_grid(*p, 50), c.resample);
  if (c.slack == 0.0) {
    auto expect = law * double(N);
    const double chi2 = ((counts - expect).square() / expect).sum().item<double>();
    const double pval = torch::special::gammaincc(torch::tensor((K * K - 1) / 2.0), torch::tensor(chi2 / 2)).item<double>();
    EXPECT_GT(pval, 1e-4) << c.process << "/" << c.sampler << ": chi2 = " << chi2;
  } else {
    const double tol = 0.5 * 5.0 * torch::sqrt(law * (1 - law) / double(N)).sum().item<double>();
    EXPECT_LT(tv(counts / double(N), law), tol + c.slack) << c.process << "/" << c.sampler;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Samplers, ConstraintDiscreteSampling,
    ::testing::Values(Case{"absorbing", "ancestral", 50, 0.0}, Case{"absorbing", "tweedie", 50, 0.0},
                      Case{"absorbing", "mdlm-cached", 50, 0.0}, Case{"absorbing", "tau-leaping", 100, 0.02},
                      Case{"absorbing", "euler", 100, 0.02}, Case{"uniform", "ancestral", 50, 0.0},
                      Case{"uniform", "tweedie", 50, 0.0}, Case{"uniform", "tau-leaping", 200, 0.03},
                      Case{"uniform", "euler", 200, 0.03}, Case{"uniform", "ancestral", 50, 0.0, 4},
                      Case{"absorbing", "tweedie", 50, 0.0, 4}),
    [](const auto& info) {
      auto n = info.param.process + "_" + info.param.sampler +
               (info.param.resample ? "_resample" + std::to_string(info.param.resample) : "");
      for (auto& ch : n)
        if (!isalnum(ch)) ch = '_';
      return n;
    });

// RePaint's resampling on a discrete chain re-noises by Q_{t|s} and redoes the step; the token stays kept and the
// forward draw follows Q_{t|s} (checked against the dense kernel row).
TEST(ConstraintDiscrete, ForwardStepFollowsTheKernelRow) {
  auto p = make("uniform");
  const int64_t N = 40000;
  auto gen = testing::seeded(9);
  auto xs = torch::full({N, 1}, 1, torch::kLong);
  auto s = torch::full({N}, 0.2, torch::kFloat64), t = torch::full({N}, 0.5, torch::kFloat64);
  auto xt = sample_forward_step(*p, xs, s, t, gen);
  auto row = p->qstep(s.narrow(0, 0, 1), t.narrow(0, 0, 1))[0][1].to(torch::kFloat64);  // [V]
  auto emp = torch::bincount(xt.reshape({-1}), {}, K).to(torch::kFloat64) / double(N);
  EXPECT_LT(tv(emp, row), 0.5 * 5.0 * torch::sqrt(row * (1 - row) / double(N)).sum().item<double>());
  auto x = make_sampler("ancestral")(*p, exact_joint_denoiser(*p), time_grid(*p, 10), {64, L}, gen, {},
                                     constraint_hook(*p, infill(), ConstraintOptions().resample(2)));
  EXPECT_TRUE((x.select(1, kKnownPos) == kKnownVal).all().item<bool>());
}

// A constraint that does not fit is refused with what was expected.
TEST(ConstraintDiscrete, BadConstraintsAreNamed) {
  auto p = make("absorbing");
  auto c = infill();
  auto expect_error = [&](const Constraint& bad, const std::string& what) {
    try {
      check_constraint(*p, bad, {L});
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error({c.known, c.values + 5}, "known tokens must lie in [0, 3)");
  expect_error({torch::zeros({L + 1}, torch::kBool), torch::zeros({L + 1}, torch::kLong)}, "example shape [3]");
  expect_error({c.known.to(torch::kLong), c.values}, "must be bool");
  expect_error({c.known, c.values.to(torch::kFloat32)}, "takes token values");
}

}  // namespace constraint_discrete
}  // namespace gsdiff
