// Probability-flow ODE likelihood (RK4 / Heun) with Hutchinson or exact divergence, and 8-bit dequantisation.
#include "sample/ode_likelihood.h"

#include <cmath>
#include <stdexcept>

#include "core/distributions.h"
#include "core/gaussian.h"

namespace gsdiff {

using torch::Tensor;

namespace {

struct Deriv {
  Tensor v, div;  // [B, ...], [B]
};

}  // namespace

OdeLikelihood ode_nll(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                      const OdeLikelihoodOptions& o) {
  auto* g = dynamic_cast<const GaussianProcess*>(&p);
  if (!g || p.num_categories() > 0)  // gaussian-embed's data are tokens: its likelihood is the ELBO's decoder
    throw std::invalid_argument("ode_nll: needs a Gaussian process on real-valued data, got " + p.name());
  if (o.steps() < 1) throw std::invalid_argument("ode_nll: steps must be >= 1");
  const std::string& tr = o.trace();
  if (tr != "rademacher" && tr != "gaussian" && tr != "exact")
    throw std::invalid_argument("ode_nll: trace must be rademacher, gaussian or exact, got " + tr);
  const int64_t B = x0.size(0);
  const double t0 = o.t_start() >= 0 ? o.t_start() : p.t_min();
  auto tdev = torch::TensorOptions().dtype(torch::kFloat64).device(x0.device());

  Tensor eps;  // fixed Hutchinson noise [B, ...]
  if (tr == "gaussian") eps = randn_like_gen(x0.to(torch::kFloat64), gen);
  if (tr == "rademacher")
    eps = 2.0 * at::bernoulli(torch::full_like(x0, 0.5, torch::kFloat64), gen) - 1.0;

  // v(x, t) and div v at x (a fresh leaf; the graph is freed after each evaluation).
  auto F = [&](const Tensor& x_in, double t) -> Deriv {
    torch::AutoGradMode grad_on(true);
    auto x = x_in.detach().requires_grad_(true);
    auto tt = torch::full({B}, t, tdev);
    auto a = g->at(tt, x);  // alpha, sigma, f, g2 broadcast against x
    // The state is float64; the network sees the caller's dtype (x0's), with gradients through the cast.
    auto x0h = predict(*g, f, x.to(x0.scalar_type()), tt).to(x.scalar_type());
    auto v = a.f() * x - 0.5 * a.g2() * (-(x - a.alpha * x0h) / (a.sigma * a.sigma));
    Tensor div;
    if (tr == "exact") {
      auto vf = v.reshape({B, -1});
      const int64_t D = vf.size(1);
      div = torch::zeros({B}, tdev);
      for (int64_t d = 0; d < D; ++d) {
        auto gd = torch::autograd::grad({vf.select(1, d).sum()}, {x}, {}, /*retain_graph=*/d + 1 < D)[0];
        div = div + gd.reshape({B, -1}).select(1, d).to(torch::kFloat64);
      }
    } else {
      auto gd = torch::autograd::grad({(v * eps.to(v.scalar_type())).sum()}, {x})[0];  // eps^T dv/dx
      div = sum_dims(gd * eps.to(gd.scalar_type())).to(torch::kFloat64);
    }
    return {v.detach(), div.detach()};
  };

  auto x = x0.to(torch::kFloat64);
  auto delta = torch::zeros({B}, tdev);
  const double h = (1.0 - t0) / double(o.steps());
  for (int64_t k = 0; k < o.steps(); ++k) {
    const double t = t0 + k * h;
    if (o.integrator() == "rk4") {
      auto k1 = F(x, t);
      auto k2 = F(x + 0.5 * h * k1.v, t + 0.5 * h);
      auto k3 = F(x + 0.5 * h * k2.v, t + 0.5 * h);
      auto k4 = F(x + h * k3.v, t + h);
      x = x + h / 6.0 * (k1.v + 2.0 * k2.v + 2.0 * k3.v + k4.v);
      delta = delta + h / 6.0 * (k1.div + 2.0 * k2.div + 2.0 * k3.div + k4.div);
    } else if (o.integrator() == "heun") {
      auto k1 = F(x, t);
      auto k2 = F(x + h * k1.v, t + h);
      x = x + 0.5 * h * (k1.v + k2.v);
      delta = delta + 0.5 * h * (k1.div + k2.div);
    } else {
      throw std::invalid_argument("ode_nll: integrator must be rk4 or heun, got " + o.integrator());
    }
  }
  const double sp = g->prior_std();
  auto z = x / sp;
  auto prior = sum_dims(-0.5 * z * z - std::log(sp) - 0.5 * std::log(2.0 * M_PI));
  return {-(prior + delta), prior, delta, x};
}

Tensor dequantize_uniform(const Tensor& levels, torch::Generator& gen) {
  auto v = levels.to(torch::kFloat32);
  auto u = at::rand(v.sizes(), gen, v.options());
  return (v + u) / 128.0 - 1.0;
}

double dequantized_bits_per_dim(double nll, int64_t dims) {
  return (nll / double(dims) + std::log(128.0)) / std::log(2.0);
}

}  // namespace gsdiff
