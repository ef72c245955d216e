// Blackout diffusion (Santos et al. 2023): binomial kernels from lgamma and closed-form ELBO terms in the births.
#include <limits>

#include "core/dense_kernels.h"
#include "core/distributions.h"

namespace gsdiff {

using torch::Tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log Bin(y; n, p), broadcast, float64; -inf where y < 0 or y > n. In float64 because lgamma(256) = 1156 would
// carry an absolute error of about 1e-4 in float32, and log binomials reach -1700 at K = 256.
Tensor log_binomial(const Tensor& y, const Tensor& n, const Tensor& p) {
  auto ok = (y >= 0) & (y <= n);
  auto ys = torch::where(ok, y, torch::zeros_like(y));
  auto ks = torch::where(ok, n - y, torch::zeros_like(y));
  auto logc = torch::lgamma(n + 1) - torch::lgamma(ys + 1) - torch::lgamma(ks + 1);
  auto lp = logc + torch::xlogy(ys, p) + torch::xlogy(ks, 1.0 - p);  // 0 log 0 = 0
  return torch::where(ok, lp, torch::full_like(lp, -kInf));
}

torch::ScalarType dtype_of(const std::string& d) { return d == "float64" ? torch::kFloat64 : torch::kFloat32; }

// Per-example scalars [B] shaped to broadcast against x [B, ...] with `extra` trailing axes, float64.
Tensor like_x(const Tensor& v, const Tensor& x, int64_t extra) {
  return per_example(v.to(torch::kFloat64), x, extra).to(x.device());
}

}  // namespace

BlackoutProcess::BlackoutProcess(DiscreteOptions opts)
    : CategoricalProcess(opts.K(), opts.K(), opts.steps(), opts.t_min()), opts_(std::move(opts)) {
  compute_dtype_ = dtype_of(opts_.dtype());
  bayes_ = opts_.parameterization() == "bayes";
}

nlohmann::json BlackoutProcess::options_json() const {
  return {{"name", name()}, {"K", opts_.K()}, {"steps", opts_.steps()}, {"t_min", opts_.t_min()},
          {"schedule", opts_.schedule().to_json()}, {"dtype", opts_.dtype()}, {"parameterization", opts_.parameterization()}};
}

Tensor BlackoutProcess::binomial_matrix(const Tensor& p_in) const {
  auto p = p_in.to(torch::kFloat64).clamp(0.0, 1.0).reshape({-1, 1, 1});  // [N, 1, 1]
  auto x = torch::arange(V_, torch::kFloat64).reshape({1, -1, 1});        // rows: x (alive at s)
  auto y = torch::arange(V_, torch::kFloat64).reshape({1, 1, -1});        // cols: y survivors
  return torch::exp(log_binomial(y, x, p));                               // [N, V, V]
}

Tensor BlackoutProcess::qbar(const Tensor& t) const { return binomial_matrix(opts_.schedule().alpha(t)); }

Tensor BlackoutProcess::qstep(const Tensor& s, const Tensor& t) const {
  return binomial_matrix(opts_.schedule().alpha(t) / opts_.schedule().alpha(s));
}

Tensor BlackoutProcess::rate(const Tensor& t) const {
  auto mu = opts_.schedule().beta(t).reshape({-1, 1, 1});
  auto n = torch::arange(V_, torch::kFloat64);
  auto R = torch::diag(-n) + torch::diag(n.narrow(0, 1, V_ - 1), -1);  // R[n, n-1] = n, R[n, n] = -n
  return mu * R.unsqueeze(0);
}

Tensor BlackoutProcess::prior_probs() const { return torch::one_hot(torch::tensor(int64_t(0)), V_).to(torch::kFloat64); }

Tensor BlackoutProcess::log_likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  auto a = like_x(opts_.schedule().alpha(t), xt, 1);                       // [B, ..., 1]
  auto k = torch::arange(K_, torch::TensorOptions().dtype(torch::kFloat64).device(xt.device()));  // x0 = k
  auto y = xt.to(torch::kFloat64).unsqueeze(-1);                           // [B, ..., 1]
  return log_binomial(y, k, a).to(compute_dtype_);                         // [B, ..., K]
}

Tensor BlackoutProcess::marginal_probs(const Tensor& x0, const Tensor& t) const {
  auto a = like_x(opts_.schedule().alpha(t), x0, 1);                       // [B, ..., 1]
  auto y = torch::arange(V_, torch::TensorOptions().dtype(torch::kFloat64).device(x0.device()));  // survivors
  return torch::exp(log_binomial(y, x0.to(torch::kFloat64).unsqueeze(-1), a)).to(compute_dtype_);  // [B, ..., V]
}

