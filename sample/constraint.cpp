// Known-part conditioning as a step hook: kept tokens (discrete), replacement + RePaint resampling (continuous).
#include "sample/constraint.h"

#include <sstream>
#include <stdexcept>

#include "core/categorical.h"
#include "core/distributions.h"
#include "core/gaussian.h"

namespace gsdiff {

using torch::Tensor;

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  return o.str() + "]";
}

// Tokens carry the data for discrete processes and for gaussian-embed (state = codes of tokens).
bool token_data(const Process& p) { return p.space() == Space::Discrete || p.num_categories() > 0; }

// v [example shape] -> [B, example shape, 1...] broadcasting against x [B, ...] (trailing code dims of embed).
Tensor batched(const Tensor& v, const Tensor& x) {
  auto b = v.to(x.device()).unsqueeze(0);
  while (b.dim() < x.dim()) b = b.unsqueeze(-1);
  return b;
}

// The known part of a Gaussian state at time s: a draw of q(x_s | x0 = values), or embed(values) at s <= 0.
Tensor gaussian_known(const GaussianProcess& g, const Constraint& c, const Tensor& x, double s, torch::Generator& gen) {
  std::vector<int64_t> sizes = c.values.sizes().vec();
  sizes.insert(sizes.begin(), x.size(0));
  auto v = c.values.to(x.device()).unsqueeze(0).expand(sizes).contiguous();  // [B, example shape]
  if (!token_data(g)) v = v.to(x.scalar_type());
  if (s <= 0.0) return g.embed(v).to(x.scalar_type());
  auto sb = torch::full({x.size(0)}, s, torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
  return g.sample_xt(v, sb, gen).to(x.scalar_type());  // [B, ...] (embed: [B, L, d])
}

// x with the known part replaced for time s.
Tensor replace_known(const Process& p, const Constraint& c, const Tensor& x, double s, torch::Generator& gen) {
  auto known = batched(c.known, x);
  if (auto* g = dynamic_cast<const GaussianProcess*>(&p)) return torch::where(known, gaussian_known(*g, c, x, s, gen), x);
  return torch::where(known, batched(c.values, x).to(x.scalar_type()), x);  // discrete: the tokens themselves
}

}  // namespace

void check_constraint(const Process& p, const Constraint& c, at::IntArrayRef example_shape, const ConstraintOptions& o) {
  if (!c.known.defined() || !c.values.defined())
    throw std::invalid_argument("constraint: needs both the known mask and the values");
  if (c.known.scalar_type() != torch::kBool)
    throw std::invalid_argument("constraint: the known mask must be bool");
  if (c.known.sizes() != example_shape || c.values.sizes() != example_shape)
    throw std::invalid_argument("constraint: expected mask and values of the example shape " + shape_str(example_shape) +
                                ", got " + shape_str(c.known.sizes()) + " and " + shape_str(c.values.sizes()));
  if (o.resample() < 0) throw std::invalid_argument("constraint: resample must be >= 0, got " + std::to_string(o.resample()));
  if (token_data(p)) {
    if (c.values.is_floating_point()) throw std::invalid_argument("constraint: " + p.name() + " takes token values (int64)");
    auto kv = c.values.masked_select(c.known);
    if (kv.numel() > 0 && (kv.min().item<int64_t>() < 0 || kv.max().item<int64_t>() >= p.num_categories()))
      throw std::invalid_argument("constraint: known tokens must lie in [0, " + std::to_string(p.num_categories()) + ")");
  } else if (!dynamic_cast<const GaussianProcess*>(&p)) {
    throw std::invalid_argument("constraint: the " + p.name() + " process is neither categorical nor Gaussian");
  }
}

Tensor sample_forward_step(const Process& p, const Tensor& xs, const Tensor& s, const Tensor& t, torch::Generator& gen) {
  if (auto* g = dynamic_cast<const GaussianProcess*>(&p)) {
    auto [as, ss] = g->alpha_sigma(s, xs);
    auto [at, st] = g->alpha_sigma(t, xs);
    auto a = at / as;  // alpha_{t|s}; sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2 (Kingma et al. 2021, eq. 2)
    return a * xs + torch::sqrt((st * st - a * a * ss * ss).clamp_min(0.0)) * randn_like_gen(xs, gen);
  }
  if (auto* c = dynamic_cast<const CategoricalProcess*>(&p)) {
    auto Q = c->qstep(s.to(torch::kFloat64), t.to(torch::kFloat64)).to(xs.device());  // Q_{t|s} [B, V, V]
    auto flat = xs.reshape({xs.size(0), -1});                                           // [B, D]
    auto rows = Q.index({torch::arange(xs.size(0), flat.options()).unsqueeze(1), flat});  // [B, D, V]
    return sample_categorical(rows, gen).reshape(xs.sizes());
  }
  throw std::invalid_argument("sample_forward_step: the " + p.name() + " process is neither categorical nor Gaussian");
}

StepHook constraint_hook(const Process& p, Constraint c, ConstraintOptions o) {
  check_constraint(p, c, c.known.sizes(), o);
  return [&p, c, o](const Tensor& x, const StepInfo& info, torch::Generator& gen) {
    auto xs = replace_known(p, c, x, info.s, gen);
    if (!info.redo || info.s <= 0.0) return xs;  // no resampling of the prior draw or of the final x0
    auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());
    auto sb = torch::full({x.size(0)}, info.s, opts), tb = torch::full({x.size(0)}, info.t, opts);  // [B]
    // RePaint (Lugmayr et al. 2022, Alg. 1, the inner loop over u). The re-noised x_t gets its known part back
    // before the redo (kept tokens stay visible to the denoiser; for a Gaussian the known part of x_t is then a fresh
    // q(x_t | x0) draw, the same law as re-noising it).
    for (int64_t r = 0; r < o.resample(); ++r) {
      auto xt = replace_known(p, c, sample_forward_step(p, xs, sb, tb, gen), info.t, gen);
      xs = replace_known(p, c, info.redo(xt), info.s, gen);
    }
    return xs;
  };
}

}  // namespace gsdiff
