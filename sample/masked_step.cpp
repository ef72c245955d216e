// The absorbing chain with ReMDM remasking (Wang et al. 2025) or MaskGIT's confidence order (Chang et al. 2022).
#include "sample/masked_step.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "sample/token_filter.h"

namespace gsdiff {

using torch::Tensor;

namespace {

std::string masked_listed(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

bool masked_one_of(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string masked_choice(const std::string& name, const nlohmann::json& j, const std::string& key,
                   const std::vector<std::string>& choices, const std::string& fallback) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_string() || !masked_one_of(choices, j.at(key).get<std::string>()))
    throw std::invalid_argument("sampler '" + name + "': option '" + key + "' must be one of " + masked_listed(choices) +
                                ", got " + j.at(key).dump());
  return j.at(key).get<std::string>();
}

double masked_alpha_at(const AbsorbingProcess& p, double t) {
  if (t <= 0.0) return 1.0;
  return p.schedule().alpha(torch::full({1}, t, torch::kFloat64)).item<double>();
}

double masked_unit_number(const std::string& name, const nlohmann::json& j, const std::string& key, double fallback) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number() || !(v.get<double>() > 0.0 && v.get<double>() < 1.0))
    throw std::invalid_argument("sampler '" + name + "': option '" + key + "' must be a number in (0, 1), got " + v.dump());
  return v.get<double>();
}

// ReMDM-loop's options: loop (a bool) with a remask schedule, then t_on, t_off, alpha_on only with it.
void loop_options(const std::string& name, const nlohmann::json& j, MaskedOptions& o) {
  if (j.contains("loop")) {
    if (!j.at("loop").is_boolean())
      throw std::invalid_argument("sampler '" + name + "': option 'loop' must be true or false, got " + j.at("loop").dump());
    o.loop(j.at("loop").get<bool>());
  }
  for (const char* key : {"t_on", "t_off", "alpha_on"})
    if (j.contains(key) && !o.loop())
      throw std::invalid_argument("sampler '" + name + "': option '" + key + "' belongs to the ReMDM loop (\"loop\": true)");
  if (!o.loop()) return;
  if (o.remask() == "none")
    throw std::invalid_argument("sampler '" + name + "': the ReMDM loop remasks inside [t_off, t_on]: it needs remask cap, "
                                "rescale or conf");
  o.t_on(masked_unit_number(name, j, "t_on", o.t_on()));
  o.t_off(masked_unit_number(name, j, "t_off", o.t_off()));
  if (j.contains("alpha_on")) o.alpha_on(masked_unit_number(name, j, "alpha_on", 0.0));
  if (!(o.t_off() < o.t_on()))
    throw std::invalid_argument("sampler '" + name + "': the ReMDM loop needs t_off < t_on, got t_off " +
                                std::to_string(o.t_off()) + " and t_on " + std::to_string(o.t_on()));
}

