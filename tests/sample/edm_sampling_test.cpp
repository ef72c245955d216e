// EDM's sampling recipe: the Karras grid's levels, Heun on it with the EDM-preconditioned exact denoiser, and churn.
#include <gtest/gtest.h>

#include <map>

#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

// Karras et al. 2022 eq. 5: the levels s~_i = sigma / alpha at the grid's times are linear in i in their 1/rho power,
// from s~(1) to s~(t_min); then t = 0 where t_min > 0.
TEST(KarrasGrid, LevelsFollowEquation5) {
  for (auto cfg : {nlohmann::json{{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0}},
                   nlohmann::json{{"name", "gaussian-vp"}, {"schedule", "linear-beta"}, {"steps", 0}}}) {
    auto g = testing::make_gauss(cfg);
    const int64_t n = 18;
    auto grid = karras_grid(*g, n);
    ASSERT_EQ(int64_t(grid.size()), g->t_min() > 0 ? n + 1 : n) << cfg.dump();
    EXPECT_EQ(grid.front(), 1.0);
    EXPECT_EQ(grid.back(), 0.0);
    auto t = torch::tensor(std::vector<double>(grid.begin(), grid.begin() + n), torch::kFloat64);
    auto lev = torch::exp(-0.5 * g->schedule().at(t).logsnr).pow(1.0 / 7.0);  // [n]
    auto d = lev.narrow(0, 1, n - 1) - lev.narrow(0, 0, n - 1);
    EXPECT_TRUE(torch::allclose(d, torch::full_like(d, d[0].item<double>()), 1e-9, 1e-12)) << cfg.dump() << d;
    for (size_t k = 1; k < grid.size(); ++k) EXPECT_LT(grid[k], grid[k - 1]);
  }
  EXPECT_THROW(karras_grid(*testing::make_gauss({{"name", "gaussian-vp"}, {"steps", 100}})), std::invalid_argument);
}

// EDM's VE setting (sigma 0.002..80, edm preconditioning, sigma_data 0.5), Heun on Karras levels with the exact
// denoiser of Gaussian data N(m, s^2) in 64 dimensions (n = 40000 values per (m, s) pair). Heun steps in
// s~ = sigma / alpha (EDM's Alg. 1): 2 network calls per step and 1 on the last; second order, so the variance
// error falls about 4x from 18 to 36 levels (measured +14% -> +3.2%, asserted > 2.5x on the mean over the 4
// pairs); at 72 levels mean and variance are within 5 standard errors plus 0.01 sd and 2%.
TEST(KarrasGrid, HeunOnEdmLevelsIsSecondOrderAndRecoversGaussianData) {
  auto g = testing::make_gauss({{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0},
                                {"parameterization", "edm"}});
  auto m4 = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64), s4 = torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  auto m = m4.repeat({16}), s = s4.repeat({16});
  const int64_t N = 2500, n = N * 16;
  std::map<int64_t, double> err;
  for (int64_t levels : {18, 36, 72}) {
    auto gen = testing::seeded(9);
    SamplerOptions o;
    o.dtype = torch::kFloat64;
    SamplerStats stats;
    o.stats = &stats;
    auto x = make_sampler("heun", o)(*g, testing::exact_gaussian_denoiser(*g, m, s), karras_grid(*g, levels), {N, 64}, gen, {});
    EXPECT_EQ(stats.network_calls, 2 * (levels - 1) - 1);  // t_min = 0: the last level is t = 0 itself
    auto pooled = x.reshape({n, 4});
    auto mean = pooled.mean(0), var = pooled.var(0);
    err[levels] = (var / s4.square() - 1).abs().mean().item<double>();
    std::cout << levels << " Karras levels: mean |var / s^2 - 1| " << err[levels] << "\n";
    if (levels != 72) continue;
    for (int64_t d = 0; d < 4; ++d) {
      const double sd = s4[d].item<double>();
      EXPECT_NEAR(mean[d].item<double>(), m4[d].item<double>(), 5 * sd / std::sqrt(double(n)) + 0.01 * sd) << d;
      EXPECT_NEAR(var[d].item<double>() / (sd * sd), 1.0, 5 * std::sqrt(2.0 / (n - 1)) + 0.02) << d;
    }
  }
  EXPECT_GT(err[18] / err[36], 2.5);
}

