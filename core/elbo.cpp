// The negative ELBO estimator: Monte Carlo or exact over time, discrete or continuous.
#include "core/elbo.h"

#include "core/quadrature.h"

namespace gsdiff {

using torch::Tensor;

Tensor time_like(const Tensor& x, double t) {
  return torch::full({x.size(0)}, t, torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
}

Tensor predict(const Process& p, const DenoiseFn& f, const Tensor& xt, const Tensor& t) {
  return p.read_output(f(p.network_input(xt, t), t), xt, t);
}

Tensor sample_times(int64_t batch, double t_min, bool low_discrepancy, torch::Generator& gen, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Tensor u;
  if (low_discrepancy) {
    auto u0 = at::rand({1}, gen, opts);
    u = torch::fmod(u0 + torch::arange(batch, opts) / double(batch), 1.0);
  } else {
    u = at::rand({batch}, gen, opts);
  }
  return (t_min + (1.0 - t_min) * u).to(device);
}

namespace {

// One discrete-time KL term per example at step indices i [B] (2 <= i <= T).
Tensor step_term(const Process& p, const DenoiseFn& f, const Tensor& x0, const Tensor& i, torch::Generator& gen) {
  auto T = double(p.steps());
  auto t = i.to(torch::kFloat64) / T, s = (i - 1).to(torch::kFloat64) / T;
  auto xt = p.sample_xt(x0, t, gen);
  return sum_dims(p.step_kl(x0, xt, s, t, predict(p, f, xt, t)));
}

Tensor integrand_term(const Process& p, const DenoiseFn& f, const Tensor& x0, const Tensor& t, torch::Generator& gen) {
  auto xt = p.sample_xt(x0, t, gen);
  return sum_dims(p.elbo_integrand(x0, xt, t, predict(p, f, xt, t)));
}

}  // namespace

ElboTerms negative_elbo(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                        const ElboOptions& opts) {
  const int64_t B = x0.size(0);
  auto dev = x0.device();
  ElboTerms out;
  out.prior = sum_dims(p.prior_kl(x0)).to(torch::kFloat64);

  // Reconstruction: -log p(x0 | x_{t_1}) (discrete) or at t_min (continuous).
  double t_rec = p.continuous_time() ? p.t_min() : p.grid_time(1);
  auto tr = time_like(x0, t_rec);
  auto xr = p.sample_xt(x0, tr, gen);
  out.reconstruction = sum_dims(p.reconstruction(x0, xr, tr, predict(p, f, xr, tr))).to(torch::kFloat64);

  auto diff = torch::zeros({B}, torch::TensorOptions().dtype(torch::kFloat64).device(dev));
  const int64_t n = std::max<int64_t>(1, opts.time_samples());
  if (!p.continuous_time()) {
    const int64_t T = p.steps();
    if (T >= 2 && opts.exact()) {
      for (int64_t i = 2; i <= T; ++i)
        diff += step_term(p, f, x0, torch::full({B}, i, torch::TensorOptions().dtype(torch::kLong).device(dev)), gen).to(torch::kFloat64);
    } else if (T >= 2) {
      for (int64_t k = 0; k < n; ++k) {
        auto i = at::randint(2, T + 1, {B}, gen, torch::TensorOptions().dtype(torch::kLong)).to(dev);
        diff += double(T - 1) / double(n) * step_term(p, f, x0, i, gen).to(torch::kFloat64);
      }
    }
  } else if (opts.exact()) {
    auto [nodes, weights] = gauss_legendre(int(n), p.t_min(), 1.0);
    for (size_t k = 0; k < nodes.size(); ++k)
      diff += weights[k] * integrand_term(p, f, x0, time_like(x0, nodes[k]), gen).to(torch::kFloat64);
  } else {
    for (int64_t k = 0; k < n; ++k) {
      auto t = sample_times(B, p.t_min(), opts.low_discrepancy(), gen, dev);
      diff += (1.0 - p.t_min()) / double(n) * integrand_term(p, f, x0, t, gen).to(torch::kFloat64);
    }
  }
  out.diffusion = diff;
  return out;
}

}  // namespace gsdiff
