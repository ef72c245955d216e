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
  // Discretisation slack on the mean (in data sd) and on the relative variance. Measured errors at these
  // step counts (same seed) are below half the slack; first-order samplers get more than second-order ones.
  double mean_slack, var_slack;
};

// The samplers start from N(0, 1), not from the true p_1 = N(alpha_1 m, std_1^2), std_1^2 = alpha_1^2 s^2 +
// sigma_1^2 (linear log-SNR ends at alpha_1^2 = sigmoid(-5) = 0.0067). With the exact denoiser every map is
// affine, so the target is exact: the PF-ODE flow x_0 = m + (s / std_1)(x_1 - alpha_1 m) gives
// N(m (1 - s alpha_1 / std_1), s^2 / std_1^2); the reverse SDE draws x_0 ~ p(x_0 | x_1) = N(m + alpha_1 s^2 /
// std_1^2 (x_1 - alpha_1 m), s^2 sigma_1^2 / std_1^2), so N(m (1 - alpha_1^2 s^2 / std_1^2), s^2 (alpha_1^2 s^2 +
// sigma_1^2 std_1^2) / std_1^4). (A Langevin corrector only pulls further towards p_t.)
std::pair<torch::Tensor, torch::Tensor> target(const GaussianProcess& g, const torch::Tensor& m, const torch::Tensor& s,
                                               bool deterministic) {
  auto v = g.schedule().at(torch::ones({1}, torch::kFloat64));
  auto a = v.alpha, sg = v.sigma;
  auto std1 = torch::sqrt(a * a * s * s + sg * sg);
  if (deterministic) return {m * (1 - s * a / std1), s * s / (std1 * std1)};
  return {m * (1 - a * a * s * s / (std1 * std1)), s * s * (a * a * s * s + sg * sg * std1 * std1) / std1.pow(4)};
}

class GaussianRecovery : public ::testing::TestWithParam<GaussCase> {};

// 64 data dimensions: 16 copies of 4 (m, s) pairs, pooled per pair (the PC corrector's step size uses
// per-example norms, which need more than a handful of dimensions to concentrate).
TEST_P(GaussianRecovery, MeanAndVarianceMatchTheData) {
  const auto c = GetParam();
  auto g = make_gauss({{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", "linear-logsnr"},
                       {"parameterization", c.name == "ddim" ? "eps" : "x0"}});
  auto m4 = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64);
  auto s4 = torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  auto m = m4.repeat({16}), s = s4.repeat({16});
  const int64_t N = 2500, n = N * 16;
  auto gen = testing::seeded(7);
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  // The Langevin corrector (step 2 (snr |z| / |score|)^2 per example) adds a variance bias that grows with
  // snr and with the number of corrector steps on the smallest-variance dimension (s = 0.1): measured
  // +2.6% at snr 0.02 / 100 steps, +13% at snr 0.05 / 400 steps, +15% at snr 0.1; without corrector 0.4%.
  o.snr = 0.02;
  auto x = make_sampler(c.name, o)(*g, exact_gaussian_denoiser(*g, m, s), time_grid(*g, c.steps), {N, 64}, gen, {});
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{N, 64}));
  auto pooled = x.reshape({n, 4});
  auto mean = pooled.mean(0), var = pooled.var(0);
  auto [tm, tv] = target(*g, m4, s4, c.deterministic);
  for (int64_t d = 0; d < 4; ++d) {
    const double sd = std::sqrt(tv[d].item<double>());
    EXPECT_NEAR(mean[d].item<double>(), tm[d].item<double>(), mc_tol(sd, n) + c.mean_slack * sd) << c.name << " dim " << d;
    // Var of a sample variance of Gaussians: 2 v^2 / (n - 1).
    EXPECT_NEAR(var[d].item<double>() / tv[d].item<double>(), 1.0, 5.0 * std::sqrt(2.0 / (n - 1)) + c.var_slack)
        << c.name << " dim " << d;
  }
}

INSTANTIATE_TEST_SUITE_P(Samplers, GaussianRecovery,
                         ::testing::Values(GaussCase{"ancestral", 200, false, 0.02, 0.03}, GaussCase{"ddim", 100, true, 0.02, 0.03},
                                           GaussCase{"euler-maruyama", 400, false, 0.03, 0.05}, GaussCase{"heun", 40, true, 0.01, 0.01},
                                           GaussCase{"dpm-solver++", 25, true, 0.01, 0.01}, GaussCase{"pc", 100, false, 0.03, 0.06}),
                         [](const auto& info) {
                           std::string n = info.param.name;
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
    o.eta = 0.5;
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
