// Generic categorical process: gathers from dense kernels, posterior, reverse step, rates and ELBO terms.
#include "core/categorical.h"

#include <cmath>
#include <limits>

#include "core/distributions.h"

namespace gsdiff {

using torch::Tensor;

namespace {

Tensor flat(const Tensor& x) { return x.reshape({x.size(0), -1}); }  // [B, M]

// [B, M, C] back to x's shape plus a trailing axis of C.
Tensor unflat(const Tensor& y, const Tensor& x) {
  auto shape = x.sizes().vec();
  shape.push_back(y.size(-1));
  return y.reshape(shape);
}

// out[b, m, k] = Q[b, k, x[b, m]]: column x of each matrix, restricted to the first `rows` rows.
Tensor gather_columns(const Tensor& Q, const Tensor& x, int64_t rows) {
  auto QT = Q.narrow(1, 0, rows).transpose(1, 2);  // [B, V, rows]
  auto xf = flat(x);                               // [B, M]
  return unflat(QT.gather(1, xf.unsqueeze(-1).expand({xf.size(0), xf.size(1), rows})), x);
}

// Expands per-example matrices [1, V, V] to the batch when all t were equal.
Tensor batch_of(const Tensor& Q, int64_t B) { return Q.size(0) == B ? Q : Q.expand({B, Q.size(1), Q.size(2)}); }

}  // namespace

Tensor rate_bregman(const Tensor& rin, const Tensor& ratio_q, const Tensor& ratio_th) {
  // Dropped entries (rin = 0, and the log where r_q = 0) see the value 1, not their own: where() passes a zero
  // gradient to the branch it drops, but 0 times d/dx log x at x = 0 is NaN (a ring walk's far states, K = 27).
  auto on = rin > 0;
  auto one = torch::ones_like(ratio_q);
  auto rq = torch::where(on, ratio_q, one), rth = torch::where(on, ratio_th, one);
  auto pos = rq > 0;
  auto log_term = torch::where(pos, rq * (torch::log(torch::where(pos, rq, one)) - torch::log(torch::where(pos, rth, one))),
                               torch::zeros_like(rq));
  auto term = rth - rq + log_term;
  return torch::where(on, rin * term, torch::zeros_like(term)).sum(-1);
}

const Tensor& CategoricalProcess::grid_table() const {
  std::call_once(table_once_, [this] {
    TORCH_CHECK(steps_ > 0, name(), ": the grid table exists only in discrete time (T >= 1)");
    auto table = build_grid_table();  // [T + 1, V, V]
    if (table.numel() * 8 > (int64_t(64) << 20)) table = table.to(torch::kFloat32);
    table_ = table.contiguous();
  });
  return table_;
}

Tensor CategoricalProcess::qbar_at(const Tensor& t, const Tensor& like) const {
  auto td = t.to(torch::kFloat64).cpu();
  Tensor Q;
  if (steps_ > 0) {
    auto pos = td * double(steps_);
    auto idx = pos.round();
    if ((pos - idx).abs().max().item<double>() < 1e-6) {
      // A single time (the common case in evaluation and sampling) is one matrix, broadcast later.
      bool same = (idx == idx[0]).all().item<bool>();
      Q = same ? grid_table().narrow(0, idx[0].item<int64_t>(), 1) : grid_table().index_select(0, idx.to(torch::kLong));
    }
  }
  if (!Q.defined()) {
    bool same = (td == td[0]).all().item<bool>();
    Q = same ? qbar(td.narrow(0, 0, 1)) : qbar(td);
  }
  // matrix_exp or a spectral sum leaves rounding noise of about 1e-17 below zero where the kernel is 0.
  return Q.to(like.device(), like.scalar_type()).clamp_min(0.0);
}

Tensor CategoricalProcess::dense_marginal(const Tensor& x0, const Tensor& t, const Tensor& like) const {
  auto Q = batch_of(qbar_at(t, like), x0.size(0));  // [B, V, V]
  auto xf = flat(x0);                               // [B, M]
  return unflat(Q.gather(1, xf.unsqueeze(-1).expand({xf.size(0), xf.size(1), V_})), x0);
}

Tensor CategoricalProcess::dense_likelihood(const Tensor& xt, const Tensor& t, const Tensor& like) const {
  return gather_columns(batch_of(qbar_at(t, like), xt.size(0)), xt, K_);
}

Tensor CategoricalProcess::dense_mul_qbar(const Tensor& w, const Tensor& t) const {
  auto Q = batch_of(qbar_at(t, w), w.size(0)).narrow(1, 0, K_);  // [B, K, V]
  auto wf = w.reshape({w.size(0), -1, K_});                      // [B, M, K]
  auto out = torch::bmm(wf, Q);                                  // [B, M, V]
  auto shape = w.sizes().vec();
  shape.back() = V_;
  return out.reshape(shape);
}

Tensor CategoricalProcess::dense_rates_into(const Tensor& xt, const Tensor& t, const Tensor& like) const {
  auto td = t.to(torch::kFloat64).cpu();
  bool same = (td == td[0]).all().item<bool>();
  auto R = rate(same ? td.narrow(0, 0, 1) : td).to(like.device(), like.scalar_type());
  return gather_columns(batch_of(R, xt.size(0)), xt, V_);
}

Tensor CategoricalProcess::marginal_probs(const Tensor& x0, const Tensor& t) const {
  return dense_marginal(x0, t, torch::empty({0}, torch::TensorOptions().dtype(compute_dtype_).device(x0.device())));
}

Tensor CategoricalProcess::likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  return dense_likelihood(xt, t, torch::empty({0}, torch::TensorOptions().dtype(compute_dtype_).device(xt.device())));
}

