// Discrete flow matching's process: its rates generate the mixture path, and its bound through negative_elbo.
#include <gtest/gtest.h>

#include <cmath>

#include "core/discrete_flow.h"
#include "core/options.h"
#include "core/elbo.h"
#include "discrete_test_util.h"
#include "test_util.h"

namespace {

using gsdiff::DiscreteFlowProcess;
using J = nlohmann::json;
using torch::Tensor;

std::unique_ptr<DiscreteFlowProcess> make_dfm(const std::string& noise, double eta, const std::string& schedule = "linear",
                                              int64_t K = 4) {
  auto p = gsdiff::testing::make_cat({{"name", "discrete-flow"}, {"noise", noise}, {"eta", eta}, {"K", K},
                                      {"schedule", schedule}});
  return std::unique_ptr<DiscreteFlowProcess>(dynamic_cast<DiscreteFlowProcess*>(p.release()));
}

// d/d(-t) of a law p [V] under the rates R [V, V] (row = from): inflow - outflow, the master equation.
Tensor master_flux(const Tensor& p, const Tensor& R) {
  auto off = R * (1.0 - torch::eye(R.size(0), R.options()));
  return (p.unsqueeze(1) * off).sum(0) - p * off.sum(1);
}

// Every state as x_t [V], x0 repeated [V].
Tensor all_states(int64_t V) { return torch::arange(V, torch::kLong); }

// The conditional rates generate the conditional path: -d/dt p_t(. | x0) (central difference, h = 1e-5: error
// ~ h^2 p''' + 1e-16 / h, below 1e-9 here) equals the master equation's flux under R(., . | x0), for every x0, both
// noises, eta = 0 (the minimal rate), 0.7 and 3 (detailed-balance parts of any size), linear and cosine kappa.
TEST(DiscreteFlow, ConditionalRatesGenerateTheMixturePath) {
  for (const std::string noise : {"mask", "uniform"})
    for (double eta : {0.0, 0.7, 3.0})
      for (const std::string sched : {"linear", "cosine"}) {
        auto p = make_dfm(noise, eta, sched);
        const int64_t V = p->num_states(), K = p->num_categories();
        for (int64_t x0 = 0; x0 < K; ++x0)
          for (double t : {0.1, 0.4, 0.8}) {
            auto x0v = torch::full({V}, x0, torch::kLong);
            auto tv = torch::full({V}, t, torch::kFloat64);
            auto R = p->conditional_rates(x0v, all_states(V), tv);  // [V, V]
            auto pt = [&](double s) { return p->marginal_probs(x0v.narrow(0, 0, 1), torch::full({1}, s, torch::kFloat64))[0]; };
            const double h = 1e-5;
            auto dp = -(pt(t + h) - pt(t - h)) / (2 * h);
            EXPECT_TRUE(torch::allclose(master_flux(pt(t), R), dp, 0, 1e-7))
                << noise << " eta " << eta << " " << sched << " x0 " << x0 << " t " << t << "\n"
                << master_flux(pt(t), R) << dp;
          }
      }
}

// The model's rates with the exact posterior p(x0 | x_t) (computed here by Bayes from the path's Qbar) generate the
// data's marginal path p_t = sum_x0 p(x0) p_t(. | x0) (Campbell et al. 2024, prop. 3.1), at the same tolerance.
TEST(DiscreteFlow, PosteriorMeanRatesGenerateTheMarginalPath) {
  auto px0 = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64);
  for (const std::string noise : {"mask", "uniform"})
    for (double eta : {0.0, 1.5}) {
      auto p = make_dfm(noise, eta);
      const int64_t V = p->num_states();
      for (double t : {0.2, 0.5, 0.9}) {
        auto post = gsdiff::testing::exact_denoiser(*p, px0, t);  // [V, K]
        auto R = p->reverse_rates(all_states(V), torch::full({V}, t, torch::kFloat64), torch::log(post));  // [V, V]
        auto marg = [&](double s) { return (px0.unsqueeze(1) * gsdiff::testing::Qbar(*p, s).narrow(0, 0, 4)).sum(0); };
        const double h = 1e-5;
        auto dp = -(marg(t + h) - marg(t - h)) / (2 * h);
        EXPECT_TRUE(torch::allclose(master_flux(marg(t), R), dp, 0, 1e-7)) << noise << " eta " << eta << " t " << t;
      }
    }
}

class DiscreteFlowElbo : public gsdiff::testing::Seeded {};

// The mask path's bound with the exact denoiser, in closed form: a masked position unmasks at rate
// c = (a' + eta a) / (1 - a) to x0 and the exact p(x0 | M) = p(x0), so the integrand is c (1 - a) (-log p(x0)) in
// expectation and -ELBO = -log p(x0) (1 + eta int_0^1 kappa_t dt): int kappa = 1/2 (linear), 1 - 2/pi (cosine);
// at eta = 0 the identity, above it the path-space gap grows linearly in eta. Through negative_elbo (what
// `gsdiff eval` runs), exact quadrature and Monte Carlo, 4000 x 3 positions: mean residual within 5 standard errors
// plus the reported quadrature error.
TEST_F(DiscreteFlowElbo, MaskPathBoundIsMinusLogLikelihoodTimesOnePlusEtaIntKappa) {
  const int64_t B = 4000, L = 3, K = 4;
  auto px0 = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64);
  auto x0 = at::multinomial(px0, B * L, true, gen).reshape({B, L});
  gsdiff::DenoiseFn f = [&](const Tensor& xt, const Tensor&) { return torch::log(px0).expand({xt.size(0), L, K}); };
  for (const std::string sched : {"linear", "cosine"})
    for (double eta : {0.0, 0.5, 2.0}) {
      auto p = make_dfm("mask", eta, sched);
      const double int_kappa = sched == "linear" ? 0.5 : 1.0 - 2.0 / M_PI;
      auto want = (-torch::log(px0)).index({x0}).sum(1) * (1.0 + eta * int_kappa);  // [B]
      for (bool exact : {true, false}) {
        auto terms = gsdiff::negative_elbo(*p, f, x0, gen, gsdiff::ElboOptions().exact(exact).time_samples(2));
        auto resid = terms.total() - want;
        const double se = resid.std().item<double>() / std::sqrt(double(B));
        EXPECT_NEAR(resid.mean().item<double>(), 0.0, 5 * se + terms.quadrature_error + 1e-9)
            << sched << " eta " << eta << (exact ? " exact" : " monte-carlo");
      }
    }
}

