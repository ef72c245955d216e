// Diagonal Gaussian and categorical distributions (closed-form log-prob, entropy and KL).
#include "core/distributions.h"

#include <limits>

#include <cmath>

namespace gsdiff {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)
}

torch::Generator make_generator(const torch::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
  auto g = at::globalContext().defaultGenerator(device).clone();  // same kind as the device's default
  g.set_current_seed(seed);
  return g;
}

torch::Tensor randn_like_gen(const torch::Tensor& like, torch::Generator& gen) {
  return at::randn(like.sizes(), gen, like.options());
}

torch::Tensor rand_gen(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) {
  return at::rand(shape, gen, opts);
}

torch::Tensor DiagGaussian::log_prob(const torch::Tensor& x) const {
  auto z = (x - mean) * torch::exp(-log_std);
  return -0.5 * z * z - log_std - 0.5 * kLog2Pi;
}

torch::Tensor DiagGaussian::entropy() const { return log_std + 0.5 * (kLog2Pi + 1.0); }

torch::Tensor DiagGaussian::kl(const DiagGaussian& q) const {
  // KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
  auto var_ratio = torch::exp(2.0 * (log_std - q.log_std));
  auto d = (mean - q.mean) * torch::exp(-q.log_std);
  return 0.5 * (var_ratio + d * d - 1.0) - (log_std - q.log_std);
}

torch::Tensor DiagGaussian::sample(torch::Generator& gen) const {
  return mean + torch::exp(log_std) * randn_like_gen(mean, gen);
}

torch::Tensor Categorical::log_prob(const torch::Tensor& x) const {
  return log_probs().gather(-1, x.unsqueeze(-1)).squeeze(-1);
}

torch::Tensor Categorical::entropy() const {
  auto lp = log_probs();
  auto p = lp.exp();
  return -torch::where(p > 0, p * lp, torch::zeros_like(p)).sum(-1);
}

torch::Tensor Categorical::kl(const Categorical& other) const {
  auto lp = log_probs();
  auto p = lp.exp();
  auto term = torch::where(p > 0, p * (lp - other.log_probs()), torch::zeros_like(p));
  return term.sum(-1);
}

torch::Tensor Categorical::sample(torch::Generator& gen) const { return sample_categorical(probs(), gen); }

torch::Tensor categorical_kl_probs(const torch::Tensor& p, const torch::Tensor& q) {
  // Both logs see 1 where p = 0: where() passes a zero gradient to the branch it drops, but zero times the
  // gradient of log q at q = 0 is 0 * inf = NaN (a posterior restricted to reachable states has such zeros).
  auto pos = p > 0;
  auto safe_p = torch::where(pos, p, torch::ones_like(p));
  auto safe_q = torch::where(pos, q, torch::ones_like(q));
  auto term = torch::where(pos, p * (torch::log(safe_p) - torch::log(safe_q)), torch::zeros_like(p));
  return term.sum(-1);
}

torch::Tensor sample_categorical(const torch::Tensor& probs, torch::Generator& gen) {
  // Inverse CDF: the first index whose cumulative mass exceeds u * total.
  const int64_t K = probs.size(-1);
  auto cdf = probs.cumsum(-1);                                         // [..., K]
  auto total = cdf.narrow(-1, K - 1, 1);                               // [..., 1]
  auto u = at::rand(total.sizes(), gen, probs.options()) * total;      // [..., 1]
  auto idx = (cdf <= u).sum(-1);                                       // [...]
  // u * total can round up to total (u = 1 - 2^-24 in float32), which would pick a zero-probability state past
  // the last positive one: an x_t its x0 cannot reach. Never go past the last state with positive mass.
  auto last = torch::where(probs > 0, torch::arange(K, probs.options().dtype(torch::kLong)),
                           torch::zeros({}, probs.options().dtype(torch::kLong))).amax(-1);  // [...]
  return torch::minimum(idx.to(torch::kLong), last);
}

torch::Tensor sample_gumbel_max(const torch::Tensor& logp, torch::Generator& gen) {
  auto lp = logp.to(torch::kFloat64);
  // u in [tiny, 1): -log u > 0, so g is finite; float64 rand has 2^-53 resolution (cap 36.7 on g).
  auto u = at::rand(lp.sizes(), gen, lp.options()).clamp_min(std::numeric_limits<double>::min());
  return (lp - torch::log(-torch::log(u))).argmax(-1);  // [...]
}

torch::Tensor sample_categorical_gumbel(const torch::Tensor& probs, torch::Generator& gen) {
  auto p = probs.to(torch::kFloat64);
  return sample_gumbel_max(torch::where(p > 0, torch::log(p.clamp_min(std::numeric_limits<double>::min())),
                                        torch::full_like(p, -std::numeric_limits<double>::infinity())), gen);
}

}  // namespace gsdiff