Tensor CategoricalProcess::log_likelihood_of_xt(const Tensor& xt, const Tensor& t) const {
  return torch::log(likelihood_of_xt(xt, t).clamp_min(0.0));  // -inf where x0 cannot reach x_t
}

Tensor CategoricalProcess::mul_qbar(const Tensor& w, const Tensor& t) const { return dense_mul_qbar(w, t); }

Tensor CategoricalProcess::step_probs_into(const Tensor& xt, const Tensor& s, const Tensor& t) const {
  auto sd = s.to(torch::kFloat64).cpu(), td = t.to(torch::kFloat64).cpu();
  bool same = (sd == sd[0]).all().item<bool>() && (td == td[0]).all().item<bool>();
  auto Q = same ? qstep(sd.narrow(0, 0, 1), td.narrow(0, 0, 1)) : qstep(sd, td);
  return gather_columns(batch_of(Q.to(xt.device(), compute_dtype_).clamp_min(0.0), xt.size(0)), xt, V_);
}

Tensor CategoricalProcess::rates_into(const Tensor& xt, const Tensor& t) const {
  return dense_rates_into(xt, t, torch::empty({0}, torch::TensorOptions().dtype(compute_dtype_).device(xt.device())));
}

Tensor CategoricalProcess::posterior_probs(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t) const {
  auto p = step_probs_into(xt, s, t) * marginal_probs(x0, s);  // [B, ..., V]
  return p / p.sum(-1, true);
}

namespace {
// w(x0) = p(x0 | x_t) / q(x_t | x0), zero where x0 cannot reach x_t, as w = exp(scale) * scaled with scaled in
// [0, 1] and scale = max_x0 log w [B, ..., 1] (detached: every use is invariant to it). p / q itself overflows
// float32 where q(x_t | x0) is denormal, as K = 256 tables are at T = 1000 (D3PM's discretized Gaussian).
struct Weights {
  Tensor scaled;  // [B, ..., K]
  Tensor scale;   // [B, ..., 1]
};
Weights denoiser_weights(const Tensor& logp, const Tensor& loglik) {
  auto ll = loglik.to(logp.scalar_type());
  auto reach = ll > -std::numeric_limits<double>::infinity();
  auto lw = torch::where(reach, logp - torch::where(reach, ll, torch::zeros_like(ll)),
                         torch::full_like(ll, -std::numeric_limits<double>::infinity()));
  auto scale = std::get<0>(lw.detach().max(-1, true));
  scale = torch::where(torch::isfinite(scale), scale, torch::zeros_like(scale));
  return {torch::exp(lw - scale), scale};
}

// exp(scale) * m, formed as exp(scale + log m) so that neither a huge scale nor a denormal m overflows. [B, ..., V]
Tensor unscale(const Tensor& m, const Tensor& scale) {
  auto pos = m > 0;
  auto safe = torch::where(pos, m, torch::ones_like(m));
  return torch::where(pos, torch::exp(scale + torch::log(safe)), torch::zeros_like(m));
}
}  // namespace

Tensor CategoricalProcess::reverse_probs(const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& logp) const {
  // In float64 whatever the compute dtype: the normaliser sum_x0 w q(x_t | x0) is exp(-scale), which float32 loses
  // (and its gradient 1 / sum^2 overflows, NaN) once q(x_t | x0) is denormal for some x0 (K = 256 at t = 2 / T).
  auto lp = logp.to(torch::kFloat64);
  auto w = denoiser_weights(lp, log_likelihood_of_xt(xt, t));  // the scale cancels in the normalisation
  auto p = step_probs_into(xt, s, t).to(torch::kFloat64) * mul_qbar(w.scaled, s);  // [B, ..., V]
  return (p / p.sum(-1, true)).to(logp.scalar_type());
}

Tensor CategoricalProcess::reverse_rates(const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  auto w = denoiser_weights(logp, log_likelihood_of_xt(xt, t));
  auto rin = rates_into(xt, t).to(logp.scalar_type()).scatter(-1, xt.unsqueeze(-1), 0.0);
  return rin * unscale(mul_qbar(w.scaled, t), w.scale);
}

