// Uniform and absorbing processes: structured gathers in O(V) and the UDLM / MDLM closed-form integrands.
#include "core/mixture_kernels.h"

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

namespace {
torch::ScalarType parse_dtype(const std::string& d) { return d == "float64" ? torch::kFloat64 : torch::kFloat32; }
Tensor onehot(const Tensor& x, int64_t V, torch::ScalarType dt) { return torch::one_hot(x, V).to(dt); }
}  // namespace

MixtureKernelProcess::MixtureKernelProcess(DiscreteOptions opts, int64_t V, Tensor pi)
    : CategoricalProcess(opts.K(), V, opts.steps(), opts.t_min()), opts_(std::move(opts)), pi_(std::move(pi)) {
  compute_dtype_ = parse_dtype(opts_.dtype());
  bayes_ = opts_.parameterization() == "bayes";
}

nlohmann::json MixtureKernelProcess::options_json() const {
  return {{"name", name()}, {"K", opts_.K()}, {"steps", opts_.steps()}, {"t_min", opts_.t_min()},
          {"schedule", opts_.schedule().to_json()}, {"dtype", opts_.dtype()}, {"parameterization", opts_.parameterization()}};
}

Tensor MixtureKernelProcess::alpha_like(const Tensor& t, const Tensor& x, torch::ScalarType dt) const {
  return per_example(schedule().alpha(t), x, 1).to(x.device(), dt);
}

Tensor MixtureKernelProcess::qbar(const Tensor& t) const {
  auto a = schedule().alpha(t).reshape({-1, 1, 1});                 // [N, 1, 1]
  auto I = torch::eye(V_, torch::kFloat64).unsqueeze(0);            // [1, V, V]
  auto M = torch::ones({V_, 1}, torch::kFloat64).mm(pi_.unsqueeze(0)).unsqueeze(0);  // 1 pi^T
  return a * I + (1.0 - a) * M;
}

Tensor MixtureKernelProcess::qstep(const Tensor& s, const Tensor& t) const {
  auto r = (schedule().alpha(t) / schedule().alpha(s)).reshape({-1, 1, 1});
  auto I = torch::eye(V_, torch::kFloat64).unsqueeze(0);
  auto M = torch::ones({V_, 1}, torch::kFloat64).mm(pi_.unsqueeze(0)).unsqueeze(0);
  return r * I + (1.0 - r) * M;
}

Tensor MixtureKernelProcess::rate(const Tensor& t) const {
  auto b = schedule().beta(t).reshape({-1, 1, 1});
  auto G = torch::ones({V_, 1}, torch::kFloat64).mm(pi_.unsqueeze(0)) - torch::eye(V_, torch::kFloat64);
  return b * G.unsqueeze(0);
}

Tensor MixtureKernelProcess::marginal_probs(const Tensor& x0, const Tensor& t) const {
  auto a = alpha_like(t, x0, compute_dtype_);
  return a * onehot(x0, V_, compute_dtype_) + (1.0 - a) * pi_.to(x0.device(), compute_dtype_);
}

Tensor MixtureKernelProcess::likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  auto a = alpha_like(t, xt, compute_dtype_);
  auto pi_x = pi_.to(xt.device(), compute_dtype_).index({xt}).unsqueeze(-1);  // pi[x_t]  [B, ..., 1]
  return a * onehot(xt, V_, compute_dtype_).narrow(-1, 0, K_) + (1.0 - a) * pi_x;
}

Tensor MixtureKernelProcess::mul_qbar(const Tensor& w, const Tensor& t) const {
  auto a = per_example(schedule().alpha(t), w).to(w.device(), w.scalar_type());
  auto padded = torch::constant_pad_nd(w, {0, V_ - K_});                          // [B, ..., V]
  return a * padded + (1.0 - a) * w.sum(-1, true) * pi_.to(w.device(), w.scalar_type());
}

Tensor MixtureKernelProcess::step_probs_into(const Tensor& xt, const Tensor& s, const Tensor& t) const {
  auto r = per_example(schedule().alpha(t) / schedule().alpha(s), xt, 1).to(xt.device(), compute_dtype_);
  auto pi_x = pi_.to(xt.device(), compute_dtype_).index({xt}).unsqueeze(-1);
  return r * onehot(xt, V_, compute_dtype_) + (1.0 - r) * pi_x;
}

Tensor MixtureKernelProcess::rates_into(const Tensor& xt, const Tensor& t) const {
  auto b = per_example(schedule().beta(t), xt, 1).to(xt.device(), compute_dtype_);
  auto pi_x = pi_.to(xt.device(), compute_dtype_).index({xt}).unsqueeze(-1);
  return b * (pi_x - onehot(xt, V_, compute_dtype_));
}

UniformProcess::UniformProcess(DiscreteOptions opts)
    : MixtureKernelProcess(opts, opts.K(), torch::full({opts.K()}, 1.0 / double(opts.K()), torch::kFloat64)) {}

Tensor UniformProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  auto dt = logp.scalar_type();
  auto a = per_example(schedule().alpha(t), xt, 1).to(xt.device(), dt);
  auto beta = per_example(schedule().beta(t), xt, 1).to(xt.device(), dt);
  auto b = (1.0 - a) / double(K_);
  auto ox = onehot(xt, K_, dt), ox0 = onehot(x0, K_, dt);  // [B, ..., K]
  auto denom = a * ox + b;                                 // q(x_t | x0 = k)
  auto w = torch::where(denom > 0, logp.exp() / torch::where(denom > 0, denom, torch::ones_like(denom)), torch::zeros_like(denom));
  auto ratio_th = a * w + b * w.sum(-1, true);
  auto same = (xt == x0).to(dt).unsqueeze(-1);
  auto ratio_q = (a * ox0 + b) / (a * same + b);
  auto rin = beta / double(K_) * (1.0 - ox);
  return rate_bregman(rin, ratio_q, ratio_th);
}

AbsorbingProcess::AbsorbingProcess(DiscreteOptions opts)
    : MixtureKernelProcess(opts, opts.K() + 1, torch::one_hot(torch::tensor(opts.K()), opts.K() + 1).to(torch::kFloat64)) {}

Tensor AbsorbingProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  auto dt = logp.scalar_type();
  auto a = schedule().alpha(t), da = schedule().dalpha(t);
  auto c = per_example(-da / (1.0 - a), xt).to(xt.device(), dt);  // -alpha'_t / (1 - alpha_t)
  auto ce = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1);       // -log p(x0 | x_t)
  auto masked = xt == mask_token();
  return torch::where(masked, c * ce, torch::zeros_like(ce));
}

}  // namespace gsdiff
