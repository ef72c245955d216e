// Discrete flow matching's mixture paths: the conditional and posterior-mean rates and their CTMC bound.
#include "core/discrete_flow.h"

#include <cmath>
#include <stdexcept>

namespace gsdiff {

using torch::Tensor;

namespace {

int64_t states_of(const DiscreteFlowOptions& o) { return o.noise() == "mask" ? o.base().K() + 1 : o.base().K(); }

Tensor noise_law(const DiscreteFlowOptions& o) {  // p_noise [V] float64
  const int64_t K = o.base().K();
  if (o.noise() == "mask") return torch::one_hot(torch::tensor(K), K + 1).to(torch::kFloat64);
  return torch::full({K}, 1.0 / double(K), torch::kFloat64);
}

}  // namespace

DiscreteFlowProcess::DiscreteFlowProcess(DiscreteFlowOptions opts)
    : MixtureKernelProcess(opts.base(), states_of(opts), noise_law(opts)), flow_(std::move(opts)) {
  if (flow_.noise() != "mask" && flow_.noise() != "uniform")
    throw std::invalid_argument("process 'discrete-flow': field 'noise' must be mask or uniform, got '" + flow_.noise() + "'");
  if (!(flow_.eta() >= 0) || !std::isfinite(flow_.eta()))
    throw std::invalid_argument("process 'discrete-flow': field 'eta' must be a finite number >= 0");
  if (flow_.base().steps() != 0)
    throw std::invalid_argument("process 'discrete-flow': field 'steps' must be 0 (a continuous-time CTMC)");
}

nlohmann::json DiscreteFlowProcess::options_json() const {
  auto j = MixtureKernelProcess::options_json();
  j["noise"] = flow_.noise();
  j["eta"] = flow_.eta();
  return j;
}

std::pair<Tensor, Tensor> DiscreteFlowProcess::kappa(const Tensor& t, const Tensor& x, torch::ScalarType dt) const {
  auto a = per_example(schedule().alpha(t), x, 1).to(x.device(), dt);
  auto ad = per_example(-schedule().dalpha(t), x, 1).to(x.device(), dt);
  return {a, ad};  // [B, 1..., 1]
}

Tensor DiscreteFlowProcess::conditional_rates(const Tensor& x0, const Tensor& xt, const Tensor& t) const {
  const auto dt = compute_dtype_;
  auto [a, ad] = kappa(t, xt, dt);
  const double eta = flow_.eta();
  auto ox0 = torch::one_hot(x0, V_).to(dt);  // [B, ..., V]
  auto at_x0 = (xt == x0).unsqueeze(-1);     // [B, ..., 1]
  if (masked()) {
    auto c = (ad + eta * a) / (1.0 - a);  // M -> x0
    auto to_mask = torch::one_hot(torch::full_like(xt, K_), V_).to(dt) * eta;
    auto at_mask = (xt == K_).unsqueeze(-1);
    return torch::where(at_mask, c * ox0, torch::where(at_x0, to_mask, torch::zeros_like(ox0)));
  }
  auto c = (ad + eta * (double(K_) * a + 1.0 - a)) / (1.0 - a);  // x -> x0, x != x0
  auto leave = eta * (1.0 - torch::one_hot(xt, V_).to(dt));      // x0 -> every y != x0
  return torch::where(at_x0, leave, c * ox0);
}

Tensor DiscreteFlowProcess::reverse_rates(const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  const auto dt = logp.scalar_type();
  auto [a, ad] = kappa(t, xt, dt);
  const double eta = flow_.eta();
  auto p = torch::constant_pad_nd(logp.exp(), {0, V_ - K_});  // p(x0 = y | x_t) [B, ..., V] (0 at the mask)
  auto p_here = p.gather(-1, xt.unsqueeze(-1));               // p(x0 = x_t | x_t) [B, ..., 1]
  auto oxt = torch::one_hot(xt, V_).to(dt);
  if (masked()) {
    auto c = (ad + eta * a) / (1.0 - a);
    auto to_mask = torch::one_hot(torch::full_like(xt, K_), V_).to(dt) * (eta * p_here);
    return torch::where((xt == K_).unsqueeze(-1), c * p, to_mask);
  }
  auto c = (ad + eta * (double(K_) * a + 1.0 - a)) / (1.0 - a);
  return (c * p + eta * p_here) * (1.0 - oxt);
}

Tensor DiscreteFlowProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  const auto dt = logp.scalar_type();
  auto R = conditional_rates(x0, xt, t).to(dt);  // [B, ..., V]
  auto Rth = reverse_rates(xt, t, logp);         // [B, ..., V]
  // R_th >= p(x0 | x_t) R term by term (one term of its sum): restores what float underflow zeroed.
  auto floor = logp.gather(-1, x0.unsqueeze(-1)).exp() * R;
  auto off = 1.0 - torch::one_hot(xt, V_).to(dt);  // y != x_t
  return rate_bregman(off, R, torch::maximum(Rth, floor));
}

}  // namespace gsdiff
