// Exact denoisers for the sampler tests: Gaussian data (closed-form E[x0 | x_t]) and factorised categorical data.
#pragma once
#include <torch/torch.h>

#include "core/categorical.h"
#include "core/elbo.h"
#include "core/gaussian.h"
#include "core/registry.h"

namespace gsdiff::testing {

// x0 ~ N(m, diag(s^2)) on [B, D]; q(x_t | x0) = N(alpha x0, sigma^2) gives p_t = N(alpha m, alpha^2 s^2 + sigma^2)
// and E[x0 | x_t] = m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha m). Returned in the process's
// parameterisation from network_input = c(t) x_t (1 / sqrt(alpha^2 + sigma^2), or EDM's c_in); differentiable in its input.
inline DenoiseFn exact_gaussian_denoiser(const GaussianProcess& g, torch::Tensor m, torch::Tensor s) {
  return [&g, m, s](const torch::Tensor& net_in, const torch::Tensor& t) {
    auto x = net_in.to(torch::kFloat64);
    auto a = g.at(t.to(torch::kFloat64), x);
    auto xt = x / g.network_input(torch::ones_like(x), t.to(torch::kFloat64));  // network_input is x_t times c(t)
    auto var = a.alpha * a.alpha * s * s + a.sigma * a.sigma;
    auto x0 = m + a.alpha * s * s / var * (xt - a.alpha * m);
    return g.output_for(x0, xt, t.to(torch::kFloat64)).to(net_in.scalar_type());
  };
}

inline std::unique_ptr<GaussianProcess> make_gauss(nlohmann::json cfg) {
  register_builtins();
  auto p = make_process(cfg);
  return std::unique_ptr<GaussianProcess>(dynamic_cast<GaussianProcess*>(p.release()));
}

// Data x0 [B, L] with position l ~ Cat(px0[l]) independently. The exact p(x0 | x_t) factorises:
// p(x0_l = k | x_t) ∝ px0[l, k] q(x_t,l | x0_l = k). Under the Bayes parameterisation (read_output multiplies
// by q(x_t | x0)) the network for it returns log px0 [B, L, K], whatever x_t and t.
inline DenoiseFn exact_categorical_denoiser(const CategoricalProcess& p, torch::Tensor px0) {
  return [&p, px0](const torch::Tensor& xt, const torch::Tensor&) {
    return torch::log(px0).unsqueeze(0).expand({xt.size(0), px0.size(0), p.num_categories()}).contiguous();
  };
}

// Empirical per-position law of x [N, L] over K values: [L, K].
inline torch::Tensor empirical(const torch::Tensor& x, int64_t K) {
  auto oh = torch::one_hot(x.clamp(0, K), K + 1).to(torch::kFloat64).narrow(-1, 0, K);  // values >= K count as mass lost
  return oh.mean(0);
}

// Total-variation tolerance for an empirical law of n draws: 1/2 sum_k z sqrt(p_k (1 - p_k) / n).
inline double tv_tol(const torch::Tensor& p, int64_t n, double z = 5.0) {
  return 0.5 * z * torch::sqrt(p * (1 - p) / double(n)).sum().item<double>();
}

}  // namespace gsdiff::testing
