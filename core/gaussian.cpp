// Gaussian forward processes: marginals, posterior, prior, decoder and ELBO terms in closed form.
#include "core/gaussian.h"

#include <cmath>

#include "core/decoder.h"
#include "core/distributions.h"
#include "core/learned_schedule.h"
#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

GaussianOptions gaussian_options_from_json(const nlohmann::json& j, const std::string& family) {
  GaussianOptions o;
  o.family(family);
  JsonReader r(j, "process 'gaussian-" + family + "'");
  r.get<std::string>("name", "");  // the registry key itself may sit in the same object
  std::vector<std::string> schedules = family == "ve" ? std::vector<std::string>{"geometric"}
                                       : family == "subvp" ? std::vector<std::string>{"linear-beta"}
                                       : family == "flow" ? std::vector<std::string>{"linear-interpolant"}
                                                           : std::vector<std::string>{"linear-beta", "cosine", "linear-logsnr",
                                                                                      "linear-beta-discrete", "cosine-discrete",
                                                                                      "learned-logsnr"};
  o.schedule(r.choice("schedule", schedules[0], schedules));
  o.steps(r.get<int64_t>("steps", o.steps()));
  o.t_min(r.get<double>("t_min", o.t_min()));
  o.parameterization(r.choice("parameterization", family == "flow" ? "velocity" : o.parameterization(),
                              {"eps", "x0", "v", "score", "velocity", "edm"}));
  o.sigma_data(r.get<double>("sigma_data", o.sigma_data()));
  if (!(o.sigma_data() > 0)) r.fail("sigma_data", "must be > 0 (the data's standard deviation, EDM: 0.5)");
  o.decoder(r.choice("decoder", o.decoder(), {"discretized-256", "gaussian"}));
  o.beta_min(r.get<double>("beta_min", o.beta_min()));
  o.beta_max(r.get<double>("beta_max", o.beta_max()));
  o.cosine_s(r.get<double>("cosine_s", o.cosine_s()));
  o.logsnr_min(r.get<double>("logsnr_min", o.schedule() == "cosine" ? -15.0 : o.logsnr_min()));
  o.logsnr_max(r.get<double>("logsnr_max", o.logsnr_max()));
  o.sigma_min(r.get<double>("sigma_min", family == "flow" ? 1e-4 : o.sigma_min()));
  if (family == "flow") o.alpha_min(r.get<double>("alpha_min", o.alpha_min()));
  o.sigma_max(r.get<double>("sigma_max", o.sigma_max()));
  o.schedule_hidden(r.get<int64_t>("schedule_hidden", o.schedule_hidden()));
  o.learn_endpoints(r.get<bool>("learn_endpoints", o.learn_endpoints()));
  o.schedule_values(r.get<std::vector<double>>("schedule_values", o.schedule_values()));
  r.finish();
  if (o.schedule() == "learned-logsnr") {
    if (o.schedule_hidden() < 1 || o.schedule_hidden() > 4096) r.fail("schedule_hidden", "must lie in [1, 4096]");
    const size_t n = size_t(3 + 3 * o.schedule_hidden());
    if (!o.schedule_values().empty() && o.schedule_values().size() != n)
      r.fail("schedule_values", "must hold 3 + 3 x schedule_hidden = " + std::to_string(n) + " numbers (as a checkpoint "
             "or export writes them), got " + std::to_string(o.schedule_values().size()));
    if (o.steps() != 0) r.fail("steps", "must be 0: the learned schedule trains on the continuous-time ELBO");
  }

  if (o.steps() < 0) r.fail("steps", "must be 0 (continuous time) or T >= 1, got " + std::to_string(o.steps()));
  auto in01 = [&](const char* k, double v) {
    if (!(v > 0.0 && v < 1.0)) r.fail(k, "must lie in (0, 1), got " + std::to_string(v));
  };
  in01("beta_min", o.beta_min());
  in01("beta_max", o.beta_max());
  if (o.beta_min() > o.beta_max()) r.fail("beta_min", "must be <= beta_max");
  if (family == "flow") {
    if (!(o.sigma_min() >= 0.0 && o.sigma_min() < 1.0)) r.fail("sigma_min", "must lie in [0, 1) for the flow path");
    if (!(o.alpha_min() > 0.0 && o.alpha_min() < 1.0))
      r.fail("alpha_min", "must lie in (0, 1) (alpha at t = 1; 0 would make log-SNR(1) infinite)");
  } else {
    if (!(o.sigma_min() > 0.0)) r.fail("sigma_min", "must be > 0");
    if (!(o.sigma_min() < o.sigma_max())) r.fail("sigma_min", "must be < sigma_max, got sigma_min >= sigma_max");
  }
  if (!(o.logsnr_min() < o.logsnr_max())) r.fail("logsnr_min", "must be < logsnr_max");
  if (!(o.cosine_s() >= 0.0)) r.fail("cosine_s", "must be >= 0");
  if (o.t_min() >= 1.0) r.fail("t_min", "must lie in [0, 1)");
  return o;
}

