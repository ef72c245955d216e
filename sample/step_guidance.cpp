// Guided discrete reverse steps (Schiff et al. 2025): D-CFG's geometric mixture of transitions, D-CBG's classifier.
#include "sample/step_guidance.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/categorical.h"
#include "core/distributions.h"

namespace gsdiff {

using torch::Tensor;

namespace {

const CategoricalProcess& guided_cat(const Process& p) {
  auto* c = dynamic_cast<const CategoricalProcess*>(&p);
  if (!c) throw std::invalid_argument("discrete guidance: needs a categorical process, got " + p.name());
  return *c;
}

class DiscreteCfg : public StepGuidance {
 public:
  DiscreteCfg(DenoiseFn uncond, double gamma) : uncond_(std::move(uncond)), gamma_(gamma) {}
  Tensor guide(const Process& p, const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& probs) const override {
    auto pu = reverse_step_probs(p, uncond_, xt, s, t);  // p(x_s | x_t) of the null class [B, ..., V]
    return geometric_mixture(probs, pu.to(probs.scalar_type()), gamma_);
  }
  Tensor guide_rates(const Process& p, const Tensor& xt, const Tensor& t, const Tensor& rates) const override {
    auto ru = guided_cat(p).reverse_rates(xt, t, predict(p, uncond_, xt, t)).to(rates.scalar_type());  // [B, ..., V]
    auto both = (rates > 0).logical_and(ru > 0);
    auto one = torch::ones_like(rates);
    auto g = torch::exp(gamma_ * torch::log(torch::where(both, rates, one)) + (1.0 - gamma_) * torch::log(torch::where(both, ru, one)));
    return torch::where(both, g, torch::zeros_like(rates));
  }
  std::string name() const override { return "d-cfg"; }

 private:
  DenoiseFn uncond_;
  double gamma_;
};

// log p(y | x', s) - log p(y | x_t, s) [B, D, V] for every single-position change x' of x_t [B, D] (position j set
// to v), by the classifier on each change: B D V rows.
Tensor exact_change_scores(const Process& p, const DenoiseFn& classifier, const Tensor& y, const Tensor& xt,
                           const Tensor& s, int64_t V) {
  const int64_t B = xt.size(0), D = xt[0].numel();
  auto flat = xt.reshape({B, 1, 1, D}).expand({B, D, V, D}).clone();               // [B, D, V, D]
  auto pos = torch::arange(D, xt.options()).view({1, D, 1, 1}).expand({B, D, V, 1});
  auto val = torch::arange(V, xt.options()).view({1, 1, V, 1}).expand({B, D, V, 1});
  flat.scatter_(3, pos.contiguous(), val.contiguous());                             // x'[b, j, v] = x_t with x'_j = v
  auto shape = xt.sizes().vec();
  shape[0] = B * D * V;
  auto rows = flat.reshape(shape);                                                  // [B D V, ...]
  auto srow = s.repeat_interleave(D * V), yrow = y.to(xt.device()).repeat_interleave(D * V);  // [B D V]
  std::vector<Tensor> out;
  const int64_t chunk = 4096;
  for (int64_t i = 0; i < B * D * V; i += chunk) {
    const int64_t n = std::min(chunk, B * D * V - i);
    auto xs = rows.narrow(0, i, n), ss = srow.narrow(0, i, n);
    auto lp = torch::log_softmax(classifier(p.network_input(xs, ss), ss).to(torch::kFloat64), -1);  // [n, C]
    out.push_back(lp.gather(1, yrow.narrow(0, i, n).view({-1, 1})).squeeze(1));
  }
  auto lp = torch::cat(out).view({B, D, V});
  return lp - lp.gather(2, xt.reshape({B, D, 1}).to(torch::kLong));                 // [B, D, V]
}

// The same by Schiff et al.'s first-order Taylor approximation around x_t: g[j, v] - g[j, x_j] [B, D, V] with
// g = d log p(y | x, s) / d one_hot(x), one forward and one backward pass on the one-hot x_t [B, ..., V].
Tensor taylor_change_scores(const Process& p, const DenoiseFn& classifier, const Tensor& y, const Tensor& xt,
                            const Tensor& s, int64_t V) {
  const int64_t B = xt.size(0), D = xt[0].numel();
  auto in = p.network_input(xt, s);
  if (in.scalar_type() != torch::kLong || !in.sizes().equals(xt.sizes()))
    throw std::invalid_argument("D-CBG's Taylor approximation: needs a process whose network takes the states as tokens");
  torch::AutoGradMode grad_on(true);
  auto onehot = torch::one_hot(in, V).to(torch::kFloat32).requires_grad_(true);          // [B, ..., V]
  auto logits = classifier(onehot, s).to(torch::kFloat64);                                // [B, C]
  auto lp = torch::log_softmax(logits, -1).gather(1, y.to(xt.device()).view({-1, 1}));  // [B, 1]
  auto g = torch::autograd::grad({lp.sum()}, {onehot})[0].to(torch::kFloat64).reshape({B, D, V});  // examples apart
  return g - g.gather(2, xt.reshape({B, D, 1}).to(torch::kLong));                         // [B, D, V]
}

class DiscreteCbg : public StepGuidance {
 public:
  DiscreteCbg(DenoiseFn classifier, Tensor y, double gamma, DcbgOptions o)
      : classifier_(std::move(classifier)), y_(std::move(y)), gamma_(gamma), o_(std::move(o)) {}
  Tensor guide(const Process& p, const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& probs) const override {
    const int64_t B = xt.size(0), D = xt[0].numel(), V = probs.size(-1);
    auto delta = change_scores(p, xt, s, V);                                       // [B, D, V]
    auto pr = probs.reshape({B, D, V}).to(torch::kFloat64);
    auto logits = torch::where(pr > 0, torch::log(pr) + gamma_ * delta, torch::full_like(pr, -std::numeric_limits<double>::infinity()));
    return torch::softmax(logits, -1).reshape(probs.sizes()).to(probs.scalar_type());  // zero where p(x_s | x_t) is
  }
  Tensor guide_rates(const Process& p, const Tensor& xt, const Tensor& t, const Tensor& rates) const override {
    auto delta = change_scores(p, xt, t, rates.size(-1));                                // [B, D, V] at time t
    return rates * torch::exp(gamma_ * delta).reshape(rates.sizes()).to(rates.scalar_type());
  }
  std::string name() const override { return "d-cbg"; }