// The process time where alpha = alpha_on (alpha falls in t): bisection to float64 resolution.
double masked_time_of_alpha(const AbsorbingProcess& p, double alpha_on) {
  double lo = 0.0, hi = 1.0;  // alpha(lo) >= alpha_on >= alpha(hi)
  for (int i = 0; i < 64 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (masked_alpha_at(p, mid) >= alpha_on ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

double loop_time(const MaskedOptions& o, double tau_on, double t) {
  if (t >= o.t_on()) return tau_on + (t - o.t_on()) * (1.0 - tau_on) / (1.0 - o.t_on());
  if (t >= o.t_off()) return tau_on;
  return t * tau_on / o.t_off();
}

std::vector<std::string> remask_choices() { return {"none", "cap", "rescale", "conf"}; }
std::vector<std::string> unmask_choices() { return {"random", "max-prob", "margin", "entropy"}; }

MaskedOptions masked_options(const std::string& name, const nlohmann::json& j) {
  const std::vector<std::string> keys = {"remask", "eta", "unmask", "loop", "t_on", "t_off", "alpha_on"};
  if (j.is_null()) return {};
  if (!j.is_object()) throw std::invalid_argument("sampler '" + name + "': its options must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!masked_one_of(keys, it.key()))
      throw std::invalid_argument("sampler '" + name + "' has no option '" + it.key() + "'; its options: " + masked_listed(keys));
  MaskedOptions o;
  o.remask(masked_choice(name, j, "remask", remask_choices(), o.remask()));
  o.unmask(masked_choice(name, j, "unmask", unmask_choices(), o.unmask()));
  if (j.contains("eta")) {
    if (!j.at("eta").is_number() || !(j.at("eta").get<double>() >= 0.0 && j.at("eta").get<double>() <= 1.0))
      throw std::invalid_argument("sampler '" + name + "': option 'eta' must be a number in [0, 1], got " + j.at("eta").dump());
    if (o.remask() != "cap" && o.remask() != "rescale")
      throw std::invalid_argument("sampler '" + name + "': option 'eta' belongs to remask cap or rescale, not to remask " + o.remask());
    o.eta(j.at("eta").get<double>());
  }
  if (o.remask() != "none" && o.unmask() != "random")
    throw std::invalid_argument("sampler '" + name + "': remask " + o.remask() + " and unmask " + o.unmask() +
                                " do not combine (remasking keeps MDLM's random order)");
  loop_options(name, j, o);
  return o;
}

nlohmann::json to_json(const MaskedOptions& o) {
  nlohmann::json j = {{"remask", o.remask()}, {"unmask", o.unmask()}};
  if (o.remask() == "cap" || o.remask() == "rescale") j["eta"] = o.eta();
  if (o.loop()) {
    j["loop"] = true;
    j["t_on"] = o.t_on();
    j["t_off"] = o.t_off();
    if (o.alpha_on() > 0.0) j["alpha_on"] = o.alpha_on();
  }
  return j;
}

Tensor remask_sigma(const MaskedOptions& o, double at, double as, const Tensor& decoded, const Tensor& psi) {
  const double smax = at <= 0.0 ? 1.0 : std::min(1.0, (1.0 - as) / at);  // ReMDM's sigma_max
  auto opts = decoded.options().dtype(torch::kFloat64);
  if (o.remask() == "none") return torch::zeros(decoded.sizes(), opts);
  if (o.remask() == "cap") return torch::full(decoded.sizes(), std::min(o.eta(), smax), opts);
  if (o.remask() == "rescale") return torch::full(decoded.sizes(), o.eta() * smax, opts);
  if (o.remask() == "conf") {  // eta_conf^l = softmax over decoded positions of -psi^l
    auto w = torch::exp(-psi.to(torch::kFloat64)) * decoded.to(torch::kFloat64);  // [B, D]
    return w / w.sum(1, true).clamp_min(std::numeric_limits<double>::min()) * smax;
  }
  throw std::invalid_argument("remask: unknown schedule '" + o.remask() + "'; choices: " + masked_listed(remask_choices()));
}

Tensor unmask_confidence(const std::string& unmask, const Tensor& logp) {
  auto lp = logp.to(torch::kFloat64);
  auto pr = lp.exp();  // [B, D, K]
  if (unmask == "max-prob") return pr.amax(-1);
  if (unmask == "margin") {
    if (pr.size(-1) < 2) return pr.select(-1, 0);
    auto top = std::get<0>(pr.topk(2, -1));  // [B, D, 2]
    return top.select(-1, 0) - top.select(-1, 1);
  }
  if (unmask == "entropy") return torch::where(pr > 0, pr * lp, torch::zeros_like(pr)).sum(-1);  // -H
  throw std::invalid_argument("unmask: unknown order '" + unmask + "'; choices: " + masked_listed(unmask_choices()));
}

Tensor sample_absorbing(const AbsorbingProcess& p, const DenoiseFn& f, const std::vector<double>& grid,
                        at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                        const torch::Device& device, const StepHook& hook, const MaskedOptions& o, bool cache) {
  if (grid.size() < 2) throw std::invalid_argument("absorbing sampler: the grid needs at least two times");
  for (size_t i = 1; i < grid.size(); ++i)
    if (!(grid[i] < grid[i - 1])) throw std::invalid_argument("absorbing sampler: the grid must be strictly descending");
  torch::NoGradGuard ng;
  const int64_t B = shape[0], m = p.mask_token();
  auto tdev = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  // Process times of the grid (ReMDM-loop warps them, see MaskedOptions) and which steps remask.
  std::vector<double> tau = grid;
  std::vector<bool> remasks(grid.size() - 1, true);
  if (o.loop()) {
    const double tau_on = o.alpha_on() > 0.0 ? masked_time_of_alpha(p, o.alpha_on()) : o.t_on();
    for (size_t k = 0; k < grid.size(); ++k) tau[k] = loop_time(o, tau_on, grid[k]);
    for (size_t k = 0; k + 1 < grid.size(); ++k) remasks[k] = grid[k] <= o.t_on() && grid[k + 1] >= o.t_off();
    if (std::none_of(remasks.begin(), remasks.end(), [](bool b) { return b; }))
      throw std::invalid_argument("absorbing sampler: the ReMDM loop [t_off, t_on] = [" + std::to_string(o.t_off()) + ", " +
                                  std::to_string(o.t_on()) + "] holds no step of the " + std::to_string(grid.size() - 1) +
                                  "-step grid: use more steps or a wider loop");
  }
  const double a0 = masked_alpha_at(p, tau.front());
  Tensor cached, last, psi, m0;
  auto predict_lp = [&](const Tensor& x, const Tensor& t) {
    if (!cache) return predict(p, f, x, t);
    if (!cached.defined()) {
      cached = predict(p, f, x, t);
    } else {  // MDLM: p(x0 | x_t) depends on x_t only, so a row's prediction holds until one of its tokens changes
      auto idx = (x != last).reshape({x.size(0), -1}).any(1).nonzero().squeeze(1);  // changed rows
      if (idx.numel() > 0)
        cached.index_copy_(0, idx, predict(p, f, x.index_select(0, idx), t.index_select(0, idx)).to(cached.scalar_type()));
    }
    last = x.clone();
    return cached;
  };
  auto step = [&](const Tensor& xt, int64_t k) {
    auto t = torch::full({B}, tau[k], tdev);
    auto z = xt.reshape({B, -1});                                                  // [B, D]
    auto lp = predict_lp(xt, t).to(torch::kFloat64).reshape({B, z.size(1), -1});  // log p(x0 | z_t) [B, D, K]
    const double at = masked_alpha_at(p, tau[k]), as = masked_alpha_at(p, tau[k + 1]);
    auto masked = z == m, decoded = masked.logical_not();
    if (!psi.defined()) psi = torch::ones(z.sizes(), tdev);  // tokens the chain did not decode (kept): confidence 1
    if (!m0.defined()) m0 = masked.sum(1);                   // M_0 [B]
    auto x0 = sample_gumbel_max(lp, gen);                    // a draw of x0 per position [B, D]
    Tensor unmask, remask;
    if (o.unmask() == "random") {
      auto sigma = remasks[k] ? remask_sigma(o, at, as, decoded, psi) : torch::zeros(z.sizes(), tdev);  // [B, D]
      auto pu = ((as - (1.0 - sigma) * at) / std::max(1.0 - at, 1e-300)).clamp(0.0, 1.0);  // masked: P(decode)
      auto u = at::rand(z.sizes(), gen, tdev);
      unmask = masked & (u < pu);
      remask = decoded & (u < sigma);
    } else {
      auto conf = unmask_confidence(o.unmask(), lp).masked_fill(decoded, -std::numeric_limits<double>::infinity());
      auto left = (m0.to(torch::kFloat64) * (1.0 - as) / std::max(1.0 - a0, 1e-300)).round().to(torch::kLong);  // [B]
      auto kk = (masked.sum(1) - left).clamp_min(0);                                                             // [B]
      auto order = std::get<1>(conf.sort(/*stable=*/true, 1, /*descending=*/true));                               // [B, D]
      auto rank = torch::empty_like(order).scatter_(1, order, torch::arange(z.size(1), order.options()).expand_as(order).contiguous());
      unmask = masked & (rank < kk.unsqueeze(1));
      remask = torch::zeros_like(unmask);
    }
    psi = torch::where(unmask, lp.gather(-1, x0.unsqueeze(-1)).squeeze(-1).exp(), psi);  // ReMDM-conf's psi
    auto zs = torch::where(unmask, x0, torch::where(remask, torch::full_like(z, m), z));
    return zs.reshape(xt.sizes());
  };
  auto x = p.sample_prior(shape, torch::TensorOptions().dtype(torch::kLong).device(device), gen);  // all masked
  return run_reverse_steps(x, grid, step, hook, gen, progress);
}

}  // namespace gsdiff
