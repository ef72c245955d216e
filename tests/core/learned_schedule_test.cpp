// VDM's learned log-SNR schedule: its form, the ELBO's invariance to its shape, and its variance gradient.
#include <gtest/gtest.h>

#include <cmath>

#include "core/elbo.h"
#include "core/gaussian.h"
#include "core/learned_schedule.h"
#include "core/options.h"
#include "core/registry.h"
#include "test_util.h"

namespace {

using gsdiff::GaussianProcess;
using gsdiff::LearnedLogSnrSchedule;
using J = nlohmann::json;
using torch::Tensor;

constexpr int64_t kHidden = 4;

std::unique_ptr<GaussianProcess> make_learned(std::vector<double> values = {}, bool endpoints = true) {
  gsdiff::register_builtins();
  J cfg = {{"name", "gaussian-vp"}, {"schedule", "learned-logsnr"}, {"steps", 0}, {"parameterization", "x0"},
           {"decoder", "gaussian"}, {"logsnr_max", 8.0}, {"logsnr_min", -6.0}, {"schedule_hidden", kHidden},
           {"learn_endpoints", endpoints}};
  if (!values.empty()) cfg["schedule_values"] = values;
  auto p = gsdiff::make_process(cfg);
  return std::unique_ptr<GaussianProcess>(dynamic_cast<GaussianProcess*>(p.release()));
}

// A bent shape: the initial values with large sigmoid weights (values: lmax, lmin, w0, a, b, c).
std::vector<double> bent_values() {
  std::vector<double> v = {8.0, -6.0, -1.0};
  for (int j = 0; j < kHidden; ++j) v.push_back(1.5 + j);
  for (int j = 0; j < kHidden; ++j) v.push_back(12.0);
  for (int j = 0; j < kHidden; ++j) v.push_back(0.15 + 0.2 * j);
  return v;
}

// The exact denoiser of data N(m, s^2) per dimension as a network conditioned on the noise level it is given (the
// schedule's g(t), from which lambda = lambda_max - (lambda_max - lambda_min) g): what VDM's network sees.
gsdiff::DenoiseFn level_denoiser(const GaussianProcess& g, double m, double s) {
  return [&g, m, s](const Tensor& xt, const Tensor& level) {
    auto v = g.options().schedule_values();
    const double lmax = v.empty() ? g.options().logsnr_max() : v[0], lmin = v.empty() ? g.options().logsnr_min() : v[1];
    auto lam = (lmax - (lmax - lmin) * level.to(torch::kFloat64)).view({-1, 1});
    auto a2 = torch::sigmoid(lam), s2 = torch::sigmoid(-lam);
    auto a = a2.sqrt();
    return (m + a * s * s / (a2 * s * s + s2) * (xt.to(torch::kFloat64) - a * m)).to(xt.scalar_type());  // x0_hat
  };
}

// lambda(0) = lambda_max and lambda(1) = lambda_min exactly, lambda strictly decreasing, alpha^2 + sigma^2 = 1, the
// log-SNR derivative, f and (sigma^2)' equal central differences (h = 1e-6: error ~ h^2 lambda''' + 1e-16 / h); the
// initial schedule is linear log-SNR within 1% of the range; a bent one is not.
TEST(LearnedSchedule, EndpointsMonotoneDerivativesAndLinearStart) {
  for (auto values : {std::vector<double>{}, bent_values()}) {
    auto p = make_learned(values);
    const auto& s = p->schedule();
    auto t = torch::linspace(0, 1, 201, torch::kFloat64);
    auto v = s.at(t);
    EXPECT_NEAR(v.logsnr[0].item<double>(), 8.0, 1e-6);
    EXPECT_NEAR(v.logsnr[200].item<double>(), -6.0, 1e-6);
    EXPECT_TRUE((v.logsnr.narrow(0, 1, 200) < v.logsnr.narrow(0, 0, 200)).all().item<bool>());
    EXPECT_TRUE(torch::allclose(v.alpha.square() + v.sigma.square(), torch::ones_like(t), 0, 1e-12));
    auto ti = torch::linspace(0.01, 0.99, 50, torch::kFloat64);
    const double h = 1e-6;
    auto vp = s.at(ti + h), vm = s.at(ti - h), vi = s.at(ti);
    EXPECT_TRUE(torch::allclose(vi.dlogsnr, (vp.logsnr - vm.logsnr) / (2 * h), 1e-6, 1e-5));
    EXPECT_TRUE(torch::allclose(vi.f(), (torch::log(vp.alpha) - torch::log(vm.alpha)) / (2 * h), 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(vi.dsigma2, (vp.sigma.square() - vm.sigma.square()) / (2 * h), 1e-6, 1e-6));
    auto linear = 8.0 - 14.0 * t;
    const double dev = (v.logsnr - linear).abs().max().item<double>();
    if (values.empty()) EXPECT_LT(dev, 0.14) << dev;
    else EXPECT_GT(dev, 1.0) << dev;
  }
}

// VDM's invariance (eq. 17): the continuous-time diffusion term is an integral over lambda, so with common noise and
// a network conditioned on the level, two shapes with the same endpoints give the same bound example by example.
// Through negative_elbo's adaptive quadrature (what `gsdiff eval --exact` runs): the per-example difference between
// the linear and the bent schedule is within the two reported quadrature errors (nats per dimension, times the 4
// dimensions) for every one of 64 examples; the prior and reconstruction terms, which see only the endpoints, agree
// to float error.
TEST(LearnedSchedule, DiffusionTermIsInvariantToTheShape) {
  auto lin = make_learned(), bent = make_learned(bent_values());
  auto gen0 = gsdiff::testing::seeded(3);
  auto x0 = 0.3 + 0.5 * torch::randn({64, 4}, gen0, torch::kFloat64);
  auto opts = gsdiff::ElboOptions().exact(true).quadrature_tol(1e-5).max_nodes(4096);
  auto g1 = gsdiff::testing::seeded(8), g2 = gsdiff::testing::seeded(8);
  auto a = gsdiff::negative_elbo(*lin, level_denoiser(*lin, 0.3, 0.4), x0, g1, opts);
  auto b = gsdiff::negative_elbo(*bent, level_denoiser(*bent, 0.3, 0.4), x0, g2, opts);
  ASSERT_TRUE(a.converged && b.converged) << a.quadrature_error << " " << b.quadrature_error;
  const double tol = 4 * (a.quadrature_error + b.quadrature_error) + 1e-9;
  EXPECT_LT((a.diffusion - b.diffusion).abs().max().item<double>(), tol);
  EXPECT_GT(a.diffusion.abs().mean().item<double>(), 100 * tol);  // not trivially zero
  EXPECT_TRUE(torch::allclose(a.prior, b.prior, 1e-9, 1e-12));
  EXPECT_TRUE(torch::allclose(a.reconstruction, b.reconstruction, 1e-9, 1e-12));
}

// The variance gradient (VDM App. I.2) as the trainer applies it: with set_variance_target(L) before the backward of
// mean(L), the shape parameters receive d mean(L^2) / d theta and the endpoints d mean(L) / d theta; both computed
// independently here by autograd on a second forward with the same seed (float32 data and outputs, float64 schedule:
// the two passes agree to summation order, 1e-5 relative).
TEST(LearnedSchedule, ShapeGetsTheGradientOfTheSecondMomentEndpointsTheElbos) {
  auto p = make_learned(bent_values());
  auto f = level_denoiser(*p, 0.2, 0.5);
  gsdiff::DenoiseFn off = [&](const Tensor& x, const Tensor& level) { return f(x, level) + 0.1; };  // an imperfect net
  auto gen0 = gsdiff::testing::seeded(4);
  auto x0 = 0.2 + 0.5 * torch::randn({256, 4}, gen0, torch::kFloat32);
  Tensor times;
  auto loss = [&](uint64_t seed) {
    auto g = gsdiff::testing::seeded(seed);
    auto s = gsdiff::sample_negative_elbo(*p, off, x0, g, gsdiff::OneCallOptions());
    times = s.t;
    return s.terms.total();
  };
  auto params = p->learnable_parameters();  // lmax, lmin, w0, a, b, c
  ASSERT_EQ(params.size(), 6u);
  for (auto& q : params) q.mutable_grad() = Tensor();
  auto L = loss(9);
  p->set_variance_target(times, L);
  L.mean().backward();
  p->set_variance_target({}, {});
  auto L2 = loss(9);
  std::vector<Tensor> shape(params.begin() + 2, params.end()), ends(params.begin(), params.begin() + 2);
  auto want_shape = torch::autograd::grad({L2.square().mean()}, shape, {}, /*retain_graph=*/true);
  auto want_ends = torch::autograd::grad({L2.mean()}, ends);
  for (size_t i = 0; i < shape.size(); ++i)
    EXPECT_TRUE(torch::allclose(shape[i].grad(), want_shape[i], 1e-5, 1e-6)) << i << shape[i].grad() << want_shape[i];
  for (size_t i = 0; i < ends.size(); ++i)
    EXPECT_TRUE(torch::allclose(ends[i].grad(), want_ends[i], 1e-5, 1e-6)) << i << ends[i].grad() << want_ends[i];
  EXPECT_GT(want_shape[1].abs().sum().item<double>(), 0.0);
}

TEST(LearnedSchedule, OptionsAreChecked) {
  gsdiff::register_builtins();
  J base = {{"name", "gaussian-vp"}, {"schedule", "learned-logsnr"}, {"steps", 0}, {"schedule_hidden", 2}};
  auto bad = [&](J extra, const std::string& field) {
    J c = base;
    c.update(extra);
    try {
      gsdiff::make_process(c);
      ADD_FAILURE() << c.dump();
    } catch (const gsdiff::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  bad({{"schedule_values", {1.0, 2.0}}}, "'schedule_values'");
  bad({{"steps", 100}}, "'steps'");
  bad({{"schedule_hidden", 0}}, "'schedule_hidden'");
  auto p = make_learned(bent_values(), false);
  EXPECT_EQ(p->learnable_parameters().size(), 4u);  // endpoints fixed
  auto j = p->options_json();  // the live values round-trip through the registry
  auto q = gsdiff::make_process(j);
  EXPECT_EQ(q->options_json(), j);
}

}  // namespace
