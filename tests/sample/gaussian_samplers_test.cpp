// Continuous samplers transport N(0, I) to Gaussian data under its exact denoiser; determinism; registry.
#include <gtest/gtest.h>

#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

using testing::exact_gaussian_denoiser;
using testing::make_gauss;
using testing::mc_tol;

struct GaussCase {
  std::string name;
  int64_t steps;
  bool deterministic;  // the PF-ODE family (DDIM eta = 0, Heun, DPM-Solver++) vs the SDE family
  // Discretisation slack on the mean (in data sd) and on the relative variance, on top of 5 Monte-Carlo standard
  // errors (0.025 sd, 3.5%). Measured at these step counts (seed 7, the run's own noise included): every variance
  // error below 2% (PC at snr 0.02: 2.6%, its Langevin bias) and every mean error below 0.014 sd.
  double mean_slack, var_slack;
  std::string process = "gaussian-vp", schedule = "linear-logsnr", param = "";  // "" = x0 (eps for ddim)
  double snr = 0.02;                                                            // pc only
  bool isotropic = false;  // one data sd for every dimension (PC's Langevin fixed point is then a closed form)
};

// The exact law of every sampler's output under the exact denoiser, per dimension (x0 ~ N(m, s^2)): every map is
// affine, so it is Gaussian. Each chain starts from the process's prior N(0, P) (P = prior_std^2; not the true
// p_1 = N(alpha_1 m, std_1^2), std_t^2 = alpha_t^2 s^2 + sigma_t^2), runs to t = u (the grid's last time before 0)
// and returns x0_hat(x_u) = m + c (x_u - alpha_u m), c = alpha_u s^2 / std_u^2.
//   PF-ODE: x_u = alpha_u m + (std_u / std_1)(x_1 - alpha_1 m).
//   reverse SDE: x_u ~ q(x_u | x_1), the Gaussian conditional of the forward chain: with a = alpha_1 / alpha_u,
//     mean alpha_u m + a std_u^2 / std_1^2 (x_1 - alpha_1 m), variance std_u^2 - a^2 std_u^4 / std_1^2.
// (A Langevin corrector only pulls further towards p_t; VE's sigma_min = 0.01 makes c < 1 visibly.)
std::pair<torch::Tensor, torch::Tensor> target(const GaussianProcess& g, const torch::Tensor& m, const torch::Tensor& s,
                                               bool deterministic, double u) {
  auto at = [&](double t) { return g.schedule().at(torch::full({1}, t, torch::kFloat64)); };
  auto v1 = at(1.0), vu = at(u);
  const double P = g.prior_std() * g.prior_std();
  auto std1 = torch::sqrt(v1.alpha * v1.alpha * s * s + v1.sigma * v1.sigma);
  auto stdu = torch::sqrt(vu.alpha * vu.alpha * s * s + vu.sigma * vu.sigma);
  auto c = vu.alpha * s * s / (stdu * stdu);
  torch::Tensor mean_u, var_u;  // of x_u - alpha_u m
  if (deterministic) {
    mean_u = -(stdu / std1) * v1.alpha * m;
    var_u = (stdu / std1).pow(2) * P;
  } else {
    auto k = (v1.alpha / vu.alpha) * stdu * stdu / (std1 * std1);
    mean_u = -k * v1.alpha * m;
    var_u = k * k * P + stdu * stdu - (v1.alpha / vu.alpha).pow(2) * stdu.pow(4) / (std1 * std1);
  }
  return {m + c * mean_u, c * c * var_u};
}

class GaussianRecovery : public ::testing::TestWithParam<GaussCase> {};