 private:
  Tensor change_scores(const Process& p, const Tensor& xt, const Tensor& s, int64_t V) const {
    const int64_t B = xt.size(0), D = xt[0].numel();
    if (y_.size(0) != B) throw std::invalid_argument("D-CBG: labels and batch differ in size");
    if (dcbg_approximation_for(o_, D, V) == "taylor") return taylor_change_scores(p, classifier_, y_, xt, s, V);
    if (D * V > o_.max_rows())
      throw std::invalid_argument("D-CBG: exact enumeration scores positions x states = " + std::to_string(D) + " x " +
                                  std::to_string(V) + " classifier rows per example, above " + std::to_string(o_.max_rows()) +
                                  "; the first-order Taylor approximation scores one (--classifier-approx taylor)");
    return exact_change_scores(p, classifier_, y_, xt, s, V);
  }
  DenoiseFn classifier_;
  Tensor y_;
  double gamma_;
  DcbgOptions o_;
};

}  // namespace

Tensor reverse_step_probs(const Process& p, const DenoiseFn& f, const Tensor& xt, const Tensor& s, const Tensor& t) {
  return guided_cat(p).reverse_probs(xt, s, t, predict(p, f, xt, t));
}

Tensor geometric_mixture(const Tensor& pa, const Tensor& pb, double gamma) {
  auto support = (pa > 0).logical_and(pb > 0);
  auto one = torch::ones_like(pa);
  auto lg = gamma * torch::log(torch::where(support, pa, one)) + (1.0 - gamma) * torch::log(torch::where(support, pb, one));
  lg = torch::where(support, lg, torch::full_like(lg, -std::numeric_limits<double>::infinity()));
  return torch::softmax(lg, -1);  // [B, ..., V]
}

Tensor sample_guided_ancestral(const Process& p, const DenoiseFn& f, const StepGuidance& g, const std::vector<double>& grid,
                               at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                               const torch::Device& device, const StepHook& hook) {
  guided_cat(p);
  torch::NoGradGuard ng;
  auto tdev = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  const int64_t B = shape[0];
  auto step = [&](const Tensor& x, int64_t k) {
    auto t = torch::full({B}, grid[k], tdev), s = torch::full({B}, grid[k + 1], tdev);  // [B]
    return sample_categorical(g.guide(p, x, s, t, reverse_step_probs(p, f, x, s, t)), gen);  // [B, ...]
  };
  auto x0 = p.sample_prior(shape, torch::TensorOptions().dtype(torch::kLong).device(device), gen);  // [B, ...]
  return run_reverse_steps(x0, grid, step, hook, gen, progress);
}

const std::vector<std::string>& dcbg_approximations() {
  static const std::vector<std::string> names{"auto", "exact", "taylor"};
  return names;
}

std::string dcbg_approximation_for(const DcbgOptions& o, int64_t D, int64_t V) {
  if (o.approximation() != "auto") return o.approximation();
  return D * V <= o.max_rows() ? "exact" : "taylor";
}

std::shared_ptr<StepGuidance> discrete_cbg(DenoiseFn classifier, Tensor y, double gamma, DcbgOptions options) {
  if (!std::isfinite(gamma)) throw std::invalid_argument("--guidance: D-CBG's gamma must be finite");
  const auto& names = dcbg_approximations();
  if (std::find(names.begin(), names.end(), options.approximation()) == names.end())
    throw std::invalid_argument("--classifier-approx: expected auto, exact or taylor, got '" + options.approximation() + "'");
  if (options.max_rows() < 1) throw std::invalid_argument("D-CBG: max_rows must be >= 1");
  return std::make_shared<DiscreteCbg>(std::move(classifier), std::move(y), gamma, std::move(options));
}

std::shared_ptr<StepGuidance> discrete_cfg(DenoiseFn uncond, double gamma) {
  if (!std::isfinite(gamma)) throw std::invalid_argument("--guidance: D-CFG's gamma must be finite");
  return std::make_shared<DiscreteCfg>(std::move(uncond), gamma);
}

}  // namespace gsdiff
