// DPM-Solver++ (2M, 3M; ODE and SDE): its order against the exact probability-flow map of Gaussian data, and the
// SDE family's exact marginals for a point-mass x0.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

// n steps uniform in lambda = log(alpha / sigma) from t = 1 to the time where lambda = lambda_end, then t = 0.
std::vector<double> lambda_grid(const GaussianProcess& g, int64_t n, double lambda_end) {
  const double l1 = g.schedule().at(torch::ones({1}, torch::kFloat64)).logsnr.item<double>() / 2;
  std::vector<double> grid;
  for (int64_t k = 0; k <= n; ++k) {
    const double l = l1 + (lambda_end - l1) * double(k) / double(n);
    grid.push_back(k == 0 ? 1.0 : g.time_at_logsnr(torch::full({1}, 2 * l, torch::kFloat64)).item<double>());
  }
  grid.push_back(0.0);
  return grid;
}

// The state a sampler holds after step `step` (1..total) and its prior draw, recorded by the step hook; `start`, when
// set, replaces the prior draw (e.g. by a draw of q(x_1 | x0) where the prior is not that law).
struct Recorder {
  std::map<int64_t, torch::Tensor> states;  // step -> x [N, D] (0: the prior draw)
  std::function<torch::Tensor(const torch::Tensor&)> start;
  StepHook hook() {
    return [this](const torch::Tensor& x, const StepInfo& info, torch::Generator&) {
      auto y = info.step == 0 && start ? start(x) : x;
      states[info.step] = y.clone();
      return y;
    };
  }
};

torch::Tensor run_dpm(const GaussianProcess& g, const DenoiseFn& f, const std::vector<double>& grid, int64_t N, int64_t D,
                      DpmSolverOptions opt, uint64_t seed, Recorder& rec) {
  SamplerOptions o;
  o.dtype = torch::kFloat64;
  o.method = to_json(opt);
  auto gen = testing::seeded(seed);
  return make_sampler("dpm-solver++", o)(g, f, grid, {N, D}, gen, {}, rec.hook());
}

// Data N(m, s^2) per dimension: the probability-flow ODE carries x_1 along x_t = alpha_t m + sqrt(alpha_t^2 s^2 +
// sigma_t^2) z, z = (x_1 - alpha_1 m) / sqrt(alpha_1^2 s^2 + sigma_1^2) (an affine map, since every p_t is Gaussian).
// The error of the state at lambda_end = 3 (the last step before the final x0_hat) against that map is deterministic
// given the prior draw: measured max |error| over 256 x 4 paths on VP (linear log-SNR), lambda from -5.02 to 3:
// 2M 2.7e-2 / 7.6e-3 / 2.0e-3 / 4.9e-4 and 3M 9.6e-3 / 6.7e-4 / 7.3e-5 / 8.4e-6 at 16 / 32 / 64 / 128 steps, ratios
// 3.5, 3.9, 4.0 (order 2) and 14, 9.2, 8.7 (order 3; at 8 steps, h = 1, 3M is not yet in its asymptotic range).
// Asserted from 32 steps on: each halving of h divides the 2M error by more than 2^1.5 and the 3M error by more than
// 2^2.5, and 3M is below 2M at every n.
TEST(DpmSolver, MultistepOrdersAgainstTheExactFlowMap) {
  auto g = testing::make_gauss({{"name", "gaussian-vp"}, {"steps", 0}, {"parameterization", "eps"}});
  auto m = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64), s = torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  auto f = testing::exact_gaussian_denoiser(*g, m, s);
  std::map<std::pair<int64_t, int64_t>, double> err;  // (order, n) -> max |error|
  for (int64_t order : {2, 3})
    for (int64_t n : {32, 64, 128}) {
      Recorder rec;
      auto grid = lambda_grid(*g, n, 3.0);
      run_dpm(*g, f, grid, 256, 4, DpmSolverOptions().order(order), 3, rec);
      auto a1 = g->schedule().at(torch::ones({1}, torch::kFloat64));
      auto ae = g->schedule().at(torch::full({1}, grid[n], torch::kFloat64));
      auto z = (rec.states.at(0) - a1.alpha * m) / torch::sqrt(a1.alpha.square() * s * s + a1.sigma.square());
      auto exact = ae.alpha * m + torch::sqrt(ae.alpha.square() * s * s + ae.sigma.square()) * z;  // [256, 4]
      err[{order, n}] = (rec.states.at(n) - exact).abs().max().item<double>();
      std::cout << "dpm-solver++ " << order << "M, " << n << " steps: max |x - flow map| " << err[{order, n}] << "\n";
    }
  auto e = [&](int64_t order, int64_t n) { return err.at(std::make_pair(order, n)); };
  for (int64_t n : {32, 64}) {
    EXPECT_GT(e(2, n) / e(2, 2 * n), std::pow(2.0, 1.5)) << n;
    EXPECT_GT(e(3, n) / e(3, 2 * n), std::pow(2.0, 2.5)) << n;
  }
  for (int64_t n : {32, 64, 128}) EXPECT_LT(e(3, n), e(2, n)) << n;
}