// 64 data dimensions: 16 copies of 4 (m, s) pairs, pooled per pair (the PC corrector's step size uses
// per-example norms, which need more than a handful of dimensions to concentrate).
TEST_P(GaussianRecovery, MeanAndVarianceMatchTheData) {
  const auto c = GetParam();
  const std::string param = !c.param.empty() ? c.param : c.name == "ddim" ? "eps" : "x0";
  auto g = make_gauss({{"name", c.process}, {"steps", 0}, {"schedule", c.schedule}, {"parameterization", param}});
  auto m4 = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64);
  auto s4 = c.isotropic ? torch::full({4}, 0.3, torch::kFloat64) : torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  auto m = m4.repeat({16}), s = s4.repeat({16});
  const int64_t N = 2500, n = N * 16;
  auto gen = testing::seeded(7);
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  if (c.name == "pc") o.method = to_json(PcOptions().snr(c.snr));
  auto grid = time_grid(*g, c.steps);
  auto x = make_sampler(c.name, o)(*g, exact_gaussian_denoiser(*g, m, s), grid, {N, 64}, gen, {});
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{N, 64}));
  auto pooled = x.reshape({n, 4});
  auto mean = pooled.mean(0), var = pooled.var(0);
  auto [tm, tv] = target(*g, m4, s4, c.deterministic, grid[grid.size() - 2]);
  // PC on isotropic data, p_t = N(mu, v) in each of d = 64 dimensions: the corrector's step a = eps / v =
  // 2 snr^2 Z / X per example, Z = |z|^2 ~ chi2_d, X = |x - mu|^2 / v = r chi2_d (r = the chain's variance / v), maps
  // y = x - mu to (1 - a) y + sqrt(2 a v) z with the same z (Song et al. 2021, Alg. 5). With E[y_i^2 / X] = v / d
  // (symmetry), E[1 / chi2_d] = 1 / (d - 2), E[|z|^2 z_i^2] = d + 2 and E[Z^2] = d (d + 2):
  //   r' = r - 4 snr^2 + 4 snr^2 (1 + snr^2) (d + 2) / (r (d - 2)),
  // whose fixed point r* = (1 + snr^2) (d + 2) / (d - 2) = 1.0917 at snr 0.16 the corrector holds the chain at (it
  // contracts by ~4 snr^2 per step, the predictor's pull to 1 shrinks with the step). As d grows r* tends to the
  // unadjusted-Langevin 1 + snr^2. On the anisotropic data |score| is dominated by the smallest-variance dimensions
  // and fluctuates with them: +2.6% on s = 0.1 at snr 0.02, +22% at 0.16 (measured, 100 steps).
  if (c.name == "pc" && c.isotropic) {
    const double d = 64;
    tv = tv * (1 + c.snr * c.snr) * (d + 2) / (d - 2);
  }
  for (int64_t d = 0; d < 4; ++d) {
    const double sd = std::sqrt(tv[d].item<double>());
    EXPECT_NEAR(mean[d].item<double>(), tm[d].item<double>(), mc_tol(sd, n) + c.mean_slack * sd) << c.name << " dim " << d;
    // Var of a sample variance of Gaussians: 2 v^2 / (n - 1).
    EXPECT_NEAR(var[d].item<double>() / tv[d].item<double>(), 1.0, 5.0 * std::sqrt(2.0 / (n - 1)) + c.var_slack)
        << c.name << " dim " << d;
  }
}

// VP with linear log-SNR under each sampler; VE (geometric sigma 0.01..50) and sub-VP (linear beta) under each;
// the score and v parameterisations; PC at its default snr 0.16 (Song et al. 2021) on isotropic data, where its
// bias has a closed form (above), and at 0.02 on the anisotropic data. Step counts: the first-order samplers'
// systematic variance error shrinks like 1 / steps, and the uniform t grid takes large log-SNR steps near t = 0 on
// linear-beta and sub-VP and large sigma steps on VE, so the counts are what those need (measured before: ancestral
// on linear log-SNR -5% at 200 steps, -1.8% at 1000; VE Heun +10% at 40 steps; sub-VP DPM-Solver++ +16% at 25, DDIM
// -13% at 100; v-DDIM on linear beta -12% at 100).
INSTANTIATE_TEST_SUITE_P(
    Samplers, GaussianRecovery,
    ::testing::Values(
        GaussCase{"ancestral", 1000, false, 0.01, 0.02}, GaussCase{"ddim", 1000, true, 0.01, 0.02},
        GaussCase{"euler-maruyama", 400, false, 0.01, 0.02}, GaussCase{"heun", 80, true, 0.01, 0.02},
        GaussCase{"dpm-solver++", 25, true, 0.01, 0.02}, GaussCase{"pc", 100, false, 0.01, 0.06},
        GaussCase{"pc", 200, false, 0.01, 0.02, "gaussian-vp", "linear-logsnr", "", 0.16, true},
        GaussCase{"ancestral", 1000, false, 0.01, 0.02, "gaussian-ve", "geometric"},
        GaussCase{"ddim", 1000, true, 0.01, 0.02, "gaussian-ve", "geometric"},
        GaussCase{"euler-maruyama", 400, false, 0.01, 0.02, "gaussian-ve", "geometric"},
        GaussCase{"heun", 100, true, 0.01, 0.02, "gaussian-ve", "geometric"},
        GaussCase{"dpm-solver++", 25, true, 0.01, 0.02, "gaussian-ve", "geometric"},
        GaussCase{"pc", 200, false, 0.01, 0.02, "gaussian-ve", "geometric", "", 0.16, true},
        GaussCase{"ancestral", 2000, false, 0.01, 0.02, "gaussian-subvp", "linear-beta"},
        GaussCase{"ddim", 2000, true, 0.01, 0.02, "gaussian-subvp", "linear-beta"},
        GaussCase{"euler-maruyama", 400, false, 0.01, 0.02, "gaussian-subvp", "linear-beta"},
        GaussCase{"heun", 80, true, 0.01, 0.02, "gaussian-subvp", "linear-beta"},
        GaussCase{"dpm-solver++", 200, true, 0.01, 0.02, "gaussian-subvp", "linear-beta"},
        GaussCase{"heun", 80, true, 0.01, 0.02, "gaussian-vp", "cosine", "score"},
        GaussCase{"euler-maruyama", 400, false, 0.01, 0.02, "gaussian-vp", "cosine", "score"},
        GaussCase{"ddim", 2000, true, 0.01, 0.02, "gaussian-vp", "linear-beta", "v"},
        // Flow matching's straight path with the velocity parameterisation: the same samplers, unchanged.
        GaussCase{"heun", 40, true, 0.01, 0.02, "gaussian-flow", "linear-interpolant", "velocity"},
        GaussCase{"ddim", 200, true, 0.01, 0.02, "gaussian-flow", "linear-interpolant", "velocity"},
        GaussCase{"dpm-solver++", 25, true, 0.01, 0.02, "gaussian-flow", "linear-interpolant", "velocity"},
        GaussCase{"euler-maruyama", 400, false, 0.01, 0.02, "gaussian-flow", "linear-interpolant", "velocity"},
        GaussCase{"ancestral", 1000, false, 0.01, 0.02, "gaussian-flow", "linear-interpolant", "velocity"}),
    [](const auto& info) {
      std::string n = info.param.process.substr(9) + "_" + info.param.schedule + "_" + info.param.name +
                      (info.param.param.empty() ? "" : "_" + info.param.param) +
                      (info.param.snr != 0.02 && info.param.name == "pc" ? "_snr016" : "");
      for (auto& ch : n)
        if (!isalnum(ch)) ch = '_';
      return n;
    });

