// VDM's learned log-SNR schedule: a monotone one-hidden-layer network with normalised ends, and its variance gradient.
#include "core/learned_schedule.h"

#include <cmath>
#include <stdexcept>

namespace gsdiff {

using torch::Tensor;

namespace {

double inv_softplus(double y) { return std::log(std::expm1(y)); }

Tensor leaf(const Tensor& v, bool grad) { return v.to(torch::kFloat64).detach().clone().set_requires_grad(grad); }

// Multiplies the gradient reaching x = g(t) by the factor keyed by t in `scale` (times, factors) at backward time:
// factors[i] where t == times[i] exactly, 1 elsewhere; the forward value is x itself.
Tensor scaled_gradient(const Tensor& x, const Tensor& t, const std::shared_ptr<std::pair<Tensor, Tensor>>& scale) {
  if (!x.requires_grad()) return x;
  auto tk = t.detach();
  x.register_hook([scale, tk](Tensor g) {
    const auto& [times, factors] = *scale;
    if (!times.defined() || tk.numel() != g.numel()) return g;
    auto key = times.to(tk.device(), torch::kFloat64).reshape({-1});
    auto [sorted, perm] = key.sort();
    auto q = tk.to(torch::kFloat64).reshape({-1});
    auto idx = torch::searchsorted(sorted, q).clamp_max(sorted.numel() - 1);  // [n]
    auto hit = sorted.index_select(0, idx) == q;
    auto f = factors.to(g.device(), g.scalar_type()).reshape({-1}).index_select(0, perm.index_select(0, idx).to(g.device()));
    return g * torch::where(hit.to(g.device()), f, torch::ones_like(f)).reshape(g.sizes());
  });
  return x;
}

}  // namespace

LearnedLogSnrSchedule::LearnedLogSnrSchedule(double lmax, double lmin, int64_t hidden, bool learn_endpoints,
                                             std::vector<double> values)
    : hidden_(hidden), learn_endpoints_(learn_endpoints) {
  if (hidden < 1) throw std::invalid_argument("learned-logsnr: needs at least one hidden unit");
  const int64_t H = hidden;
  if (!values.empty() && int64_t(values.size()) != 3 + 3 * H)
    throw std::invalid_argument("learned-logsnr: 'schedule_values' must hold 3 + 3 x schedule_hidden = " +
                                std::to_string(3 + 3 * H) + " numbers, got " + std::to_string(values.size()));
  Tensor v;
  if (values.empty()) {  // linear log-SNR: g(t) = t up to the a_j = 1e-3 sigmoids
    v = torch::cat({torch::tensor({lmax, lmin, inv_softplus(1.0)}, torch::kFloat64),
                    torch::full({H}, inv_softplus(1e-3), torch::kFloat64), torch::full({H}, inv_softplus(10.0), torch::kFloat64),
                    (torch::arange(H, torch::kFloat64) + 0.5) / double(H)});
  } else {
    v = torch::tensor(values, torch::kFloat64);
  }
  lmax_ = leaf(v.narrow(0, 0, 1), learn_endpoints);
  lmin_ = leaf(v.narrow(0, 1, 1), learn_endpoints);
  w0_ = leaf(v.narrow(0, 2, 1), true);
  a_ = leaf(v.narrow(0, 3, H), true);
  b_ = leaf(v.narrow(0, 3 + H, H), true);
  c_ = leaf(v.narrow(0, 3 + 2 * H, H), true);
}

std::pair<Tensor, Tensor> LearnedLogSnrSchedule::shape(const Tensor& t_in) const {
  auto t = t_in.to(torch::kFloat64);
  auto cast = [&](const Tensor& p) { return p.to(t.device(), torch::kFloat64); };
  auto w = torch::softplus(cast(w0_)), a = torch::softplus(cast(a_)), b = torch::softplus(cast(b_)), c = cast(c_);  // [1], [H]
  auto f = [&](const Tensor& s) { return w * s + (a * torch::sigmoid(b * (s.unsqueeze(-1) - c))).sum(-1); };
  auto zero = torch::zeros({1}, t.options()), one = torch::ones({1}, t.options());
  auto f0 = f(zero), range = f(one) - f0;  // [1]
  auto sg = torch::sigmoid(b * (t.unsqueeze(-1) - c));
  auto g = (f(t) - f0) / range;                                       // shaped like t
  auto gd = (w + (a * b * sg * (1.0 - sg)).sum(-1)) / range;          // g'(t) > 0
  return {scaled_gradient(g, t, scale_), scaled_gradient(gd, t, scale_)};
}

Tensor LearnedLogSnrSchedule::level(const Tensor& t) const { return shape(t).first; }

ScheduleValues LearnedLogSnrSchedule::at(const Tensor& t) const {
  auto [g, gd] = shape(t);
  auto lmax = lmax_.to(g.device(), torch::kFloat64), lmin = lmin_.to(g.device(), torch::kFloat64);
  auto lam = lmax - (lmax - lmin) * g, dlam = -(lmax - lmin) * gd;
  ScheduleValues v;  // VP: alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda)
  auto a2 = torch::sigmoid(lam), s2 = torch::sigmoid(-lam);
  v.alpha = a2.sqrt();
  v.sigma = s2.sqrt();
  v.logsnr = lam;
  v.dlogsnr = dlam;
  v.dlog_alpha = 0.5 * s2 * dlam;
  v.dsigma2 = -a2 * s2 * dlam;
  return v;
}

std::pair<Tensor, Tensor> LearnedLogSnrSchedule::alpha_sigma(const Tensor& t) const {
  auto v = at(t);
  return {v.alpha, v.sigma};
}

std::vector<Tensor> LearnedLogSnrSchedule::parameters() const {
  if (learn_endpoints_) return {lmax_, lmin_, w0_, a_, b_, c_};
  return {w0_, a_, b_, c_};
}

std::vector<double> LearnedLogSnrSchedule::values() const {
  auto v = torch::cat({lmax_, lmin_, w0_, a_, b_, c_}).detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
}

nlohmann::json LearnedLogSnrSchedule::to_json() const {
  auto v = values();
  return {{"type", name()}, {"logsnr_max", v[0]}, {"logsnr_min", v[1]}, {"hidden", hidden_},
          {"learn_endpoints", learn_endpoints_}};
}

}  // namespace gsdiff
