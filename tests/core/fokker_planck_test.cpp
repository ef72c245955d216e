// Gaussian SDEs: Fokker–Planck holds for mixture marginals; forward EM, reverse SDE and PF-ODE recover them.
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"

using namespace gsdiff;
using gsdiff::testing::mc_tol;
using J = nlohmann::json;
using torch::Tensor;

namespace {

// 1-D mixture p0 = sum_k w_k N(mu_k, s_k^2); its marginal p_t = sum_k w_k N(alpha mu_k, alpha^2 s_k^2 + sigma^2).
struct Mixture {
  std::vector<double> w{0.3, 0.7}, mu{-1.0, 0.8}, s{0.2, 0.3};
  // density and its x-derivatives at x for a given (alpha, sigma)
  void eval(const Tensor& x, double a, double sg, Tensor& p, Tensor& dp, Tensor& d2p) const {
    p = torch::zeros_like(x), dp = torch::zeros_like(x), d2p = torch::zeros_like(x);
    for (size_t k = 0; k < w.size(); ++k) {
      double m = a * mu[k], v = a * a * s[k] * s[k] + sg * sg;
      auto n = w[k] * torch::exp(-(x - m).square() / (2 * v)) / std::sqrt(2 * M_PI * v);
      p = p + n;
      dp = dp - n * (x - m) / v;
      d2p = d2p + n * ((x - m).square() / (v * v) - 1.0 / v);
    }
  }
  double mean() const { return w[0] * mu[0] + w[1] * mu[1]; }
  double var() const {
    double m2 = 0;
    for (size_t k = 0; k < w.size(); ++k) m2 += w[k] * (s[k] * s[k] + mu[k] * mu[k]);
    return m2 - mean() * mean();
  }
  Tensor sample(int64_t n, torch::Generator& gen) const {
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    auto comp = at::rand({n}, gen, o) < w[0];
    auto z = at::randn({n}, gen, o);
    return torch::where(comp, mu[0] + s[0] * z, mu[1] + s[1] * z);
  }
  // score of p_t at x
  Tensor score(const Tensor& x, double a, double sg) const {
    Tensor p, dp, d2p;
    eval(x, a, sg, p, dp, d2p);
    return dp / p;
  }
};

std::vector<J> sde_configs() {
  return {J{{"name", "gaussian-vp"}, {"schedule", "linear-beta"}, {"steps", 0}},
          J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 0}},
          J{{"name", "gaussian-ve"}, {"steps", 0}, {"sigma_max", 5.0}},
          J{{"name", "gaussian-subvp"}, {"steps", 0}}};
}

double scalar(const Tensor& t) { return t.item<double>(); }
Tensor full1(double v) { return torch::full({1}, v, torch::kFloat64); }

}  // namespace

class FokkerPlanck : public gsdiff::testing::Seeded {};

TEST_F(FokkerPlanck, MixtureMarginalSatisfiesTheEquation) {
  Mixture mix;
  auto x = torch::linspace(-2.5, 2.5, 21, torch::kFloat64);
  for (auto& cfg : sde_configs()) {
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    for (double t : {0.1, 0.3, 0.6}) {
      const double h = 1e-5;
      auto v = g.schedule().at(full1(t)), vp = g.schedule().at(full1(t + h)), vm = g.schedule().at(full1(t - h));
      Tensor pt, dp, d2p, pp, pm, u1, u2;
      mix.eval(x, scalar(v.alpha), scalar(v.sigma), pt, dp, d2p);
      mix.eval(x, scalar(vp.alpha), scalar(vp.sigma), pp, u1, u2);
      mix.eval(x, scalar(vm.alpha), scalar(vm.sigma), pm, u1, u2);
      auto dpdt = (pp - pm) / (2 * h);
      double f = scalar(v.f()), g2 = scalar(v.g2());
      // dp/dt = -d(f x p)/dx + 1/2 g^2 d2p/dx2 = -f p - f x dp/dx + 1/2 g^2 d2p/dx2
      auto rhs = -f * pt - f * x * dp + 0.5 * g2 * d2p;
      EXPECT_TRUE(torch::allclose(dpdt, rhs, 1e-5, 1e-6)) << cfg.dump() << " t=" << t
                                                           << " max err " << (dpdt - rhs).abs().max().item<double>();
    }
  }
}

