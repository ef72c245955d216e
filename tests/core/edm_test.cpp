// EDM's preconditioning as a parameterisation (Karras et al. 2022, Table 1): its coefficients, unit-variance input
// and target at every noise level, and the log-SNR inversion that maps EDM's noise levels to times.
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/options.h"
#include "core/registry.h"
#include "test_util.h"

using namespace gsdiff;
using J = nlohmann::json;
using torch::Tensor;

namespace {

std::unique_ptr<GaussianProcess> gauss(J cfg) {
  register_builtins();
  auto p = make_process(cfg);
  return std::unique_ptr<GaussianProcess>(dynamic_cast<GaussianProcess*>(p.release()));
}

Tensor col(std::vector<double> v) { return torch::tensor(v, torch::kFloat64).view({-1, 1}); }

}  // namespace

// VE (alpha = 1): x0_hat = c_skip x + c_out F and the input c_in x with Table 1's coefficients written out here;
// VP: the same on x / alpha at sigma / alpha. output_for inverts read_output.
TEST(Edm, PreconditioningIsTable1OnTheVeEquivalentState) {
  const double sd = 0.5;
  for (auto cfg : {J{{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0}},
                   J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 0}}}) {
    cfg["parameterization"] = "edm";
    auto g = gauss(cfg);
    auto gen = gsdiff::testing::seeded(3);
    auto t = torch::tensor({0.05, 0.3, 0.6, 0.9}, torch::kFloat64);
    auto xt = at::randn({4, 3}, gen, torch::kFloat64), F = at::randn({4, 3}, gen, torch::kFloat64);
    auto v = g->schedule().at(t);
    auto a = v.alpha.view({-1, 1}), s = v.sigma.view({-1, 1});
    auto st = s / a, x = xt / a;
    auto c_skip = sd * sd / (st * st + sd * sd), c_out = st * sd / torch::sqrt(st * st + sd * sd);
    auto c_in = 1.0 / torch::sqrt(st * st + sd * sd);
    EXPECT_TRUE(torch::allclose(g->read_output(F, xt, t), c_skip * x + c_out * F, 1e-12, 1e-12)) << cfg.dump();
    EXPECT_TRUE(torch::allclose(g->network_input(xt, t), c_in * x, 1e-12, 1e-12)) << cfg.dump();
    auto x0 = at::randn({4, 3}, gen, torch::kFloat64);
    EXPECT_TRUE(torch::allclose(g->read_output(g->output_for(x0, xt, t), xt, t), x0, 1e-10, 1e-10)) << cfg.dump();
  }
}

// EDM's design goal: with data of standard deviation sigma_data the network's input and its ideal target
// (x0 - c_skip x~) / c_out both have unit variance at every noise level. 40000 draws per level: 5 standard errors
// of a sample variance are 5 sqrt(2 / n) = 0.035.
TEST(Edm, InputAndTargetHaveUnitVarianceAtEveryLevel) {
  auto g = gauss({{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_min", 0.002}, {"sigma_max", 80.0},
                  {"parameterization", "edm"}, {"sigma_data", 0.7}});
  auto gen = gsdiff::testing::seeded(5);
  const int64_t n = 40000;
  for (double tv : {0.0, 0.2, 0.5, 0.8, 1.0}) {
    auto x0 = 0.7 * at::randn({n, 1}, gen, torch::kFloat64);
    auto t = torch::full({n}, tv, torch::kFloat64);
    auto xt = g->sample_xt(x0, t, gen);
    const double tol = 5 * std::sqrt(2.0 / n);
    EXPECT_NEAR(g->network_input(xt, t).var().item<double>(), 1.0, tol) << "t " << tv;
    EXPECT_NEAR(g->output_for(x0, xt, t).var().item<double>(), 1.0, tol) << "t " << tv;
  }
}

// time_at_logsnr inverts the schedule's log-SNR (to float64 bisection resolution) and clamps outside its range.
TEST(Edm, TimeAtLogSnrInvertsTheSchedule) {
  for (auto cfg : {J{{"name", "gaussian-ve"}, {"steps", 0}}, J{{"name", "gaussian-vp"}, {"schedule", "linear-beta"}, {"steps", 0}},
                   J{{"name", "gaussian-flow"}, {"steps", 0}}}) {
    auto g = gauss(cfg);
    auto t = torch::tensor({g->t_min(), 0.01, 0.3, 0.77, 1.0}, torch::kFloat64);
    auto lam = g->schedule().at(t).logsnr;
    EXPECT_TRUE(torch::allclose(g->time_at_logsnr(lam), t, 0, 1e-12)) << cfg.dump();
    auto out = g->time_at_logsnr(torch::tensor({1e6, -1e6}, torch::kFloat64));
    EXPECT_NEAR(out[0].item<double>(), g->t_min(), 1e-12);
    EXPECT_NEAR(out[1].item<double>(), 1.0, 1e-12);
  }
}

TEST(Edm, SigmaDataMustBePositive) {
  try {
    gauss({{"name", "gaussian-ve"}, {"parameterization", "edm"}, {"sigma_data", 0.0}});
    ADD_FAILURE() << "no error";
  } catch (const gsdiff::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'sigma_data'"), std::string::npos) << e.what();
  }
}
