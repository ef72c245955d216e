// Helpers for the discrete-process tests: process construction in float64, exact denoisers, quadrature.
#pragma once
#include <torch/torch.h>

#include "core/categorical.h"
#include "core/quadrature.h"
#include "core/registry.h"

namespace gsdiff::testing {

inline std::unique_ptr<CategoricalProcess> make_cat(nlohmann::json cfg) {
  cfg["dtype"] = "float64";
  auto p = make_process(cfg);
  auto* c = dynamic_cast<CategoricalProcess*>(p.release());
  return std::unique_ptr<CategoricalProcess>(c);
}

inline torch::Tensor tfull(int64_t n, double v) { return torch::full({n}, v, torch::kFloat64); }

// Composite Gauss–Legendre over [0, 1], graded towards both ends (integrands may vary fast there).
inline std::vector<std::pair<double, double>> graded_nodes(int per_panel = 24) {
  std::vector<double> edges{0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99, 0.999, 1 - 1e-4, 1 - 1e-5, 1 - 1e-6, 1};
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i + 1 < edges.size(); ++i) {
    auto [x, w] = gauss_legendre(per_panel, edges[i], edges[i + 1]);
    for (int k = 0; k < per_panel; ++k) out.push_back({x[k], w[k]});
  }
  return out;
}

// Dense Qbar_t [V, V] of a process at one time.
inline torch::Tensor Qbar(const CategoricalProcess& p, double t) { return p.qbar(tfull(1, t))[0]; }

// Exact p(x0 | x_t) for one dimension with data law px0 [K]: [V, K] (rows of unreachable x_t are 0).
inline torch::Tensor exact_denoiser(const CategoricalProcess& p, const torch::Tensor& px0, double t) {
  auto K = p.num_categories();
  auto joint = px0.unsqueeze(1) * Qbar(p, t).narrow(0, 0, K);  // [K, V]  p(x0) q(x_t | x0)
  auto norm = joint.sum(0, true);
  return (joint / torch::where(norm > 0, norm, torch::ones_like(norm))).t();  // [V, K]
}

// The prior-mismatch term E_{q(x_1 | x0)}[log q(x_1) / prior(x_1)] for one dimension.
inline double prior_mismatch(const CategoricalProcess& p, const torch::Tensor& px0, int64_t x0) {
  auto Q1 = Qbar(p, 1.0);
  auto K = p.num_categories();
  auto q1 = (px0.unsqueeze(1) * Q1.narrow(0, 0, K)).sum(0);  // q(x_1) [V]
  auto prior = p.prior_probs();
  auto row = Q1[x0];
  auto term = torch::where(row > 0, row * (torch::log(q1) - torch::log(prior)), torch::zeros_like(row));
  return term.sum().item<double>();
}

}  // namespace gsdiff::testing
