// Samplers for categorical processes: tau-leaping, CTMC Euler, SEDD's analytic step, MDLM's cached sampler.
#include <stdexcept>

#include "core/categorical.h"
#include "core/distributions.h"
#include "core/mixture_kernels.h"
#include "sample/masked_step.h"
#include "sample/sampler.h"

namespace gsdiff {

using torch::Tensor;

namespace {

const CategoricalProcess& as_cat(const Process& p, const char* who) {
  auto* c = dynamic_cast<const CategoricalProcess*>(&p);
  if (!c) throw std::invalid_argument(std::string(who) + ": needs a categorical process, got " + p.name());
  return *c;
}

void check_grid(const std::vector<double>& grid, const char* who) {
  if (grid.size() < 2) throw std::invalid_argument(std::string(who) + ": the grid needs at least two times");
  for (size_t i = 1; i < grid.size(); ++i)
    if (!(grid[i] < grid[i - 1])) throw std::invalid_argument(std::string(who) + ": the grid must be strictly descending");
}

// x_s given x_t: fn(x, s, t, pred) for an intermediate step; the final step to s <= 0 is the exact
// reverse step (a draw from p(x0 | x_t) for every kernel with Qbar_0 = I). `pred_fn` yields the prediction.
template <typename Pred, typename Step>
Tensor run_chain(const CategoricalProcess& c, const std::vector<double>& grid, at::IntArrayRef shape,
                 torch::Generator& gen, const Progress& progress, const SamplerOptions& o, const StepHook& hook,
                 Pred pred_fn, Step step) {
  torch::NoGradGuard ng;
  auto x = c.sample_prior(shape, torch::TensorOptions().dtype(torch::kLong).device(o.device), gen);  // [B, ...]
  auto tdev = torch::TensorOptions().dtype(torch::kFloat64).device(o.device);
  const int64_t B = shape[0];
  auto one = [&](const Tensor& xt, int64_t k) {
    auto t = torch::full({B}, grid[k], tdev), s = torch::full({B}, grid[k + 1], tdev);
    auto pred = pred_fn(xt, t);  // log p(x0 | x_t) [B, ..., K]
    if (grid[k + 1] > 0.0) return step(xt, s, t, pred);
    if (!o.guidance) return c.sample_reverse(xt, s, t, pred, gen);
    return sample_categorical(o.guidance->guide(c, xt, s, t, c.reverse_probs(xt, s, t, pred)), gen);  // guided last step
  };
  return run_reverse_steps(x, grid, one, hook, gen, progress);
}

// R_hat_theta(x_t, .) [B, ..., V] in float64, evaluated at min(t, 1 - 1e-6): common schedules have
// alpha_1 = 0, where beta(1) = inf and the process's product beta * ratio reads inf * 0.
// With SamplerOptions::guidance, the guided rates (sample/step_guidance.h guide_rates).
Tensor rates_at(const CategoricalProcess& c, const Tensor& x, const Tensor& t, const Tensor& lp, const SamplerOptions& o) {
  auto tc = t.clamp_max(1.0 - 1e-6);
  auto r = c.reverse_rates(x, tc, lp).to(torch::kFloat64);
  return o.guidance ? o.guidance->guide_rates(c, x, tc, r).to(torch::kFloat64) : r;
}

}  // namespace

Tensor sample_tau_leaping(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                          at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                          const SamplerOptions& o, const StepHook& hook) {
  const auto& c = as_cat(p, "tau-leaping");
  check_grid(grid, "tau-leaping");
  const bool ordinal = tau_leaping_options(o.method).ordinal();
  auto fn = counted(f, o.stats);
  auto pred = [&](const Tensor& x, const Tensor& t) { return predict(c, fn, x, t); };
  return run_chain(c, grid, shape, gen, progress, o, hook, pred, [&](const Tensor& x, const Tensor& s, const Tensor& t, const Tensor& lp) {
    auto h = per_example(t - s, x, 1);
    auto rates = rates_at(c, x, t, lp, o) * h;                // expected jumps x -> y in [s, t]  [B, ..., V]
    auto counts = at::poisson(rates.clamp_min(0.0), gen);  // Poisson jump counts per destination
    auto n = counts.sum(-1);                               // [B, ...]
    if (ordinal) {  // ordinal states: add the displacements (Campbell et al. 2022, Sec. 4.1), clamp to [0, V)
      auto y = torch::arange(c.num_states(), torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
      auto disp = (counts * (y - x.unsqueeze(-1).to(torch::kFloat64))).sum(-1);
      return (x + disp.to(torch::kLong)).clamp(0, c.num_states() - 1);
    }
    // Nominal states: no jump fired -> stay; else move to one of the fired jumps, chosen in proportion to
    // the counts (so P(leave) = 1 - exp(-h sum_y R_hat) and the destination is ∝ R_hat, as h -> 0).
    auto pick = sample_categorical_gumbel(torch::where(n.unsqueeze(-1) > 0, counts, torch::ones_like(counts)), gen);
    return torch::where(n > 0, pick, x);
  });
}

Tensor sample_ctmc_euler(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                         at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                         const SamplerOptions& o, const StepHook& hook) {
  const auto& c = as_cat(p, "euler");
  check_grid(grid, "euler");
  auto fn = counted(f, o.stats);
  auto pred = [&](const Tensor& x, const Tensor& t) { return predict(c, fn, x, t); };
  return run_chain(c, grid, shape, gen, progress, o, hook, pred, [&](const Tensor& x, const Tensor& s, const Tensor& t, const Tensor& lp) {
    auto h = per_example(t - s, x, 1);
    auto jump = (rates_at(c, x, t, lp, o) * h).clamp_min(0.0);  // P(x -> y) ~ R_hat(x, y) h
    auto out = jump.sum(-1, true);
    jump = jump / out.clamp_min(1.0);  // when the step would leave with probability > 1, leave surely
    auto stay = (1.0 - jump.sum(-1, true)).clamp_min(0.0);
    return sample_categorical_gumbel(jump.scatter(-1, x.unsqueeze(-1), stay), gen);
  });
}

Tensor tweedie_reverse_probs(const Process& p, const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& lp) {
  const auto& c = as_cat(p, "tweedie");
  auto lik = c.likelihood_of_xt(xt, t).to(lp.scalar_type());  // Qbar_t[x0, x_t]  [B, ..., K]
  auto w = torch::where(lik > 0, torch::exp(lp) / torch::where(lik > 0, lik, torch::ones_like(lik)), torch::zeros_like(lik));
  auto ratio_s = c.mul_qbar(w, s).to(lp.scalar_type());                     // r_s(y)          [B, ..., V]
  auto probs = c.step_probs_into(xt, s, t).to(lp.scalar_type()) * ratio_s;  // Q_{t|s}[y, x_t] r_s(y)
  return probs.clamp_min(0.0) / probs.clamp_min(0.0).sum(-1, true);
}

Tensor sample_tweedie(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape,
                      torch::Generator& gen, const Progress& progress, const SamplerOptions& o,
                      const StepHook& hook) {
  const auto& c = as_cat(p, "tweedie");
  check_grid(grid, "tweedie");
  auto fn = counted(f, o.stats);
  auto pred = [&](const Tensor& x, const Tensor& t) { return predict(c, fn, x, t); };
  return run_chain(c, grid, shape, gen, progress, o, hook, pred, [&](const Tensor& x, const Tensor& s, const Tensor& t, const Tensor& lp) {
    auto probs = tweedie_reverse_probs(c, x, s, t, lp);  // [B, ..., V]
    return sample_categorical_gumbel(o.guidance ? o.guidance->guide(c, x, s, t, probs) : probs, gen);
  });
}

Tensor sample_mdlm_cached(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                          at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                          const SamplerOptions& o, const StepHook& hook) {
  const auto& c = as_cat(p, "mdlm-cached");
  if (!dynamic_cast<const AbsorbingProcess*>(&c))
    throw std::invalid_argument("mdlm-cached: needs the absorbing process, got " + p.name());
  check_grid(grid, "mdlm-cached");
  if (o.denoiser_uses_t)
    throw std::invalid_argument(
        "mdlm-cached: reuses a row's prediction across times, which is exact only for a denoiser that ignores t; this "
        "one is time-conditioned (train with model.time_conditioning = false, or sample with --sampler ancestral)");
  // For absorbing diffusion p(x0 | x_t) depends on x_t only, not on t (MDLM drops the time input), so a
  // prediction stays valid until a token of its row changes; only changed rows are sent to the network.
  SamplerStats local;
  SamplerStats* st = o.stats ? o.stats : &local;
  auto fn = counted(f, st);
  const auto mo = masked_options("mdlm-cached", o.method);
  if (!mo.plain() && o.guidance)
    throw std::invalid_argument("sampler 'mdlm-cached': discrete guidance does not combine with remask / unmask");
  if (!mo.plain())  // ReMDM remasking / MaskGIT order: the same cache around sample/masked_step.h's step
    return sample_absorbing(dynamic_cast<const AbsorbingProcess&>(c), fn, grid, shape, gen, progress, o.device, hook, mo, true);
  Tensor cache, last;
  auto pred = [&](const Tensor& x, const Tensor& t) {
    if (!cache.defined()) {
      cache = predict(c, fn, x, t);
    } else {
      auto changed = (x != last).reshape({x.size(0), -1}).any(1);  // [B]
      auto idx = changed.nonzero().squeeze(1);
      if (idx.numel() > 0)
        cache.index_copy_(0, idx, predict(c, fn, x.index_select(0, idx), t.index_select(0, idx)).to(cache.scalar_type()));
    }
    last = x.clone();
    return cache;
  };
  // Guidance (D-CFG, D-CBG) acts on the step formed from the cached prediction; its own calls (the unconditional
  // model, the classifier) are not cached.
  return run_chain(c, grid, shape, gen, progress, o, hook, pred, [&](const Tensor& x, const Tensor& s, const Tensor& t, const Tensor& lp) {
    if (!o.guidance) return c.sample_reverse(x, s, t, lp, gen);
    return sample_categorical(o.guidance->guide(c, x, s, t, c.reverse_probs(x, s, t, lp)), gen);
  });
}

}  // namespace gsdiff
