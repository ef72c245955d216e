// Schedules: derivatives equal finite differences; VP identity; SDE coefficients reproduce sigma^2.
#include <gtest/gtest.h>

#include "core/discrete_schedules.h"
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

// Each schedule against its paper's definition, computed here in plain double arithmetic.
namespace {
double sched_a2(const GaussianSchedule& s, double t) {
  return s.at(torch::full({1}, t, torch::kFloat64)).alpha.pow(2).item<double>();
}
double sched_sigma(const GaussianSchedule& s, double t) {
  return s.at(torch::full({1}, t, torch::kFloat64)).sigma.item<double>();
}
}  // namespace

TEST(SchedulesAgainstPapers, ContinuousFormsEqualTheirDefinitions) {
  for (double t : {1e-5, 0.013, 0.25, 0.5, 0.77, 1.0}) {
    // Song et al. 2021 eq. 33 (VP): alpha^2 = exp(-(b0 t + (b1 - b0) t^2 / 2)), b0 = 0.1, b1 = 20.
    EXPECT_NEAR(std::log(sched_a2(*linear_beta_schedule(), t)), -(0.1 * t + 0.5 * 19.9 * t * t), 1e-12) << t;
    // VDM (Kingma et al. 2021): alpha^2 = sigmoid(lambda), lambda = 13.3 - 18.3 t.
    EXPECT_NEAR(sched_a2(*linear_logsnr_schedule(), t), 1.0 / (1.0 + std::exp(-(13.3 - 18.3 * t))), 1e-14) << t;
    // Song et al. 2021 (VE): sigma = sigma_min (sigma_max / sigma_min)^t, alpha = 1.
    EXPECT_NEAR(sched_sigma(*ve_geometric_schedule(), t) / (0.01 * std::pow(5000.0, t)), 1.0, 1e-12) << t;
    // Song et al. 2021 (sub-VP): mean factor exp(-B/2), std 1 - exp(-B), B the integrated linear beta.
    double B = 0.1 * t + 0.5 * 19.9 * t * t;
    EXPECT_NEAR(sched_a2(*subvp_schedule(), t), std::exp(-B), 1e-14) << t;
    EXPECT_NEAR(sched_sigma(*subvp_schedule(), t), 1.0 - std::exp(-B), 1e-14) << t;
    // iDDPM (Nichol & Dhariwal 2021 eq. 17) before its normalisation: f(t) = cos^2((t + s)/(1 + s) pi/2).
    // Ours is alpha = cos(phi), phi linear to atan(exp(-logsnr_min / 2)); with logsnr_min = -60 that is f(t).
    double f = std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2.0), 2);
    EXPECT_NEAR(sched_a2(*cosine_schedule(0.008, -60.0), t), f, 1e-12) << t;
  }
}

TEST(SchedulesAgainstPapers, DdpmAndIddpmDiscreteProductsEqualThePapersTables) {
  const int T = 1000;
  auto ddpm = ddpm_linear_beta_schedule(T), iddpm = iddpm_cosine_schedule(T);
  auto f = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2.0), 2); };
  double abar = 1.0, abar_c = 1.0;
  for (int i = 1; i <= T; ++i) {
    abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * double(i - 1) / double(T - 1));  // Ho et al. 2020: beta_i linear
    double beta_c = std::min(1.0 - f(double(i) / T) / f(double(i - 1) / T), 0.999);  // iDDPM, clipped
    abar_c *= 1.0 - beta_c;
    EXPECT_NEAR(sched_a2(*ddpm, double(i) / T) / abar, 1.0, 1e-12) << i;
    EXPECT_NEAR(sched_a2(*iddpm, double(i) / T) / abar_c, 1.0, 1e-10) << i;
    if (i < T) {  // clipping acts at i = T only
      EXPECT_NEAR(abar_c, f(double(i) / T) / f(0.0), 1e-12) << i;
    }
  }
  // The continuous form of linear-beta is not DDPM's table: log alpha-bar(1) = -10.05 against -10.118
  // (sum log(1 - beta_j) = -sum beta_j - sum beta_j^2 / 2 - ...).
  double cont = std::log(sched_a2(*linear_beta_schedule(), 1.0));
  EXPECT_NEAR(cont, -10.05, 1e-12);
  EXPECT_LT(std::log(abar), cont - 0.06);
  // Derivatives of the product form: d log-SNR / dt matches central differences inside a step.
  for (double t : {0.1234, 0.5678}) {
    double h = 1e-8;
    auto lam = [&](double u) { return ddpm->at(torch::full({1}, u, torch::kFloat64)).logsnr.item<double>(); };
    EXPECT_NEAR(ddpm->at(torch::full({1}, t, torch::kFloat64)).dlogsnr.item<double>(), (lam(t + h) - lam(t - h)) / (2 * h), 1e-4) << t;
  }
}

TEST(SchedulesAgainstPapers, SurvivalSchedulesEqualTheirDefinitions) {
  for (double t : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    auto tt = torch::full({1}, t, torch::kFloat64);
    auto a = [&](const std::string& type) {
      SurvivalSchedule s;
      s.type = type;
      return s.alpha(tt).item<double>();
    };
    EXPECT_NEAR(a("linear"), 1.0 - t, 1e-15);                                    // MDLM (Sahoo et al. 2024)
    EXPECT_NEAR(a("cosine"), 1.0 - std::cos(M_PI / 2.0 * (1.0 - t)), 1e-15);     // MD4 (Shi et al. 2024)
    EXPECT_NEAR(a("log-linear"), 1.0 - (1.0 - 1e-3) * t, 1e-15);                 // SEDD (Lou et al. 2024)
    EXPECT_NEAR(a("exponential"), std::exp(-5.0 * t), 1e-15);
  }
}
