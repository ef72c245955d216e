// gaussian-flow: the straight path's schedule in closed form, the velocity as the path's time derivative, exact
// conversions, the options' errors, and the exact-velocity bound of a Gaussian law against its closed form.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"

using namespace gsdiff;
using J = nlohmann::json;
using torch::Tensor;

namespace {

std::unique_ptr<GaussianProcess> flow(J cfg = J::object()) {
  register_builtins();
  cfg["name"] = "gaussian-flow";
  auto p = make_process(cfg);
  return std::unique_ptr<GaussianProcess>(dynamic_cast<GaussianProcess*>(p.release()));
}

Tensor f64(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

}  // namespace

// alpha = 1 - (1 - alpha_min) t and sigma = sigma_min + (1 - sigma_min) t (Lipman et al. 2023, time reversed);
// log-SNR and its derivative, f = alpha' / alpha and (sigma^2)' against central differences of those formulas.
TEST(FlowMatching, ScheduleIsTheStraightPath) {
  auto g = flow({{"alpha_min", 0.01}, {"sigma_min", 0.02}, {"steps", 0}});
  EXPECT_EQ(g->param(), Param::Velocity);  // the family's default
  EXPECT_DOUBLE_EQ(g->t_min(), 0.0);       // SNR(0) = 1 / sigma_min^2 is finite
  auto t = f64({0.0, 0.1, 0.5, 0.9, 1.0});
  auto a = 1.0 - 0.99 * t, s = 0.02 + 0.98 * t;
  auto v = g->schedule().at(t);
  EXPECT_TRUE(torch::allclose(v.alpha, a, 0, 1e-15));
  EXPECT_TRUE(torch::allclose(v.sigma, s, 0, 1e-15));
  EXPECT_TRUE(torch::allclose(v.logsnr, torch::log(a * a / (s * s)), 0, 1e-12));
  const double h = 1e-6;
  auto tm = f64({0.1, 0.5, 0.9}), tp = tm + h, tn = tm - h;
  auto vm = g->schedule().at(tm), vp = g->schedule().at(tp), vn = g->schedule().at(tn);
  EXPECT_TRUE(torch::allclose(vm.dlogsnr, (vp.logsnr - vn.logsnr) / (2 * h), 1e-7, 1e-6));
  EXPECT_TRUE(torch::allclose(vm.dlog_alpha, (torch::log(vp.alpha) - torch::log(vn.alpha)) / (2 * h), 1e-7, 1e-6));
  EXPECT_TRUE(torch::allclose(vm.dsigma2, (vp.sigma.square() - vn.sigma.square()) / (2 * h), 1e-7, 1e-6));
  auto [da, ds] = g->dalpha_dsigma(tm, torch::zeros({3}, torch::kFloat64));
  EXPECT_TRUE(torch::allclose(da, torch::full({3}, -0.99, torch::kFloat64), 0, 1e-14));
  EXPECT_TRUE(torch::allclose(ds, torch::full({3}, 0.98, torch::kFloat64), 0, 1e-14));
  EXPECT_FALSE(flow({{"sigma_min", 0.0}, {"t_min", 1e-4}, {"steps", 0}})->schedule().finite_snr_at_zero());
}

// The velocity target is d x_t / dt along the path of a fixed (x0, eps) (central differences of sample_xt's own
// draw), on the flow path and on VP cosine (the parameterisation is general); read_output inverts output_for.
TEST(FlowMatching, VelocityIsThePathsTimeDerivativeAndInvertsExactly) {
  register_builtins();
  for (auto cfg : {J{{"name", "gaussian-flow"}, {"steps", 0}},
                   J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 0}, {"parameterization", "velocity"}}}) {
    auto p = make_process(cfg);
    auto& g = dynamic_cast<const GaussianProcess&>(*p);
    auto gen = gsdiff::testing::seeded(1);
    auto x0 = at::randn({6, 3}, gen, torch::kFloat64), eps = at::randn({6, 3}, gen, torch::kFloat64);
    auto t = f64({0.05, 0.2, 0.4, 0.6, 0.8, 0.95});
    const double h = 1e-6;
    auto path = [&](const Tensor& tt) {
      auto [a, s] = g.alpha_sigma(tt, x0);
      return a * x0 + s * eps;
    };
    auto xt = path(t);
    auto u = g.output_for(x0, xt, t);                      // the velocity a network should predict
    auto fd = (path(t + h) - path(t - h)) / (2 * h);       // the path's derivative
    EXPECT_TRUE(torch::allclose(u, fd, 1e-6, 1e-6)) << cfg.dump() << (u - fd).abs().max();
    EXPECT_TRUE(torch::allclose(g.read_output(u, xt, t), x0, 1e-12, 1e-12)) << cfg.dump();
  }
}