// A point-mass x0 = m, the chain started from q(x_1 | m) (VE's prior N(0, sigma_max^2) is not that law): the exact
// denoiser returns m at every step, every multistep term vanishes, and each step of the eta-family maps
// N(alpha_t m, sigma_t^2) to N(alpha_s m, sigma_s^2) exactly: the mean through
// (sigma_s / sigma_t) e^{-eta h} alpha_t + alpha_s (1 - e^{-(1 + eta) h}) = alpha_s, the variance through
// (sigma_s e^{-eta h})^2 + sigma_s^2 (1 - e^{-2 eta h}) = sigma_s^2. Checked at every step with 20000 x 4 draws: mean
// within 5 standard errors, variance within 5 sqrt(2 / (n - 1)) relative; a wrong noise or x_t coefficient moves
// the variance by a fixed fraction, far outside that.
TEST(DpmSolver, SdeStepsKeepThePointMassMarginalsExactly) {
  for (auto cfg : {nlohmann::json{{"name", "gaussian-vp"}, {"steps", 0}, {"parameterization", "eps"}},
                   nlohmann::json{{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.01}, {"sigma_max", 20.0}}}) {
    auto g = testing::make_gauss(cfg);
    auto m = torch::tensor({0.7, -0.2, 0.0, 1.5}, torch::kFloat64);
    auto f = testing::exact_gaussian_denoiser(*g, m, torch::zeros({4}, torch::kFloat64));
    for (double eta : {0.5, 1.0})
      for (int64_t order : {2, 3}) {
        Recorder rec;
        auto grid = lambda_grid(*g, 6, 2.0);
        auto a1 = g->schedule().at(torch::ones({1}, torch::kFloat64));
        auto zgen = testing::seeded(13);
        rec.start = [&](const torch::Tensor& x) {
          return a1.alpha * m + a1.sigma * torch::randn(x.sizes(), zgen, x.options());
        };
        const int64_t n = 20000;
        run_dpm(*g, f, grid, n, 4, DpmSolverOptions().order(order).eta(eta), 11, rec);
        for (int64_t k = 1; k <= 6; ++k) {
          auto a = g->schedule().at(torch::full({1}, grid[k], torch::kFloat64));
          const double al = a.alpha.item<double>(), sg = a.sigma.item<double>();
          auto x = rec.states.at(k);
          auto mean = x.mean(0), var = x.var(0);
          for (int64_t d = 0; d < 4; ++d) {
            EXPECT_NEAR(mean[d].item<double>(), al * m[d].item<double>(), testing::mc_tol(sg, n))
                << cfg.dump() << " eta " << eta << " order " << order << " step " << k;
            EXPECT_NEAR(var[d].item<double>() / (sg * sg), 1.0, 5 * std::sqrt(2.0 / (n - 1)))
                << cfg.dump() << " eta " << eta << " order " << order << " step " << k;
          }
        }
      }
  }
}

// The SDE variants (eta 1) on Gaussian data N(m, s^2): with the exact denoiser and 100 lambda-uniform steps (lambda
// -5..5 on VP linear log-SNR), the samples' mean and variance match the data's within 5 standard errors of 40000
// draws (the variance's: 5 sqrt(2 / (n - 1)) = 3.5%). Measured deviations of the variance: at most 1.2% (1.7 standard
// errors), so any discretisation bias at 100 steps is below what 40000 draws resolve.
TEST(DpmSolver, SdeVariantsRecoverGaussianData) {
  auto g = testing::make_gauss({{"name", "gaussian-vp"}, {"steps", 0}, {"parameterization", "eps"}});
  auto m4 = torch::tensor({0.5, -0.3, 0.0, 0.2}, torch::kFloat64), s4 = torch::tensor({0.5, 0.2, 0.8, 0.1}, torch::kFloat64);
  auto f = testing::exact_gaussian_denoiser(*g, m4.repeat({16}), s4.repeat({16}));
  for (int64_t order : {2, 3}) {
    Recorder rec;
    const int64_t N = 2500, n = N * 16;
    auto x = run_dpm(*g, f, lambda_grid(*g, 100, 5.0), N, 64, DpmSolverOptions().order(order).eta(1.0), 5, rec);
    auto pooled = x.reshape({n, 4});
    auto mean = pooled.mean(0), var = pooled.var(0);
    for (int64_t d = 0; d < 4; ++d) {
      const double sd = s4[d].item<double>();
      std::cout << order << "M SDE dim " << d << ": var / s^2 - 1 = " << var[d].item<double>() / (sd * sd) - 1 << "\n";
      EXPECT_NEAR(mean[d].item<double>(), m4[d].item<double>(), testing::mc_tol(sd, n)) << order << " " << d;
      EXPECT_NEAR(var[d].item<double>() / (sd * sd), 1.0, 5 * std::sqrt(2.0 / (n - 1))) << order << " " << d;
    }
  }
}

TEST(DpmSolver, OptionsAreChecked) {
  EXPECT_THROW(make_sampler("dpm-solver++", SamplerOptions{.method = {{"order", 4}}}), std::invalid_argument);
  EXPECT_THROW(make_sampler("dpm-solver++", SamplerOptions{.method = {{"eta", -1}}}), std::invalid_argument);
  try {
    make_sampler("dpm-solver++", SamplerOptions{.method = {{"churn", 1}}});
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("order, eta"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dpm_solver_options(to_json(DpmSolverOptions().order(3).eta(0.5))).order(), 3);
}

}  // namespace
}  // namespace gsdiff