nlohmann::json to_json(const GaussianOptions& o) {
  nlohmann::json j{{"name", "gaussian-" + o.family()}, {"schedule", o.schedule()}, {"steps", o.steps()}, {"t_min", o.t_min()},
          {"parameterization", o.parameterization()}, {"decoder", o.decoder()}, {"beta_min", o.beta_min()},
          {"beta_max", o.beta_max()}, {"cosine_s", o.cosine_s()}, {"logsnr_min", o.logsnr_min()},
          {"logsnr_max", o.logsnr_max()}, {"sigma_min", o.sigma_min()}, {"sigma_max", o.sigma_max()}};
  if (o.family() == "flow") j["alpha_min"] = o.alpha_min();  // only here: other families' saved configs stay as they were
  if (o.parameterization() == "edm" || o.sigma_data() != 0.5) j["sigma_data"] = o.sigma_data();
  if (o.schedule() == "learned-logsnr") {  // only here: other schedules' saved configs stay as they were
    j["schedule_hidden"] = o.schedule_hidden();
    j["learn_endpoints"] = o.learn_endpoints();
    if (!o.schedule_values().empty()) j["schedule_values"] = o.schedule_values();
  }
  return j;
}

namespace {
std::shared_ptr<GaussianSchedule> make_schedule(const GaussianOptions& o) {
  if (o.family() == "ve") return ve_geometric_schedule(o.sigma_min(), o.sigma_max());
  if (o.family() == "subvp") return subvp_schedule(o.beta_min(), o.beta_max());
  if (o.family() == "flow") return linear_interpolant_schedule(o.alpha_min(), o.sigma_min());
  if (o.schedule() == "cosine") return cosine_schedule(o.cosine_s(), o.logsnr_min());
  if (o.schedule() == "linear-logsnr") return linear_logsnr_schedule(o.logsnr_max(), o.logsnr_min());
  if (o.schedule() == "learned-logsnr")
    return std::make_shared<LearnedLogSnrSchedule>(o.logsnr_max(), o.logsnr_min(), o.schedule_hidden(),
                                                   o.learn_endpoints(), o.schedule_values());
  // DDPM's / iDDPM's tables over the process's own T (1000 in continuous time, the papers' T).
  const int64_t T = o.steps() > 0 ? o.steps() : 1000;
  if (o.schedule() == "linear-beta-discrete") return ddpm_linear_beta_schedule(T, o.beta_min(), o.beta_max());
  if (o.schedule() == "cosine-discrete") return iddpm_cosine_schedule(T, o.cosine_s());
  return linear_beta_schedule(o.beta_min(), o.beta_max());
}
}  // namespace

GaussianProcess::GaussianProcess(GaussianOptions opts)
    : Process(opts.steps(), 0.0), opts_(std::move(opts)), schedule_(make_schedule(opts_)), param_(parse_param(opts_.parameterization())) {
  if (opts_.t_min() < 0) opts_.t_min(schedule_->finite_snr_at_zero() ? 0.0 : 1e-5);
  if (opts_.steps() == 0 && opts_.t_min() == 0.0 && !schedule_->finite_snr_at_zero())
    throw ConfigError("process '" + name() + "': field 't_min' must be > 0 in continuous time for schedule " +
                      schedule_->name() + " (SNR(0) is infinite)");
  t_min_ = opts_.t_min();
  edm_.sigma_data = opts_.sigma_data();
  prior_std_ = opts_.family() == "ve" ? opts_.sigma_max() : 1.0;
}

