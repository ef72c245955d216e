// Temperature / top-p filtering of p(x0 | x_t) as a DenoiseFn wrapper.
#include "sample/token_filter.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/categorical.h"
#include "core/distributions.h"

namespace gsdiff {

using torch::Tensor;

void check_token_filter(const TokenFilterOptions& o) {
  if (!(o.temperature() > 0.0) || !std::isfinite(o.temperature()))
    throw std::invalid_argument("token filter: temperature must be a finite number > 0, got " + std::to_string(o.temperature()));
  if (!(o.top_p() > 0.0 && o.top_p() <= 1.0))
    throw std::invalid_argument("token filter: top_p must lie in (0, 1], got " + std::to_string(o.top_p()));
}

Tensor filter_logp(const Tensor& logp, const TokenFilterOptions& o) {
  check_token_filter(o);
  auto lp = logp.to(torch::kFloat64);
  if (o.temperature() != 1.0) lp = torch::log_softmax(lp / o.temperature(), -1);  // p^(1/T) / Z   [B, ..., K]
  if (o.top_p() >= 1.0) return lp;
  auto sorted = lp.sort(-1, /*descending=*/true);
  auto sp = std::get<0>(sorted).exp(), order = std::get<1>(sorted);  // [B, ..., K]
  // Keep a sorted x0 when the mass strictly before it is below top_p: the shortest prefix reaching top_p.
  auto before = sp.cumsum(-1) - sp;
  auto keep_sorted = before < o.top_p();
  keep_sorted.narrow(-1, 0, 1).fill_(true);  // the favourite always stays
  auto keep = torch::zeros_like(keep_sorted).scatter(-1, order, keep_sorted);
  auto cut = lp.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::log_softmax(cut, -1);
}

DenoiseFn filtered_denoiser(const Process& p, DenoiseFn f, const TokenFilterOptions& o) {
  check_token_filter(o);
  if (o.identity()) return f;
  auto* c = dynamic_cast<const CategoricalProcess*>(&p);
  if (!c)
    throw std::invalid_argument("token filter: temperature / top_p act on p(x0 | x_t) of a categorical process, not on " + p.name());
  const bool bayes = p.options_json().value("parameterization", std::string("bayes")) == "bayes";
  return [&p = *c, f = std::move(f), o, bayes](const Tensor& xt, const Tensor& t) {
    auto out = f(xt, t);                                 // network output [B, ..., K] (network input = x_t)
    auto lq = filter_logp(p.read_output(out, xt, t), o);  // filtered log p(x0 | x_t)  [B, ..., K] float64
    if (!bayes) return lq.to(out.scalar_type());
    // read_output adds log q(x_t | x0) back where it is finite (and sets -inf where it is not).
    auto ll = p.log_likelihood_of_xt(xt, t).to(torch::kFloat64);  // [B, ..., K]
    auto fin = torch::isfinite(ll);
    return torch::where(fin, lq - torch::where(fin, ll, torch::zeros_like(ll)), torch::zeros_like(lq)).to(out.scalar_type());
  };
}

}  // namespace gsdiff