Tensor BlackoutProcess::likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  return log_likelihood_of_xt(xt, t).to(torch::kFloat64).exp().to(compute_dtype_);
}

Tensor BlackoutProcess::birth_matrices(const Tensor& s, const Tensor& t, const Tensor& like) const {
  const auto& sch = opts_.schedule();
  auto as = sch.alpha(s), at = sch.alpha(t);                 // [B] float64
  auto r = ((as - at) / (1.0 - at)).clamp(0.0, 1.0).cpu();   // P(an individual dead at t was alive at s)
  bool same = (r == r[0]).all().item<bool>();                // one matrix when all times agree
  auto n = torch::arange(V_, torch::kFloat64).reshape({1, -1, 1}), d = torch::arange(V_, torch::kFloat64).reshape({1, 1, -1});
  auto logP = log_binomial(d, n, (same ? r.narrow(0, 0, 1) : r).reshape({-1, 1, 1}));  // [B or 1, V, V]: log Bin(d; n, r)
  return logP.to(like.device(), like.scalar_type()).expand({s.size(0), V_, V_});
}

Tensor BlackoutProcess::reverse_births(const Tensor& xt, const Tensor& P, const Tensor& logp) const {
  const int64_t B = xt.size(0);
  auto n = torch::arange(K_, xt.options());                                   // births n = x0 - x_t
  auto x0 = xt.unsqueeze(-1) + n;                                             // [B, ..., K]
  auto inside = x0 < K_;
  auto pn = torch::where(inside, logp.exp().gather(-1, x0.clamp_max(K_ - 1)), torch::zeros_like(logp));  // p(x_t + n | x_t)
  auto mix = torch::bmm(pn.reshape({B, -1, K_}), P);                          // [B, M, V]: sum_n p_n Bin(d; n, r)
  auto shape = logp.sizes().vec();
  shape.back() = V_;
  return mix.reshape(shape);
}

Tensor BlackoutProcess::step_kl(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t,
                                const Tensor& logp) const {
  auto logP = birth_matrices(s, t, logp);                                        // [B, V, V]
  const int64_t B = xt.size(0);
  auto births = (x0 - xt).clamp_min(0).reshape({B, -1, 1});  // [B, M, 1]; x0 < x_t has q = 0 (callers weight it 0)
  auto rev = reverse_births(xt, logP.exp(), logp);                               // [B, ..., V] over d
  auto log_post = logP.gather(1, births.expand({B, births.size(1), V_})).reshape_as(rev);  // log Bin(d; x0 - x_t, r)
  auto logp_x0 = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1);                  // [B, ...]
  return kl_to_mixture(log_post, rev, logp_x0);                                  // [B, ...]
}

Tensor BlackoutProcess::sample_reverse(const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& logp,
                                       torch::Generator& gen) const {
  auto d = sample_categorical(reverse_births(xt, birth_matrices(s, t, logp).exp(), logp), gen);  // births back to s
  return (xt + d).clamp_max(K_ - 1);
}

Tensor BlackoutProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  const auto dt = logp.scalar_type();
  const auto& sch = opts_.schedule();
  auto c = like_x(-sch.dalpha(t) / (1.0 - sch.alpha(t)), xt, 0).to(dt);       // [B, 1, ...]
  auto n = (x0 - xt).to(dt);                                                  // true births [B, ...]
  // log E_p[x0 - x_t] by logsumexp over x0 > x_t (precise when p is tiny); rows with no x0 above x_t (x_t = K - 1)
  // see zeros so that the gradient is not exp(-inf + inf).
  auto k = torch::arange(K_, xt.options()).to(dt);
  auto gap = k - xt.to(dt).unsqueeze(-1);                                     // x0 - x_t  [B, ..., K]
  auto above = gap > 0;
  auto any = above.any(-1);
  auto lterm = torch::where(above, logp + torch::log(torch::where(above, gap, torch::ones_like(gap))),
                            torch::full_like(gap, -kInf));
  auto safe = torch::where(any.unsqueeze(-1), lterm, torch::zeros_like(lterm));
  auto logE = torch::where(any, torch::logsumexp(safe, -1), torch::full_like(n, -kInf));
  auto E = torch::exp(logE);
  auto has = n > 0;
  auto nlog = torch::where(has, n * (torch::log(torch::where(has, n, torch::ones_like(n))) -
                                     torch::where(has, logE, torch::zeros_like(logE))), torch::zeros_like(n));
  return c * (E - n + nlog);
}

}  // namespace gsdiff
