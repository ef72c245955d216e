// EDM's sampling recipe: the Karras grid's levels, and Heun on it with the EDM-preconditioned exact denoiser.
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

}  // namespace
}  // namespace gsdiff