// EDM's churn (Alg. 2) on a point-mass x0 = m: the exact denoiser returns m, lifting x~ = x / alpha from level s~_i to
// s~^ adds N(0, s~^2 - s~_i^2) to x~ - m ~ N(0, s~_i^2), and Heun's x~ - m ∝ s~ is exact on that ODE, so with
// s_noise = 1 every state after a step is N(alpha m, sigma^2) exactly (the marginals EDM's SDE keeps); s_noise = 1.5
// inflates every churned step's variance by a fixed 5/4 (gamma near sqrt 2 - 1) and must fail the same check.
// 20000 x 4 draws: mean within 5 standard errors, variance within 5 sqrt(2 / (n - 1)) relative.
TEST(EdmChurn, PointMassMarginalsAreExactAndTheNoiseScaleMatters) {
  for (auto cfg : {nlohmann::json{{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0},
                                  {"parameterization", "edm"}},
                   nlohmann::json{{"name", "gaussian-vp"}, {"schedule", "linear-beta"}, {"steps", 0}}}) {
    auto g = testing::make_gauss(cfg);
    auto m = torch::tensor({0.7, -0.2, 0.0, 1.5}, torch::kFloat64);
    auto f = testing::exact_gaussian_denoiser(*g, m, torch::zeros({4}, torch::kFloat64));
    auto grid = karras_grid(*g, 12);
    for (double s_noise : {1.0, 1.5}) {
      std::map<int64_t, torch::Tensor> states;
      StepHook rec = [&](const torch::Tensor& x, const StepInfo& info, torch::Generator&) {
        states[info.step] = x.clone();
        return x;
      };
      SamplerOptions o;
      o.dtype = torch::kFloat64;
      o.method = to_json(HeunOptions().s_churn(40).s_noise(s_noise));
      auto gen = testing::seeded(21);
      const int64_t n = 20000;
      make_sampler("heun", o)(*g, f, grid, {n, 4}, gen, {}, rec);
      int64_t off = 0;
      for (int64_t k = 2; k + 1 < int64_t(grid.size()); ++k) {  // from the second step: the first lift is capped at the top
        auto a = g->schedule().at(torch::full({1}, grid[k], torch::kFloat64));
        const double al = a.alpha.item<double>(), sg = a.sigma.item<double>();
        auto var = states.at(k).var(0), mean = states.at(k).mean(0);
        for (int64_t d = 0; d < 4; ++d) {
          const bool var_ok = std::abs(var[d].item<double>() / (sg * sg) - 1.0) <= 5 * std::sqrt(2.0 / (n - 1));
          if (s_noise == 1.0) {
            EXPECT_TRUE(var_ok) << cfg.dump() << " step " << k << " var/sigma^2 " << var[d].item<double>() / (sg * sg);
            EXPECT_NEAR(mean[d].item<double>(), al * m[d].item<double>(), testing::mc_tol(sg, n)) << cfg.dump() << k;
          }
          off += !var_ok;
        }
      }
      if (s_noise != 1.0) EXPECT_GT(off, 20) << cfg.dump();  // 4 dims x 9 steps checked
    }
  }
}

// Where churn happens: the network's first call of step i is at the time t^ whose level is (1 + gamma) s~_i,
// gamma = min(s_churn / N, sqrt 2 - 1), for s~_i in [s_tmin, s_tmax] (capped at the grid's top level), and at t_i
// itself outside; without churn every first call is at t_i (EDM Alg. 2 lines 4-5).
TEST(EdmChurn, LiftsOnlyInsideTheRangeByGamma) {
  auto g = testing::make_gauss({{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0},
                                {"parameterization", "edm"}});
  auto f0 = testing::exact_gaussian_denoiser(*g, torch::zeros({2}, torch::kFloat64), torch::ones({2}, torch::kFloat64));
  std::vector<double> calls;
  DenoiseFn f = [&](const torch::Tensor& x, const torch::Tensor& t) {
    calls.push_back(t[0].item<double>());
    return f0(x, t);
  };
  auto grid = karras_grid(*g, 18);
  const int64_t N = int64_t(grid.size()) - 1;
  const double churn = 5, tmin = 0.05, tmax = 10;
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  o.method = to_json(HeunOptions().s_churn(churn).s_tmin(tmin).s_tmax(tmax));
  auto gen = testing::seeded(4);
  make_sampler("heun", o)(*g, f, grid, {8, 2}, gen, {});
  auto level = [&](double t) {
    auto a = g->schedule().at(torch::full({1}, t, torch::kFloat64));
    return (a.sigma / a.alpha).item<double>();
  };
  const double gamma = std::min(churn / double(N), std::sqrt(2.0) - 1);
  size_t c = 0;
  int64_t lifted = 0;
  for (int64_t i = 0; i < N; ++i) {
    ASSERT_LT(c, calls.size());
    const double lev = level(grid[i]);
    const bool in = lev >= tmin && lev <= tmax;
    const double want = in ? std::min(lev * (1 + gamma), level(grid[0])) : lev;
    EXPECT_NEAR(level(calls[c]) / want, 1.0, 1e-9) << "step " << i << " level " << lev;
    lifted += in;
    c += grid[i + 1] > 0 ? 2 : 1;  // Heun's second call, except on the last step
  }
  EXPECT_EQ(c, calls.size());
  EXPECT_GT(lifted, 4);
  EXPECT_LT(lifted, N - 2);
  EXPECT_THROW(make_sampler("heun", SamplerOptions{.method = {{"s_tmin", 2}, {"s_tmax", 1}}}), std::invalid_argument);
}

// Churned Heun (s_churn 40, EDM's ImageNet setting, s_noise 1) on EDM's VE levels with Gaussian data N(m, s^2):
// at 72 levels mean and variance within 5 standard errors of 40000 draws plus 0.01 sd and 2%, the slack the
// deterministic sampler's test allows for discretisation.
TEST(EdmChurn, ChurnedHeunRecoversGaussianData) {
  auto g = testing::make_gauss({{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0},
                                {"parameterization", "edm"}});
  auto m4 = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64), s4 = torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  const int64_t N = 2500, n = N * 16;
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  o.method = to_json(HeunOptions().s_churn(40));
  auto gen = testing::seeded(12);
  auto x = make_sampler("heun", o)(*g, testing::exact_gaussian_denoiser(*g, m4.repeat({16}), s4.repeat({16})),
                                   karras_grid(*g, 72), {N, 64}, gen, {});
  auto pooled = x.reshape({n, 4});
  auto mean = pooled.mean(0), var = pooled.var(0);
  for (int64_t d = 0; d < 4; ++d) {
    const double sd = s4[d].item<double>();
    std::cout << "churned heun, 72 levels, dim " << d << ": var / s^2 - 1 = " << var[d].item<double>() / (sd * sd) - 1 << "\n";
    EXPECT_NEAR(mean[d].item<double>(), m4[d].item<double>(), 5 * sd / std::sqrt(double(n)) + 0.01 * sd) << d;
    EXPECT_NEAR(var[d].item<double>() / (sd * sd), 1.0, 5 * std::sqrt(2.0 / (n - 1)) + 0.02) << d;
  }
}

}  // namespace
}  // namespace gsdiff