nlohmann::json GaussianProcess::options_json() const {
  auto j = to_json(opts_);
  if (auto* l = dynamic_cast<const LearnedLogSnrSchedule*>(schedule_.get())) j["schedule_values"] = l->values();
  return j;
}

Tensor GaussianProcess::network_time(const Tensor& t) const {
  auto* l = dynamic_cast<const LearnedLogSnrSchedule*>(schedule_.get());
  return l ? l->level(t).to(t.scalar_type()) : t;
}

std::vector<Tensor> GaussianProcess::learnable_parameters() const {
  auto* l = dynamic_cast<const LearnedLogSnrSchedule*>(schedule_.get());
  return l ? l->parameters() : std::vector<Tensor>{};
}

void GaussianProcess::set_variance_target(const Tensor& t, const Tensor& loss) const {
  if (auto* l = dynamic_cast<const LearnedLogSnrSchedule*>(schedule_.get()))
    l->set_variance_scale(t, loss.defined() ? 2.0 * loss.detach() : Tensor());  // d E[L^2] = E[2 L dL]
}

ScheduleValues GaussianProcess::at(const Tensor& t, const Tensor& like) const {
  auto v = schedule_->at(t);
  auto cast = [&](const Tensor& x) { return per_example(x, like).to(like.scalar_type()); };
  return {cast(v.alpha), cast(v.sigma), cast(v.logsnr), cast(v.dlogsnr), cast(v.dlog_alpha), cast(v.dsigma2)};
}

std::pair<Tensor, Tensor> GaussianProcess::alpha_sigma(const Tensor& t, const Tensor& like) const {
  auto [alpha, sigma] = schedule_->alpha_sigma(t);
  auto cast = [&](const Tensor& x) { return per_example(x, like).to(like.scalar_type()); };
  return {cast(alpha), cast(sigma)};
}

std::pair<Tensor, Tensor> GaussianProcess::posterior(const Tensor& x0, const Tensor& xt, const Tensor& s,
                                                     const Tensor& t) const {
  auto vs = schedule_->at(s), vt = schedule_->at(t);
  auto frac = -torch::expm1(vt.logsnr - vs.logsnr);                        // sigma_{t|s}^2 / sigma_t^2
  auto coef_xt = torch::exp(vt.logsnr - vs.logsnr) * vs.alpha / vt.alpha;  // alpha_{t|s} sigma_s^2 / sigma_t^2
  auto coef_x0 = vs.alpha * frac;
  auto var = vs.sigma * vs.sigma * frac;
  auto cast = [&](const Tensor& x) { return per_example(x, xt).to(xt.scalar_type()); };
  return {cast(coef_xt) * xt + cast(coef_x0) * x0, cast(var)};
}

Tensor GaussianProcess::sample_xt(const Tensor& x0, const Tensor& t, torch::Generator& gen) const {
  auto [alpha, sigma] = alpha_sigma(t, x0);
  return alpha * x0 + sigma * randn_like_gen(x0, gen);
}

Tensor GaussianProcess::sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const {
  return prior_std_ * at::randn(shape, gen, opts);
}

Tensor GaussianProcess::prior_kl(const Tensor& x0) const {
  auto one = torch::ones({x0.size(0)}, x0.options().dtype(torch::kFloat64));
  auto v = at(one, x0);
  DiagGaussian q(v.alpha * x0, torch::log(v.sigma) * torch::ones_like(x0));
  DiagGaussian p(torch::zeros_like(x0), torch::full_like(x0, std::log(prior_std_)));
  return q.kl(p);
}

Tensor GaussianProcess::network_input(const Tensor& xt, const Tensor& t) const {
  // x_t / sqrt(alpha^2 + sigma^2): the identity for VP schedules (computing it gave 1 up to an ulp).
  if (param_ == Param::Edm) {  // EDM's c_in x~
    auto [alpha, sigma] = alpha_sigma(t, xt);
    return edm_.input(xt, alpha, sigma);
  }
  if (schedule_->variance_preserving()) return xt;
  auto [alpha, sigma] = alpha_sigma(t, xt);
  return xt * torch::rsqrt(alpha * alpha + sigma * sigma);
}

