// MD4's polynomial and GenMD4's state-dependent masking schedules: kernel, closed-form bound, REINFORCE score.
#include "core/generalized_absorbing.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

namespace {

double softplus_inverse(double y) { return std::log(std::expm1(y)); }

// v [B, K] (one row per example) shaped to broadcast against x [B, ...] plus a trailing K axis.
Tensor rows_like(const Tensor& v, const Tensor& x) {
  std::vector<int64_t> shape(size_t(x.dim()) + 1, 1);
  shape.front() = v.size(0);
  shape.back() = v.size(1);
  return v.reshape(shape);
}

}  // namespace

PolyMaskProcess::PolyMaskProcess(PolyMaskOptions opts)
    : CategoricalProcess(opts.base().K(), opts.base().K() + 1, opts.base().steps(), opts.base().t_min()), opts_(std::move(opts)) {
  const int64_t K = opts_.base().K(), n = opts_.state_dependent() ? K : 1;
  if (opts_.base().steps() != 0) throw std::invalid_argument("process 'absorbing-poly': field 'steps' must be 0 (continuous time)");
  if (!(opts_.w_init() > 0)) throw std::invalid_argument("process 'absorbing-poly': field 'w_init' must be > 0");
  std::vector<double> w = opts_.w_values().empty() ? std::vector<double>(size_t(n), opts_.w_init()) : opts_.w_values();
  if (int64_t(w.size()) != n)
    throw std::invalid_argument("process 'absorbing-poly': field 'w_values' must hold " + std::to_string(n) + " exponents");
  auto rho = torch::tensor(w, torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) {
    if (!(w[size_t(i)] > 0)) throw std::invalid_argument("process 'absorbing-poly': field 'w_values' must be > 0");
    rho[i] = softplus_inverse(w[size_t(i)]);
  }
  rho_ = rho.set_requires_grad(true);  // float64: the exponents read back exactly
  compute_dtype_ = opts_.base().dtype() == "float64" ? torch::kFloat64 : torch::kFloat32;
  bayes_ = opts_.base().parameterization() == "bayes";
}

nlohmann::json PolyMaskProcess::options_json() const {
  auto w = exponents().detach().to(torch::kCPU).contiguous();
  std::vector<double> wv(w.data_ptr<double>(), w.data_ptr<double>() + (opts_.state_dependent() ? w.numel() : 1));
  const auto& b = opts_.base();
  return {{"name", name()}, {"K", b.K()}, {"steps", b.steps()}, {"t_min", b.t_min()}, {"dtype", b.dtype()},
          {"parameterization", b.parameterization()}, {"state_dependent", opts_.state_dependent()},
          {"w_init", opts_.w_init()}, {"w_values", wv}};
}

Tensor PolyMaskProcess::exponents() const {
  return torch::softplus(rho_.to(torch::kFloat64)).expand({K_}).contiguous();  // [K]
}

Tensor PolyMaskProcess::mask_prob(const Tensor& t) const {
  auto w = exponents().to(t.device());
  // t^w as exp(w log t) with log 0 read as log 1e-300: the same value, and d/dw finite at t = 0 (pow's is 0 * -inf).
  auto lt = t.to(torch::kFloat64).reshape({-1, 1}).clamp_min(1e-300).log();
  return torch::exp(w.unsqueeze(0) * lt);  // 1 - alpha_k(t) = t^{w_k}  [N, K], never 1 - (1 - tiny)
}

Tensor PolyMaskProcess::alpha(const Tensor& t) const { return 1.0 - mask_prob(t); }

// A [N, V, V] kernel of the mask family: row k < K holds `stay` [N, K] on its diagonal and `to_mask` [N, K] in the
// mask column; the mask row is `mask_stay` [N, 1] at M (1 for Qbar and Q_{t|s}, 0 for the generator).
Tensor PolyMaskProcess::mask_kernel(const Tensor& stay, const Tensor& to_mask, double mask_stay) const {
  const int64_t N = stay.size(0);
  auto diag = torch::diag_embed(torch::cat({stay, torch::full({N, 1}, mask_stay, stay.options())}, 1));  // [N, V, V]
  auto col = torch::cat({to_mask, torch::zeros({N, 1}, stay.options())}, 1).unsqueeze(2);               // [N, V, 1]
  return diag + col * torch::one_hot(torch::tensor(K_), V_).to(stay.options()).view({1, 1, V_});
}