Tensor CategoricalProcess::sample_xt(const Tensor& x0, const Tensor& t, torch::Generator& gen) const {
  return sample_categorical(marginal_probs(x0, t), gen);
}

Tensor CategoricalProcess::sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const {
  auto p = prior_probs().to(torch::kFloat64);
  std::vector<int64_t> full(shape.begin(), shape.end());
  full.push_back(V_);
  return sample_categorical(p.expand(full), gen).to(opts.device());
}

Tensor CategoricalProcess::prior_kl(const Tensor& x0) const {
  auto one = torch::ones({x0.size(0)}, torch::kFloat64);
  auto q = marginal_probs(x0, one);
  return categorical_kl_probs(q, prior_probs().to(q.options()).expand_as(q));
}

Tensor CategoricalProcess::read_output(const Tensor& out, const Tensor& xt, const Tensor& t) const {
  auto ll = log_likelihood_of_xt(xt, t).to(out.scalar_type());  // log q(x_t | x0 = k)  [B, ..., K]
  const double ninf = -std::numeric_limits<double>::infinity();
  auto unreachable = ll == ninf;
  auto logits = bayes_ ? out + ll.masked_fill(unreachable, 0.0) : out;  // Bayes: p(x0 | x_t) ∝ q(x_t | x0) p_theta
  return torch::log_softmax(logits.masked_fill(unreachable, ninf), -1);
}

Tensor CategoricalProcess::reconstruction(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  return -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1);
}

Tensor kl_to_mixture(const Tensor& log_post, const Tensor& rev, const Tensor& logp_x0) {
  auto pos = rev > 0;
  auto log_rev = torch::where(pos, torch::log(torch::where(pos, rev, torch::ones_like(rev))),
                              torch::full_like(rev, -std::numeric_limits<double>::infinity()));
  auto log_q = torch::maximum(log_rev, logp_x0.unsqueeze(-1) + log_post);  // the mixture >= its true-x0 part
  auto fin = log_post > -std::numeric_limits<double>::infinity();
  auto lp = torch::where(fin, log_post, torch::zeros_like(log_post));
  auto term = torch::where(fin, torch::exp(lp) * (lp - torch::where(fin, log_q, torch::zeros_like(log_q))),
                           torch::zeros_like(lp));
  return term.sum(-1);
}

Tensor CategoricalProcess::step_kl(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t,
                                   const Tensor& logp) const {
  auto post = posterior_probs(x0, xt, s, t).to(logp.scalar_type());  // [B, ..., V]
  auto logp_x0 = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1);      // [B, ...]
  return kl_to_mixture(torch::log(post), reverse_probs(xt, s, t, logp), logp_x0);
}

Tensor CategoricalProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& logp) const {
  return elbo_integrand_generic(x0, xt, t, logp);
}

Tensor CategoricalProcess::elbo_integrand_generic(const Tensor& x0, const Tensor& xt, const Tensor& t,
                                                  const Tensor& logp) const {
  auto mq = marginal_probs(x0, t).to(logp.scalar_type());               // q(y | x0)        [B, ..., V]
  auto ratio_q = mq / mq.gather(-1, xt.unsqueeze(-1));                   // q(y|x0)/q(x_t|x0)
  auto w = denoiser_weights(logp, log_likelihood_of_xt(xt, t));
  auto ratio_th = unscale(mul_qbar(w.scaled, t), w.scale);               // sum_x0 p(x0|x_t) q(y|x0)/q(x_t|x0)
  auto rin = rates_into(xt, t).to(logp.scalar_type()).scatter(-1, xt.unsqueeze(-1), 0.0);  // R_t(y, x_t), y != x_t
  // ratio_th >= p(x0 | x_t) ratio_q exactly (one term of its sum): restores what float underflow zeroed.
  auto floor = logp.gather(-1, x0.unsqueeze(-1)).exp() * ratio_q;
  return rate_bregman(rin, ratio_q, torch::maximum(ratio_th, floor));
}

Tensor CategoricalProcess::elbo_integrand_dense(const Tensor& x0, const Tensor& xt, const Tensor& t,
                                                const Tensor& logp) const {
  auto mq = dense_marginal(x0, t, logp);
  auto ratio_q = mq / mq.gather(-1, xt.unsqueeze(-1));
  auto w = denoiser_weights(logp, torch::log(dense_likelihood(xt, t, logp)));
  auto ratio_th = unscale(dense_mul_qbar(w.scaled, t), w.scale);
  auto rin = dense_rates_into(xt, t, logp).scatter(-1, xt.unsqueeze(-1), 0.0);
  return rate_bregman(rin, ratio_q, ratio_th);
}

Tensor CategoricalProcess::sample_reverse(const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& logp,
                                          torch::Generator& gen) const {
  return sample_categorical_gumbel(reverse_probs(xt, s, t, logp), gen);  // float64 Gumbel-max
}

}  // namespace gsdiff
