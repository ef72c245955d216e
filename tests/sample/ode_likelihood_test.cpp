// PF-ODE likelihood against the closed-form density of Gaussian data under its exact score.
#include <gtest/gtest.h>

#include "sample/ode_likelihood.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

struct Setup {
  std::unique_ptr<GaussianProcess> g;
  torch::Tensor m, s;
  // Closed form: p_t = N(alpha_t m, alpha_t^2 s^2 + sigma_t^2) per dimension; log-density summed over dims.
  torch::Tensor log_pt(const torch::Tensor& x, double t) const {
    auto a = g->schedule().at(torch::full({1}, t, torch::kFloat64));
    auto mean = a.alpha * m, var = a.alpha * a.alpha * s * s + a.sigma * a.sigma;
    return (-0.5 * (x - mean).pow(2) / var - 0.5 * torch::log(2 * M_PI * var)).sum(1);
  }
};

Setup setup(const std::string& schedule) {
  nlohmann::json cfg = {{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", schedule}, {"parameterization", "eps"}};
  if (schedule == "linear-interpolant") cfg = {{"name", "gaussian-flow"}, {"steps", 0}};  // flow matching, velocity
  Setup u{testing::make_gauss(cfg),
          torch::tensor({0.5, -0.3, 0.0}, torch::kFloat64), torch::tensor({0.5, 0.2, 0.8}, torch::kFloat64)};
  return u;
}

// Exact divergence isolates the integrator: log p_{t0}(x0) = log p_1(x_1) + int div v, with p_1 the true
// marginal at t = 1 (not the N(0, I) prior, which differs from it by the prior-matching error). VP schedules with
// the eps reading and flow matching's straight path (gaussian-flow) with the velocity reading.
TEST(OdeLikelihood, ExactTraceMatchesTheClosedFormDensity) {
  for (const std::string sched : {"linear-logsnr", "cosine", "linear-interpolant"}) {
    auto u = setup(sched);
    auto gen = testing::seeded(1);
    auto x0 = u.m + u.s * at::randn({64, 3}, gen, torch::TensorOptions().dtype(torch::kFloat64));
    for (const std::string integ : {"rk4", "heun"}) {
      auto r = ode_nll(*u.g, testing::exact_gaussian_denoiser(*u.g, u.m, u.s), x0, gen,
                       OdeLikelihoodOptions().steps(integ == "rk4" ? 50 : 200).integrator(integ).trace("exact"));
      const double t0 = u.g->t_min();
      auto want = u.log_pt(x0, t0);
      auto got = u.log_pt(r.x1, 1.0) + r.delta_logp;
      EXPECT_LT((got - want).abs().max().item<double>(), integ == "rk4" ? 1e-4 : 2e-3) << sched << "/" << integ;
      // nll uses the N(0, I) prior at x_1.
      EXPECT_TRUE(torch::allclose(r.nll, -(r.prior_logp + r.delta_logp)));
      auto z = r.x1;
      EXPECT_TRUE(torch::allclose(r.prior_logp, (-0.5 * z * z - 0.5 * std::log(2 * M_PI)).sum(1)));
    }
  }
}

// Hutchinson: the Jacobian of this flow is diagonal, so Rademacher probes (eps_i^2 = 1) are exact; Gaussian
// probes held fixed along the path give sum_i eps_i^2 I_i with I_i = log(std_1,i / std_t0,i), variance
// 2 sum_i I_i^2 per example, and the mean over N examples lies within 5 standard errors.
TEST(OdeLikelihood, HutchinsonEstimatorsAreUnbiasedWithTheirVariance) {
  auto u = setup("linear-logsnr");
  auto gen = testing::seeded(2);
  const int64_t N = 512;
  auto x0 = u.m + u.s * at::randn({N, 3}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  auto f = testing::exact_gaussian_denoiser(*u.g, u.m, u.s);
  auto opts = OdeLikelihoodOptions().steps(20);
  auto exact = ode_nll(*u.g, f, x0, gen, opts.trace("exact"));
  auto rad = ode_nll(*u.g, f, x0, gen, opts.trace("rademacher"));
  EXPECT_LT((rad.delta_logp - exact.delta_logp).abs().max().item<double>(), 1e-9);
  auto gau = ode_nll(*u.g, f, x0, gen, opts.trace("gaussian"));
  auto a1 = u.g->schedule().at(torch::ones({1}, torch::kFloat64)), a0 = u.g->schedule().at(torch::zeros({1}, torch::kFloat64));
  auto I = 0.5 * torch::log((a1.alpha.pow(2) * u.s * u.s + a1.sigma.pow(2)) / (a0.alpha.pow(2) * u.s * u.s + a0.sigma.pow(2)));
  const double sd = std::sqrt(2.0 * I.pow(2).sum().item<double>());
  EXPECT_GT((gau.delta_logp - exact.delta_logp).abs().max().item<double>(), 1e-3);  // it is an estimate
  EXPECT_NEAR((gau.delta_logp - exact.delta_logp).mean().item<double>(), 0.0, testing::mc_tol(sd, N));
  EXPECT_NEAR((gau.delta_logp - exact.delta_logp).std().item<double>(), sd, 0.25 * sd);
}

TEST(OdeLikelihood, DequantisationConstant) {
  // x = (v + u) / 128 - 1: u = 1/2 gives DESIGN's (2v + 1) / 256 - 1; bits/dim adds log2(128) = 7.
  EXPECT_NEAR(dequantized_bits_per_dim(0.0, 3072), 7.0, 1e-12);
  EXPECT_NEAR(dequantized_bits_per_dim(3072 * std::log(2.0), 3072), 8.0, 1e-12);
  auto gen = testing::seeded(0);
  auto v = torch::tensor({0, 255}, torch::kUInt8);
  auto x = dequantize_uniform(v, gen);
  EXPECT_GE(x[0].item<float>(), -1.0f);
  EXPECT_LT(x[1].item<float>(), 1.0f);
  EXPECT_GT(x[1].item<float>(), 255.0f / 128.0f - 1.0f - 1e-6f);
}

}  // namespace
}  // namespace gsdiff
