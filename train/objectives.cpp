// The training objectives: elbo, simple, weighted, hybrid (and masked-ce as the absorbing ELBO).
#include "train/objectives.h"

#include "core/gaussian.h"
#include "core/options.h"
#include "train/loss_aware.h"

namespace gsdiff {

using torch::Tensor;

Tensor sample_train_times(const Process& p, int64_t batch, bool low_discrepancy, torch::Generator& gen,
                          const torch::Device& device) {
  if (p.continuous_time()) return sample_times(batch, p.t_min(), low_discrepancy, gen, device);
  auto i = at::randint(1, p.steps() + 1, {batch}, gen, torch::TensorOptions().dtype(torch::kLong).device(gen.device()));
  return (i.to(torch::kFloat64) / double(p.steps())).to(device);  // [B]
}

namespace {

const GaussianProcess& require_gaussian(const Process& p, const std::string& objective) {
  auto* g = dynamic_cast<const GaussianProcess*>(&p);
  if (!g)
    throw ConfigError("config: field 'objective.name' '" + objective + "' needs a Gaussian process, got '" +
                      p.name() + "' (use elbo or hybrid)");
  return *g;
}

// SNR(t)-weighted x0 error: alpha^2/sigma^2 ||x0 - x0_hat||^2 = ||eps - eps_hat||^2 (per dim, [B, ...]).
Tensor eps_mse(const GaussianProcess& g, const DenoiseFn& f, const Tensor& x0, const Tensor& t, torch::Generator& gen) {
  auto xt = g.sample_xt(x0, t, gen);                   // [B, ...]
  auto x0_hat = predict(g, f, xt, t);                  // [B, ...]
  auto z0 = g.embed(x0);                               // x0 in the state space (codes for gaussian-embed)
  auto snr = g.at(t, z0).snr();                        // broadcast [B, 1, ...]
  return snr * (z0 - x0_hat).pow(2);
}

double dims(const Tensor& x0) { return double(x0[0].numel()); }

// EDM's training noise levels (Karras et al. 2022, sec. 5): ln s~ ~ N(P_mean, P_std^2) for the VE-equivalent level
// s~ = sigma / alpha = exp(-lambda / 2), mapped to the t with that log-SNR (clamped to the process's [t_min, 1]).
Tensor edm_train_times(const GaussianProcess& g, int64_t B, const ObjectiveOptions& o, torch::Generator& gen,
                       const torch::Device& dev) {
  auto z = at::randn({B}, gen, torch::TensorOptions().dtype(torch::kFloat64).device(gen.device()));
  return g.time_at_logsnr(-2.0 * (o.edm_p_mean() + o.edm_p_std() * z)).to(dev);  // [B]
}

// lambda(s~) = (s~^2 + sd^2) / (s~ sd)^2 with s~^2 = exp(-logsnr): unit-variance targets for F at every level.
Tensor edm_weight(const GaussianProcess& g, const ScheduleValues& v) {
  const double sd2 = g.options().sigma_data() * g.options().sigma_data();
  auto st2 = torch::exp(-v.logsnr);
  return (st2 + sd2) / (st2 * sd2);
}

// The one-call bound with the objective's term sampling; a loss-aware sampler proposes the bins and sees the
// (unweighted) terms it drew.
ElboSample one_call_elbo(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                         const ObjectiveOptions& o, LossAwareTimes* la = nullptr) {
  auto oc = OneCallOptions().reconstruction_prob(o.reconstruction_prob()).low_discrepancy(o.low_discrepancy());
  if (!la) return sample_negative_elbo(p, f, x0, gen, oc.time_sampling(o.time_sampling()));
  auto s = sample_negative_elbo(p, f, x0, gen, oc.bin_probs(la->probs()));
  la->record(s.bin, (s.terms.diffusion + s.terms.reconstruction) / s.weight);  // [B]: the term itself
  return s;
}

// Learned parameters that decide which x_t is drawn (GenMD4's exponents): the loss plus (L - b) (log q - log q)
// with log q = log q(x_t | x0) and b the leave-one-out mean of the other examples' L, so the value is unchanged and
// the gradient gains REINFORCE's (L - b) d log q (Shi et al. 2024, GenMD4). Other processes: the loss as it is.
Tensor with_score_function(const Process& p, const Tensor& x0, const ElboSample& s, const Tensor& loss) {
  auto lq = p.log_forward_density(x0, s.xt, s.t);  // [B] or undefined
  const int64_t B = loss.size(0);
  if (!lq.defined() || B < 2) return loss;
  auto L = loss.detach();
  auto baseline = (L.sum() - L) / double(B - 1);
  return loss + ((L - baseline) * (lq - lq.detach())).to(loss.scalar_type());
}

// The one-call bound's per-example terms and times, kept for the trainer's diagnosis of a non-finite step.
ObjectiveResult with_terms(ObjectiveResult r, const ElboSample& s) {
  r.t = s.t;
  r.terms = s.terms;
  r.reconstruction_rows = s.reconstruction_rows;
  return r;
}

// objective.time_sampling applies to the one-call bound only; a loss-aware sampler comes with "loss-aware".
void check_time_sampling(const ObjectiveOptions& o, const Process& process, bool loss_aware) {
  const std::string& name = o.name();
  if (o.time_sampling() != "uniform" && name != "elbo" && name != "masked-ce")
    throw ConfigError("config: field 'objective.time_sampling' '" + o.time_sampling() +
                      "' applies to the elbo and masked-ce objectives only, got '" + name + "'");
  if (o.time_sampling() == "logsnr" && !dynamic_cast<const GaussianProcess*>(&process))
    throw ConfigError("config: field 'objective.time_sampling' 'logsnr' needs a Gaussian process, got '" +
                      process.name() + "' (use uniform or loss-aware)");
  if ((o.time_sampling() == "loss-aware") != loss_aware)
    throw std::invalid_argument("make_objective: objective.time_sampling '" + o.time_sampling() +
                                "' and a loss-aware sampler go together (train/loss_aware.h make_loss_aware)");
}

// elbo / masked-ce: the one-call bound per dimension (plus GenMD4's score-function term where it applies).
Objective elbo_objective(const ObjectiveOptions& o, std::shared_ptr<LossAwareTimes> loss_aware) {
  return [o, loss_aware](const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen) {
    auto s = one_call_elbo(p, f, x0, gen, o, loss_aware.get());
    auto nelbo = s.terms.total();  // [B] nats
    return with_terms(ObjectiveResult{with_score_function(p, x0, s, nelbo / dims(x0)), nelbo.detach()}, s);
  };
}

// simple: DDPM's eps-MSE.
Objective simple_objective() {
  return [](const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen) {
    auto& g = require_gaussian(p, "simple");
    auto t = sample_train_times(p, x0.size(0), false, gen, x0.device());
    auto mse = eps_mse(g, f, x0, t, gen);                          // [B, ...]
    ObjectiveResult r{mse.reshape({x0.size(0), -1}).mean(1), {}};  // [B]
    r.t = t;
    return r;
  };
}

// weighted: a weighting of ||x0 - x0_hat||^2 (min-SNR, likelihood, flow matching, EDM).
Objective weighted_objective(const ObjectiveOptions& o) {
  return [o](const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen) {
    auto& g = require_gaussian(p, "weighted");
    auto t = o.weighting() == "edm" ? edm_train_times(g, x0.size(0), o, gen, x0.device())
                                    : sample_train_times(p, x0.size(0), o.low_discrepancy(), gen, x0.device());
    auto xt = g.sample_xt(x0, t, gen);
    auto x0_hat = predict(g, f, xt, t);
    auto z0 = g.embed(x0);  // x0 in the state space (codes for gaussian-embed)
    auto v = g.at(t, z0);
    // min-SNR-gamma: min(SNR, gamma) ||x0 - x0_hat||^2; likelihood: -SNR'(t)/2 ||x0 - x0_hat||^2;
    // flow-matching: ||u - u_hat||^2 = (alpha' - sigma' alpha / sigma)^2 ||x0 - x0_hat||^2 (u = alpha' x0 + sigma'
    // eps at the same x_t; Lipman et al. 2023's conditional flow-matching loss, 1 / t^2 on the rectified-flow path).
    // edm: t from EDM's log-normal noise levels, lambda(s~) = (s~^2 + sd^2) / (s~ sd)^2 (Karras et al. 2022, Table 1).
    auto w = o.weighting() == "min-snr"      ? torch::clamp_max(v.snr(), o.min_snr_gamma())
             : o.weighting() == "likelihood" ? -0.5 * v.dsnr()
             : o.weighting() == "edm"        ? edm_weight(g, v)
                                             : (v.dlog_alpha * v.alpha - v.dsigma2 / (2.0 * v.sigma) * v.alpha / v.sigma).square();
    ObjectiveResult r{sum_dims(w * (z0 - x0_hat).pow(2)) / dims(x0), {}};
    r.t = t;
    return r;
  };
}

// hybrid: iDDPM's L_simple + lambda L_vlb (Gaussian) or D3PM's L_vb + lambda CE (discrete), in one network call:
// the simple / CE term is read off the same (t, x_t, prediction) as the bound's term.
Objective hybrid_objective(const ObjectiveOptions& o) {
  return [o](const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen) {
    auto s = one_call_elbo(p, f, x0, gen, o);
    auto nelbo = s.terms.total();  // [B] nats
    const double D = dims(x0);
    const int64_t B = x0.size(0);
    if (auto* g = dynamic_cast<const GaussianProcess*>(&p)) {  // iDDPM: L_simple + lambda L_vlb
      auto z0 = g->embed(x0);  // x0 in the state space (codes for gaussian-embed)
      auto simple = (g->at(s.t, z0).snr() * (z0 - s.pred).pow(2)).reshape({B, -1}).mean(1);  // eps-MSE [B]
      return with_terms(ObjectiveResult{simple + o.hybrid_lambda() * nelbo / D, nelbo.detach()}, s);
    }
    // D3PM: L_vb + lambda CE, CE = -log p_theta(x0 | x_t) at the sampled t; all per dimension.
    auto ce = p.reconstruction(x0, s.xt, s.t, s.pred).reshape({B, -1}).mean(1);  // [B]
    return with_terms(ObjectiveResult{nelbo / D + o.hybrid_lambda() * ce, nelbo.detach()}, s);
  };
}

// classifier: D-CBG's noisy-input classifier (Schiff et al. 2025, sec. 3.2): cross-entropy of the label on x_t ~ q(x_t | x0)
// at t uniform on the training grid. The DenoiseFn is the classifier with the true labels bound in, returning
// log p(y | x_t, t) [B] (train/evaluate.h classifier_log_prob_fn).
Objective classifier_objective() {
  return [](const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen) {
    auto t = sample_train_times(p, x0.size(0), false, gen, x0.device());  // [B]
    auto xt = p.sample_xt(x0, t, gen);
    ObjectiveResult r{-f(p.network_input(xt, t), t), {}};  // [B] nats
    r.t = t;
    return r;
  };
}

}  // namespace

Objective make_objective(const ObjectiveOptions& o, const Process& process, std::shared_ptr<LossAwareTimes> loss_aware) {
  const std::string name = o.name();
  check_time_sampling(o, process, bool(loss_aware));
  if (name == "elbo" || name == "masked-ce") return elbo_objective(o, std::move(loss_aware));
  if (name == "simple" || name == "weighted") require_gaussian(process, name);
  if (name == "simple") return simple_objective();
  if (name == "weighted") {
    if (o.weighting() == "edm" && !process.continuous_time())
      throw ConfigError("config: field 'objective.weighting' 'edm' needs a continuous-time process (process.steps 0)");
    return weighted_objective(o);
  }
  if (name == "hybrid") return hybrid_objective(o);
  if (name == "classifier") return classifier_objective();
  std::string known;
  for (const auto& [n, what] : objective_descriptions()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("config: field 'objective.name' unknown objective '" + name + "'; known: " + known);
}

const std::vector<std::pair<std::string, std::string>>& objective_descriptions() {
  static const std::vector<std::pair<std::string, std::string>> d{
      {"elbo", "the negative ELBO per dimension, any process; time_sampling uniform | logsnr | loss-aware"},
      {"masked-ce", "the same one-call bound as elbo (for absorbing processes: MDLM's weighted masked cross-entropy)"},
      {"simple", "DDPM's eps-MSE (Ho et al. 2020), Gaussian processes"},
      {"weighted", "w(t) ||x0 - x0_hat||^2, Gaussian processes; weighting min-snr | likelihood | flow-matching | edm"},
      {"hybrid", "Gaussian: simple + lambda elbo (Nichol & Dhariwal 2021); discrete: elbo + lambda CE (Austin et al. 2021)"},
      {"classifier", "cross-entropy of the label on x_t, for model.type classifier (D-CBG, Schiff et al. 2025)"}};
  return d;
}

}  // namespace gsdiff