TEST_F(FokkerPlanck, ForwardEulerMaruyamaReproducesTheMarginal) {
  Mixture mix;
  const int64_t n = 100000, steps = 1000;
  for (auto& cfg : sde_configs()) {
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    const double t_end = 0.5, dt = t_end / steps;
    auto x = mix.sample(n, gen);
    for (int64_t i = 0; i < steps; ++i) {
      auto tt = full1((i + 0.5) * dt);
      double f = scalar(g.drift_coef(tt)), g2 = scalar(g.diffusion_sq(tt));
      x = x + f * x * dt + std::sqrt(g2 * dt) * at::randn({n}, gen, x.options());
    }
    auto v = g.schedule().at(full1(t_end));
    double a = scalar(v.alpha), sg = scalar(v.sigma);
    double m = a * mix.mean(), var = a * a * mix.var() + sg * sg;
    EXPECT_NEAR(x.mean().item<double>(), m, mc_tol(std::sqrt(var), n) + 2e-3) << cfg.dump();
    EXPECT_NEAR(x.var().item<double>(), var, mc_tol(var * 2.0, n) + 2e-3 * var) << cfg.dump();
  }
}

TEST_F(FokkerPlanck, ReverseSdeAndProbabilityFlowReturnTheMixture) {
  Mixture mix;
  const int64_t n = 20000, steps = 1000;
  for (auto& cfg : sde_configs()) {
    auto p = make_process(cfg);
    auto& g = dynamic_cast<GaussianProcess&>(*p);
    const double t0 = 1e-3, dt = (1.0 - t0) / steps;
    auto v1 = g.schedule().at(full1(1.0));
    // Start from the exact marginal p_1 (for VP this is ~N(0, 1)).
    auto x_sde = scalar(v1.alpha) * mix.sample(n, gen) + scalar(v1.sigma) * at::randn({n}, gen, torch::kFloat64);
    auto x_ode = x_sde.clone();
    auto drift = [&](const Tensor& x, double t, double k) {  // f x - k g^2 score  (k = 1 SDE, 1/2 ODE)
      auto v = g.schedule().at(full1(t));
      return scalar(v.f()) * x - k * scalar(v.g2()) * mix.score(x, scalar(v.alpha), scalar(v.sigma));
    };
    for (int64_t i = 0; i < steps; ++i) {
      double t = 1.0 - i * dt, s = t - dt;
      double g2 = scalar(g.schedule().at(full1(t)).g2());
      x_sde = x_sde - drift(x_sde, t, 1.0) * dt + std::sqrt(g2 * dt) * at::randn({n}, gen, torch::kFloat64);
      auto d1 = drift(x_ode, t, 0.5);  // Heun on the probability-flow ODE
      auto xe = x_ode - d1 * dt;
      x_ode = x_ode - 0.5 * (d1 + drift(xe, s, 0.5)) * dt;
    }
    double m = mix.mean(), var = mix.var();
    for (auto* x : {&x_sde, &x_ode}) {
      EXPECT_NEAR(x->mean().item<double>(), m, mc_tol(std::sqrt(var), n) + 0.01) << cfg.dump();
      EXPECT_NEAR(x->var().item<double>(), var, mc_tol(2 * var, n) + 0.02 * var) << cfg.dump();
      // Mass of the left component (x < -0.2) equals its weight 0.3.
      double left = (*x < -0.2).to(torch::kFloat64).mean().item<double>();
      EXPECT_NEAR(left, 0.3, mc_tol(std::sqrt(0.21), n) + 0.01) << cfg.dump();
    }
  }
}