Tensor GaussianProcess::state_from_network_input(const Tensor& in, const Tensor& t) const {
  if (param_ != Param::Edm && schedule_->variance_preserving()) return in;
  return in / network_input(torch::ones_like(in), t);  // network_input is x_t times a per-example scale
}

std::pair<Tensor, Tensor> GaussianProcess::dalpha_dsigma(const Tensor& t, const Tensor& like) const {
  auto v = at(t, like);
  return {v.dlog_alpha * v.alpha, v.dsigma2 / (2.0 * v.sigma)};  // alpha' = f alpha, sigma' = (sigma^2)' / (2 sigma)
}

Tensor GaussianProcess::read_output(const Tensor& out, const Tensor& xt, const Tensor& t) const {
  auto [alpha, sigma] = alpha_sigma(t, xt);
  if (param_ == Param::Edm) return edm_.x0(out, xt, alpha, sigma);
  if (!needs_derivatives(param_)) return x0_from_output(param_, out, xt, alpha, sigma);
  auto [da, ds] = dalpha_dsigma(t, xt);
  return x0_from_output(param_, out, xt, alpha, sigma, da, ds);
}

Tensor GaussianProcess::time_at_logsnr(const Tensor& lambda) const {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(lambda.device());
  const double hi_l = schedule_->at(torch::full({1}, t_min_, torch::kFloat64)).logsnr.item<double>();
  const double lo_l = schedule_->at(torch::ones({1}, torch::kFloat64)).logsnr.item<double>();
  auto target = lambda.to(torch::kFloat64).clamp(lo_l, hi_l);
  auto lo = torch::full_like(target, t_min_, f64), hi = torch::ones_like(target, f64);
  for (int it = 0; it < 64; ++it) {  // lambda is decreasing in t: 64 halvings reach float64's resolution
    auto mid = 0.5 * (lo + hi);
    auto above = schedule_->at(mid).logsnr > target;  // the root lies right of mid
    lo = torch::where(above, mid, lo);
    hi = torch::where(above, hi, mid);
  }
  return 0.5 * (lo + hi);
}

Tensor GaussianProcess::output_for(const Tensor& x0_hat, const Tensor& xt, const Tensor& t) const {
  auto [alpha, sigma] = alpha_sigma(t, xt);
  if (param_ == Param::Edm) return edm_.output(x0_hat, xt, alpha, sigma);
  if (!needs_derivatives(param_)) return output_from_x0(param_, x0_hat, xt, alpha, sigma);
  auto [da, ds] = dalpha_dsigma(t, xt);
  return output_from_x0(param_, x0_hat, xt, alpha, sigma, da, ds);
}

Tensor GaussianProcess::reconstruction(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& x0_hat) const {
  auto v = at(t, x0);
  auto log_std = (torch::log(v.sigma) - torch::log(v.alpha)).expand_as(x0);  // std of x0 given x_t: sigma / alpha
  if (opts_.decoder() == "gaussian") return -DiagGaussian(x0_hat, log_std).log_prob(x0);
  return -discretized_gaussian_log_likelihood(x0, x0_hat, log_std);
}

Tensor GaussianProcess::step_kl(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t,
                                const Tensor& x0_hat) const {
  auto vs = schedule_->at(s), vt = schedule_->at(t);
  auto dsnr = torch::exp(vs.logsnr) * -torch::expm1(vt.logsnr - vs.logsnr);  // SNR(s) - SNR(t)
  auto d = x0 - x0_hat;
  return 0.5 * per_example(dsnr, x0).to(x0.scalar_type()) * d * d;
}

Tensor GaussianProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& x0_hat) const {
  auto v = at(t, x0);
  auto d = x0 - x0_hat;
  return -0.5 * v.dsnr() * d * d;
}

Tensor GaussianProcess::sample_reverse(const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& x0_hat,
                                       torch::Generator& gen) const {
  auto [mean, var] = posterior(x0_hat, xt, s, t);
  return mean + var.sqrt() * randn_like_gen(xt, gen);
}

}  // namespace gsdiff
