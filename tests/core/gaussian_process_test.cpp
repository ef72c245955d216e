// Gaussian processes: posterior = Bayes by joint conditioning, composition, ELBO closed forms and limits.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"

using namespace gsdiff;
using gsdiff::testing::mc_tol;
using J = nlohmann::json;

namespace {
std::vector<J> configs(int64_t T) {
  return {J{{"name", "gaussian-vp"}, {"schedule", "linear-beta"}, {"steps", T}},
          J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", T}},
          J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", T}},
          J{{"name", "gaussian-ve"}, {"steps", T}},
          J{{"name", "gaussian-subvp"}, {"steps", T}}};
}
torch::Tensor full(int64_t n, double v) { return torch::full({n}, v, torch::kFloat64); }
}  // namespace

class GaussianProcessTest : public gsdiff::testing::Seeded {};

TEST_F(GaussianProcessTest, PosteriorEqualsConditionedJointGaussian) {
  auto o = torch::kFloat64;
  auto x0 = torch::tensor({0.7, -0.3, 0.1}, o), xt = torch::tensor({0.2, 1.5, -0.9}, o);
  for (auto& cfg : configs(0)) {
    cfg["t_min"] = 1e-3;
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    for (auto [s, t] : {std::pair{0.1, 0.4}, {0.5, 0.51}, {0.02, 0.98}}) {
      // Joint of (x_s, x_t) given x0: x_t = a_ts x_s + s_ts e, a_ts = a_t / a_s, s_ts^2 = s_t^2 - a_ts^2 s_s^2.
      auto vs = g.schedule().at(full(1, s)), vt = g.schedule().at(full(1, t));
      double as = vs.alpha.item<double>(), ss = vs.sigma.item<double>(), at = vt.alpha.item<double>(), st = vt.sigma.item<double>();
      double ats = at / as, cov = ats * ss * ss;  // Cov(x_s, x_t | x0)
      auto mean = as * x0 + cov / (st * st) * (xt - at * x0);
      double var = ss * ss - cov * cov / (st * st);
      auto [pm, pv] = g.posterior(x0, xt, full(3, s), full(3, t));
      EXPECT_TRUE(torch::allclose(pm, mean, 1e-9, 1e-9)) << cfg.dump() << " s=" << s;
      EXPECT_NEAR(pv[0].item<double>(), var, 1e-9 * std::max(1.0, var)) << cfg.dump() << " s=" << s;
    }
  }
}

TEST_F(GaussianProcessTest, CompositionThroughPosteriorKeepsMarginals) {
  // x_t ~ q(x_t | x0) then x_s ~ q(x_s | x_t, x0) must have the moments of q(x_s | x0).
  const int64_t n = 200000;
  for (auto& cfg : configs(0)) {
    cfg["t_min"] = 1e-3;
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    auto x0 = torch::full({n}, 0.6, torch::kFloat64);
    double s = 0.3, t = 0.7;
    auto xt = g.sample_xt(x0, full(n, t), gen);
    auto xs = g.sample_reverse(xt, full(n, s), full(n, t), x0, gen);
    auto v = g.schedule().at(full(1, s));
    double m = v.alpha.item<double>() * 0.6, sd = v.sigma.item<double>();
    EXPECT_NEAR(xs.mean().item<double>(), m, mc_tol(sd, n)) << cfg.dump();
    EXPECT_NEAR(xs.var().item<double>(), sd * sd, mc_tol(sd * sd * std::sqrt(2.0), n)) << cfg.dump();
    // And x_t itself has the moments of q(x_t | x0).
    auto vt = g.schedule().at(full(1, t));
    EXPECT_NEAR(xt.mean().item<double>(), vt.alpha.item<double>() * 0.6, mc_tol(vt.sigma.item<double>(), n));
  }
}

namespace {
// A fixed toy "model" that misses x0 by delta(t) = 0.1 + 0.3 t: every term is deterministic.
DenoiseFn offset_model(const GaussianProcess& g, const torch::Tensor& x0, bool time_dependent) {
  return [&g, x0, time_dependent](const torch::Tensor& net_in, const torch::Tensor& t) {
    auto d = time_dependent ? (0.1 + 0.3 * t) : torch::full_like(t, 0.05);
    auto x0_hat = x0 + per_example(d, x0).to(x0.scalar_type());
    auto v = g.at(t, x0);
    auto xt = net_in * torch::sqrt(v.alpha * v.alpha + v.sigma * v.sigma);  // undo network_input
    return output_from_x0(g.param(), x0_hat, xt, v.alpha, v.sigma);
  };
}
}  // namespace