Tensor PolyMaskProcess::qbar(const Tensor& t) const {
  auto m = mask_prob(t);
  return mask_kernel(1.0 - m, m, 1.0);
}

Tensor PolyMaskProcess::qstep(const Tensor& s, const Tensor& t) const {
  auto r = alpha(t) / alpha(s);  // alpha_k(t) / alpha_k(s)
  return mask_kernel(r, 1.0 - r, 1.0);
}

Tensor PolyMaskProcess::rate(const Tensor& t) const {
  auto tt = t.to(torch::kFloat64).reshape({-1, 1});
  auto w = exponents().unsqueeze(0);
  auto beta = w * tt.pow(w - 1.0) / (1.0 - tt.pow(w));  // -alpha' / alpha  [N, K]
  return mask_kernel(-beta, beta, 0.0);
}

Tensor PolyMaskProcess::prior_probs() const { return torch::one_hot(torch::tensor(K_), V_).to(torch::kFloat64); }

Tensor PolyMaskProcess::marginal_probs(const Tensor& x0, const Tensor& t) const {
  auto mx = rows_like(mask_prob(t).to(x0.device(), compute_dtype_), x0);
  std::vector<int64_t> full(x0.sizes().begin(), x0.sizes().end());
  full.push_back(K_);
  auto m0 = mx.expand(full).gather(-1, x0.unsqueeze(-1));  // 1 - alpha_{x0}(t)  [B, ..., 1]
  auto oh = torch::one_hot(x0, V_).to(compute_dtype_);
  auto om = torch::one_hot(torch::full_like(x0, K_), V_).to(compute_dtype_);
  return (1.0 - m0) * oh + m0 * om;
}

Tensor PolyMaskProcess::likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  auto mx = rows_like(mask_prob(t).to(xt.device(), compute_dtype_), xt);  // [B, 1.., K]
  auto masked = (xt == K_).unsqueeze(-1);
  auto keep = torch::one_hot(xt.clamp_max(K_ - 1), K_).to(compute_dtype_) * (1.0 - mx);  // x_t = v: alpha_v [k = v]
  return torch::where(masked, mx.expand_as(keep), keep);
}

Tensor PolyMaskProcess::log_likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  auto lt = t.to(torch::kFloat64).clamp_min(1e-300).log().reshape({-1, 1});
  auto lm = rows_like((exponents().to(lt.device()).unsqueeze(0) * lt).to(xt.device(), compute_dtype_), xt);  // log t^{w_k}
  auto la = torch::log1p(-torch::exp(lm));                                                    // log alpha_k
  std::vector<int64_t> full(xt.sizes().begin(), xt.sizes().end());
  full.push_back(K_);
  auto at_v = torch::one_hot(xt.clamp_max(K_ - 1), K_).to(torch::kBool);
  auto ninf = torch::full(full, -std::numeric_limits<double>::infinity(), la.options());
  auto keep = torch::where(at_v, la.expand(full), ninf);  // no gradient path through the -inf entries
  return torch::where((xt == K_).unsqueeze(-1), lm.expand(full), keep);
}

Tensor PolyMaskProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  const auto dt = logp.scalar_type();
  auto w = exponents().to(xt.device(), dt);                                   // [K]
  auto inv_t = per_example(1.0 / t.to(torch::kFloat64), xt).to(xt.device(), dt);  // [B, 1..]
  auto w0 = w.index({x0});                                                    // w_{x0}  [B, ...]
  auto ce = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1);                   // -log p(x0 | x_t)
  auto mix = (logp.exp() * w).sum(-1);                                        // sum_k p_k w_k
  auto term = inv_t * (w0 * ce + mix - w0);
  return torch::where(xt == K_, term, torch::zeros_like(term));
}

Tensor PolyMaskProcess::log_forward_density(const Tensor& x0, const Tensor& xt, const Tensor& t) const {
  auto w0 = exponents().to(xt.device()).index({x0});                                  // [B, ...] float64
  auto lt = per_example(t.to(torch::kFloat64).clamp_min(1e-300).log(), x0).to(xt.device());
  auto t_w = torch::exp(w0 * lt);                                                     // t^{w_{x0}} = 1 - alpha
  auto masked = xt == K_;
  auto lp = torch::where(masked, w0 * lt, torch::log1p(-t_w.clamp_max(1.0 - 1e-12)));  // log q(x_t | x0)
  return lp.reshape({x0.size(0), -1}).sum(1);
}

}  // namespace gsdiff
