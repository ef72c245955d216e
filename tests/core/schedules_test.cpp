// Schedules: derivatives equal finite differences; VP identity; SDE coefficients reproduce sigma^2.
#include <gtest/gtest.h>

#include "core/schedules.h"

using namespace gsdiff;

namespace {
std::vector<std::shared_ptr<GaussianSchedule>> all_schedules() {
  return {linear_beta_schedule(), cosine_schedule(), linear_logsnr_schedule(), ve_geometric_schedule(), subvp_schedule()};
}
}  // namespace

TEST(Schedules, DerivativesMatchFiniteDifferences) {
  auto t = torch::linspace(0.05, 0.95, 19, torch::kFloat64);
  const double h = 1e-6;
  for (auto& s : all_schedules()) {
    auto v = s->at(t), vp = s->at(t + h), vm = s->at(t - h);
    auto fd_lam = (vp.logsnr - vm.logsnr) / (2 * h);
    auto fd_la = (torch::log(vp.alpha) - torch::log(vm.alpha)) / (2 * h);
    auto fd_s2 = (vp.sigma.square() - vm.sigma.square()) / (2 * h);
    EXPECT_TRUE(torch::allclose(v.dlogsnr, fd_lam, 1e-5, 1e-6)) << s->name();
    EXPECT_TRUE(torch::allclose(v.dlog_alpha, fd_la, 1e-5, 1e-6)) << s->name();
    EXPECT_TRUE(torch::allclose(v.dsigma2, fd_s2, 1e-5, 1e-6)) << s->name();
    // logsnr is log(alpha^2 / sigma^2) and decreases in t.
    EXPECT_TRUE(torch::allclose(v.logsnr, torch::log(v.alpha.square() / v.sigma.square()), 1e-9, 1e-9)) << s->name();
    EXPECT_TRUE((v.dlogsnr < 0).all().item<bool>()) << s->name();
  }
}

TEST(Schedules, AlphaSigmaEqualsAtBitForBit) {
  // The fast path of x_t / network_input / read_output must give exactly at()'s alpha and sigma,
  // for float32 times (cast inside) as well as float64 ones.
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto t = torch::rand({64}, torch::TensorOptions().dtype(dtype)).clamp_min(1e-4);
    for (auto& s : all_schedules()) {
      auto v = s->at(t);
      auto [alpha, sigma] = s->alpha_sigma(t);
      EXPECT_TRUE(torch::equal(alpha, v.alpha)) << s->name();
      EXPECT_TRUE(torch::equal(sigma, v.sigma)) << s->name();
    }
  }
}

TEST(Schedules, VariancePreservingFamiliesHaveUnitTotalVariance) {
  auto t = torch::linspace(0.0, 1.0, 11, torch::kFloat64);
  for (auto& s : {linear_beta_schedule(), cosine_schedule(), linear_logsnr_schedule()}) {
    EXPECT_TRUE(s->variance_preserving()) << s->name();  // network_input is x_t itself
    auto v = s->at(t.clamp_min(1e-4));
    EXPECT_TRUE(torch::allclose(v.alpha.square() + v.sigma.square(), torch::ones_like(t), 1e-12, 1e-12)) << s->name();
  }
}

TEST(Schedules, OnlyVpFamiliesClaimVariancePreserving) {
  EXPECT_FALSE(ve_geometric_schedule()->variance_preserving());
  EXPECT_FALSE(subvp_schedule()->variance_preserving());  // alpha^2 + sigma^2 < 1 for t > 0
}

TEST(Schedules, DdpmLinearBetaEndpoints) {
  // Continuous-time DDPM: alpha^2(1) = exp(-(0.1 + 19.9 / 2)) = exp(-10.05).
  auto v = linear_beta_schedule()->at(torch::ones({1}, torch::kFloat64));
  EXPECT_NEAR(v.alpha.square().item<double>(), std::exp(-10.05), 1e-12);
  // At t = 1/1000: alpha^2 ~ 1 - beta_1 (1e-4), so SNR ~ 1e4 as in DDPM's first step.
  auto v1 = linear_beta_schedule()->at(torch::full({1}, 1e-3, torch::kFloat64));
  EXPECT_NEAR(1.0 - v1.alpha.square().item<double>(), 1.1e-4, 1e-5);
}

TEST(Schedules, SdeCoefficientsReproduceVarianceOde) {
  // For x_t = alpha x0 + sigma eps, d sigma^2/dt = 2 f sigma^2 + g^2 (the variance ODE of the SDE).
  auto t = torch::linspace(0.05, 0.95, 10, torch::kFloat64);
  for (auto& s : all_schedules()) {
    auto v = s->at(t);
    EXPECT_TRUE(torch::allclose(v.dsigma2, 2 * v.f() * v.sigma.square() + v.g2(), 1e-9, 1e-12)) << s->name();
    EXPECT_TRUE((v.g2() > 0).all().item<bool>()) << s->name();
  }
}