// Bad options name the field and the allowed range.
TEST(FlowMatching, OptionErrorsNameTheField) {
  auto expect_error = [](J cfg, const std::string& needle) {
    try {
      flow(cfg);
      ADD_FAILURE() << "no error for " << cfg.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{"alpha_min", 0.0}}, "field 'alpha_min'");
  expect_error({{"sigma_min", 1.0}}, "field 'sigma_min'");
  expect_error({{"schedule", "cosine"}}, "linear-interpolant");
  expect_error({{"sigma_min", 0.0}, {"steps", 0}, {"t_min", 0.0}}, "t_min");
  expect_error({{"parameterization", "speed"}}, "velocity");
}

// The exact velocity of a Gaussian law N(m, s^2) per dimension gives, through negative_elbo (what `gsdiff eval` runs),
// the closed form of the continuous-time bound with a Gaussian decoder at t_min: E[-log N(x0; x0_hat(x_tmin),
// sigma/alpha)] + prior KL + the diffusion term int -1/2 SNR' E|x0 - E[x0|x_t]|^2 dt = 1/2 int -SNR' v_t dt with the
// posterior variance v_t = s^2 sigma^2 / (alpha^2 s^2 + sigma^2). Computed here by a fine trapezoid in log-SNR,
// independently of the library's quadrature; the bound also lies above -log p(x0)'s expectation, the entropy.
TEST(FlowMatching, ExactVelocityBoundMatchesTheGaussianClosedForm) {
  auto g = flow({{"steps", 0}, {"decoder", "gaussian"}, {"t_min", 1e-3}, {"sigma_min", 0.0}});
  const double m = 0.4, sd = 0.5;
  auto gen = gsdiff::testing::seeded(2);
  const int64_t B = 20000;
  auto x0 = m + sd * at::randn({B, 1}, gen, torch::kFloat64);
  DenoiseFn exact = [&](const Tensor& in, const Tensor& t) {
    auto a = g->at(t, in);
    auto xt = in * torch::sqrt(a.alpha * a.alpha + a.sigma * a.sigma);
    auto x0h = m + a.alpha * sd * sd / (a.alpha * a.alpha * sd * sd + a.sigma * a.sigma) * (xt - a.alpha * m);
    return g->output_for(x0h, xt, t);
  };
  auto terms = gsdiff::negative_elbo(*g, exact, x0, gen, ElboOptions().exact(true).quadrature_tol(1e-5));
  ASSERT_TRUE(terms.converged);
  // Diffusion term in closed form: 1/2 int_{t_min}^1 (-SNR'(t)) v_t dt, trapezoid on 200001 points.
  auto t = torch::linspace(g->t_min(), 1.0, 200001, torch::kFloat64);
  auto v = g->schedule().at(t);
  auto post = sd * sd * v.sigma.square() / (v.alpha.square() * sd * sd + v.sigma.square());
  auto integrand = -0.5 * v.dsnr() * post;
  const double dt = (1.0 - g->t_min()) / 200000.0;
  const double diffusion = ((integrand.sum() - 0.5 * (integrand[0] + integrand[-1])) * dt).item<double>();
  const double got = terms.diffusion.mean().item<double>();
  const double se = terms.diffusion.std().item<double>() / std::sqrt(double(B));
  EXPECT_NEAR(got, diffusion, 5 * se + terms.quadrature_error + 1e-6) << "closed form " << diffusion;
  const double entropy = 0.5 * std::log(2 * M_PI * M_E * sd * sd);
  const double total = terms.total().mean().item<double>();
  std::cout << "bound " << total << " nats (diffusion " << got << ", closed form " << diffusion << "), entropy "
            << entropy << "\n";
  EXPECT_GT(total, entropy - 5 * terms.total().std().item<double>() / std::sqrt(double(B)));
}