// At eta = 0 the mask path is the absorbing process (MDLM): their integrands agree term by term for any network,
// here random log p(x0 | x_t) (Bayes-restricted through read_output), at random x_t and t.
TEST_F(DiscreteFlowElbo, MaskPathAtEtaZeroIsTheAbsorbingBound) {
  auto dfm = make_dfm("mask", 0.0, "cosine", 5);
  auto abs = gsdiff::testing::make_cat({{"name", "absorbing"}, {"K", 5}, {"schedule", "cosine"}});
  const int64_t B = 64, L = 6;
  auto x0 = torch::randint(0, 5, {B, L}, gen);
  auto t = torch::rand({B}, gen, torch::kFloat64) * 0.98 + 0.01;
  auto xt = dfm->sample_xt(x0, t, gen);
  auto logp = dfm->read_output(torch::randn({B, L, 5}, gen, torch::kFloat64), xt, t);
  auto a = abs->elbo_integrand(x0, xt, t, logp), d = dfm->elbo_integrand(x0, xt, t, logp);
  EXPECT_TRUE(torch::allclose(a, d, 1e-12, 1e-12)) << (a - d).abs().max();
  EXPECT_GT(a.sum().item<double>(), 1.0);  // some masked positions contribute
}

// The uniform path's bound with the exact denoiser lies above -log p(x0): its conditional processes (one jump
// straight to x0 at eta = 0) mix into a process that remembers whether a position has jumped, which no Markov model
// can, so the gap is strictly positive (asserted: > 5 standard errors + the quadrature error; measured 0.57 +- 0.05
// nats at eta 0 and 5.3 +- 0.2 at eta 1 per example of 2 positions, against 2.56 nats of -log p), and the exact
// posterior's rates are still the best Markov rates (the bound is minimised pointwise by R_th = E[R | x_t]): a
// perturbed denoiser, on the same x_t and t (same seed), raises it by more than 5 standard errors of the paired
// difference.
TEST_F(DiscreteFlowElbo, UniformPathBoundExceedsTheLikelihoodAndTheExactDenoiserMinimisesIt) {
  const int64_t B = 3000, L = 2, K = 4;
  auto px0 = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64);
  auto x0 = at::multinomial(px0, B * L, true, gen).reshape({B, L});
  gsdiff::DenoiseFn f = [&](const Tensor& xt, const Tensor&) { return torch::log(px0).expand({xt.size(0), L, K}); };
  auto bent = torch::log(torch::tensor({0.25, 0.15, 0.35, 0.25}, torch::kFloat64));
  gsdiff::DenoiseFn g = [&](const Tensor& xt, const Tensor&) { return bent.expand({xt.size(0), L, K}); };
  auto H = (-torch::log(px0)).index({x0}).sum(1);  // [B]
  for (double eta : {0.0, 1.0}) {
    auto p = make_dfm("uniform", eta);
    auto mismatch = torch::zeros({B}, torch::kFloat64);  // linear kappa: p_1 = uniform = the prior
    auto opts = gsdiff::ElboOptions().exact(true);
    auto g1 = gsdiff::testing::seeded(5), g2 = gsdiff::testing::seeded(5);
    auto exact = gsdiff::negative_elbo(*p, f, x0, g1, opts), other = gsdiff::negative_elbo(*p, g, x0, g2, opts);
    auto gap = exact.total() - H - mismatch;
    const double se = gap.std().item<double>() / std::sqrt(double(B));
    std::cout << "uniform path, eta " << eta << ": -ELBO - (-log p) = " << gap.mean().item<double>() << " +- " << se
              << " nats per example of " << L << " positions\n";
    EXPECT_GT(gap.mean().item<double>(), 5 * se + exact.quadrature_error) << "eta " << eta;
    auto d = other.total() - exact.total();
    EXPECT_GT(d.mean().item<double>(), 5 * d.std().item<double>() / std::sqrt(double(B)) + exact.quadrature_error +
                                           other.quadrature_error)
        << "eta " << eta;
  }
}

TEST(DiscreteFlow, OptionsAreCheckedAndListed) {
  gsdiff::register_builtins();
  EXPECT_THROW(gsdiff::make_process({{"name", "discrete-flow"}, {"noise", "gauss"}}), gsdiff::ConfigError);
  EXPECT_THROW(gsdiff::make_process({{"name", "discrete-flow"}, {"eta", -1}}), gsdiff::ConfigError);
  try {
    gsdiff::make_process({{"name", "discrete-flow"}, {"steps", 100}});
    FAIL() << "no error";
  } catch (const gsdiff::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'steps'"), std::string::npos) << e.what();
  }
  auto p = make_dfm("uniform", 0.25, "cosine");
  auto j = p->options_json();
  EXPECT_EQ(j["noise"], "uniform");
  EXPECT_EQ(j["eta"], 0.25);
  auto q = gsdiff::make_process(j);  // the options round-trip through the registry
  EXPECT_EQ(q->options_json(), j);
  EXPECT_EQ(make_dfm("mask", 0)->num_states(), 5);
}

}  // namespace