TEST_F(GaussianProcessTest, OracleTermsVanishAndOffsetTelescopes) {
  auto o = torch::kFloat64;
  auto x0 = torch::tensor({{-1.0, 0.0039215686 * 5, 1.0}}, o);  // on the 256-level grid
  for (auto& cfg : configs(0)) {
    cfg["t_min"] = 1e-3;
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    auto t = full(1, 0.4), s = full(1, 0.3);
    auto xt = g.sample_xt(x0, t, gen);
    EXPECT_EQ(g.step_kl(x0, xt, s, t, x0).abs().max().item<double>(), 0.0);
    EXPECT_EQ(g.elbo_integrand(x0, xt, t, x0).abs().max().item<double>(), 0.0);
    // Continuous: int_{t_min}^1 1/2 (-dSNR/dt) delta^2 dt = 1/2 (SNR(t_min) - SNR(1)) delta^2, by quadrature.
    const double delta = 0.05;
    auto f = offset_model(g, x0, false);
    auto terms = negative_elbo(g, f, x0, gen, ElboOptions().exact(true).time_samples(200));
    double snr0 = g.schedule().at(full(1, 1e-3)).snr().item<double>(), snr1 = g.schedule().at(full(1, 1.0)).snr().item<double>();
    double closed = 0.5 * (snr0 - snr1) * delta * delta * 3;
    EXPECT_NEAR(terms.diffusion.item<double>(), closed, 1e-6 * closed) << cfg.dump();
  }
  for (auto& cfg : configs(50)) {
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    auto f = offset_model(g, x0, false);
    auto terms = negative_elbo(g, f, x0, gen, ElboOptions().exact(true));
    double snr1 = g.schedule().at(full(1, 1.0 / 50)).snr().item<double>(), snrT = g.schedule().at(full(1, 1.0)).snr().item<double>();
    double closed = 0.5 * (snr1 - snrT) * 0.05 * 0.05 * 3;  // sum_{i=2..T} telescopes to SNR(t_1) - SNR(1)
    EXPECT_NEAR(terms.diffusion.item<double>(), closed, 1e-9 * closed) << cfg.dump();
  }
}

TEST_F(GaussianProcessTest, DiscreteElboApproachesContinuousMonotonically) {
  auto o = torch::kFloat64;
  auto x0 = (torch::tensor({{3, 100, 128, 250}}) / 127.5 - 1.0).to(o);
  auto cont_cfg = J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}, {"t_min", 0.0}, {"parameterization", "x0"}};
  auto pc = make_process(cont_cfg);
  auto& gc = dynamic_cast<GaussianProcess&>(*pc);
  double cont = negative_elbo(gc, offset_model(gc, x0, true), x0, gen, ElboOptions().exact(true).time_samples(400)).total().item<double>();
  double prev_gap = 1e300;
  for (int64_t T : {10, 100, 1000}) {
    auto cfg = cont_cfg;
    cfg["steps"] = T;
    auto pd = make_process(cfg);
    auto& gd = dynamic_cast<GaussianProcess&>(*pd);
    double disc = negative_elbo(gd, offset_model(gd, x0, true), x0, gen, ElboOptions().exact(true)).total().item<double>();
    double gap = std::abs(disc - cont);
    EXPECT_LT(gap, prev_gap) << "T=" << T;
    prev_gap = gap;
  }
  EXPECT_LT(prev_gap, 0.01 * cont);  // at T = 1000 within 1% of the continuous bound
}

TEST(GaussianRegistry, ErrorsNameTheFieldAndTheAllowedValues) {
  auto msg = [](const J& cfg) {
    try {
      make_process(cfg);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg({{"name", "gaussian-xx"}}).find("known processes: "), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-xx"}}).find("gaussian-vp"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"beta_max", 1.5}}).find("'beta_max' must lie in (0, 1)"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"steps", -3}}).find("'steps' must be 0 (continuous time) or T >= 1"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-ve"}, {"sigma_min", 60.0}}).find("sigma_min >= sigma_max"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"schedule", "cosinus"}}).find("must be one of linear-beta, cosine, linear-logsnr"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"stpes", 3}}).find("'stpes' is not a known field"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"steps", "many"}}).find("'steps' has the wrong type"), std::string::npos);
  EXPECT_NE(msg({{"name", "gaussian-vp"}, {"steps", 0}, {"t_min", 0.0}}).find("'t_min' must be > 0"), std::string::npos);
  EXPECT_EQ(msg({{"name", "gaussian-vp"}, {"steps", 0}}), "no error");  // t_min defaults to 1e-5 there
}