TEST(ContinuousSamplers, DeterministicForAFixedGeneratorAndCountCalls) {
  auto g = make_gauss({{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", "cosine"}, {"parameterization", "v"}});
  auto m = torch::full({3}, 0.1, torch::kFloat64), s = torch::full({3}, 0.4, torch::kFloat64);
  auto f = exact_gaussian_denoiser(*g, m, s);
  auto grid = time_grid(*g, 10);
  for (const auto& name : sampler_names(Space::Continuous)) {
    SamplerStats st;
    SamplerOptions o;
    if (name == "ddim") o.method = to_json(DdimOptions().eta(0.5));
    o.stats = &st;
    auto g1 = testing::seeded(3), g2 = testing::seeded(3), g3 = testing::seeded(4);
    int64_t steps = 0;
    auto a = make_sampler(name, o)(*g, f, grid, {5, 3}, g1, [&](int64_t k, int64_t n) { steps = k; });
    auto b = make_sampler(name, o)(*g, f, grid, {5, 3}, g2, {});
    auto c = make_sampler(name, o)(*g, f, grid, {5, 3}, g3, {});
    EXPECT_TRUE(torch::equal(a, b)) << name;
    EXPECT_FALSE(torch::equal(a, c)) << name;
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>()) << name;
    EXPECT_EQ(steps, 10) << name;
    // One call per step (Heun: two except the last; PC: 1 + corrector per step).
    const int64_t want = name == "heun" ? 19 : name == "pc" ? 20 : 10;
    EXPECT_EQ(st.network_calls, 3 * want) << name;  // three runs counted into st
  }
}

TEST(SamplerRegistry, UnknownNameListsKnownOnesAndFamiliesAreChecked) {
  try {
    make_sampler("nope");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dpm-solver++"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("mdlm-cached"), std::string::npos);
  }
  auto g = make_gauss({{"name", "gaussian-vp"}, {"steps", 0}});
  auto gen = testing::seeded(0);
  auto f = [](const torch::Tensor& x, const torch::Tensor&) { return x; };
  EXPECT_THROW(make_sampler("tau-leaping")(*g, f, time_grid(*g, 4), {2, 2}, gen, {}), std::invalid_argument);
  EXPECT_THROW(make_sampler("ddim")(*g, f, {0.0, 1.0}, {2, 2}, gen, {}), std::invalid_argument);
  auto q = time_grid(*g, 4, "quadratic");
  ASSERT_EQ(q.size(), 5u);
  EXPECT_DOUBLE_EQ(q[1], 0.5625);
  EXPECT_THROW(time_grid(*g, 4, "cubic"), std::invalid_argument);
}

}  // namespace
}  // namespace gsdiff
