// Absorbing-process sampling beyond MDLM's step: ReMDM remasking and confidence-ordered (MaskGIT) unmasking.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/elbo.h"
#include "core/mixture_kernels.h"
#include "sample/step_hook.h"

namespace gsdiff {

// Options of the samplers `ancestral` and `mdlm-cached` on the absorbing process (SamplerOptions::method:
// {"remask": "cap", "eta": 0.02}, {"remask": "cap", "eta": 0.02, "loop": true, "t_on": 0.55, "t_off": 0.05} or
// {"unmask": "margin"}). Remasking and confidence ordering do not combine.
struct MaskedOptions {
  // ReMDM (Wang et al. 2025, Sec. 3): each step t -> s re-masks a decoded token with probability sigma_t, where
  // 0 <= sigma_t <= sigma_max = min(1, (1 - alpha_s) / alpha_t) keeps q(z_s | x) = Cat(alpha_s x + (1 - alpha_s) m):
  //   none:    sigma_t = 0 (MDLM's step);
  //   cap:     sigma_t = min(eta, sigma_max)       (ReMDM-cap);
  //   rescale: sigma_t = eta sigma_max             (ReMDM-rescale);
  //   conf:    sigma_t^l = softmax_l(-psi^l) sigma_max, psi^l = p(x0^l = z^l | z) when z^l was decoded (masked
  //            positions weigh 0; ReMDM-conf, a heuristic that does not keep the marginals).
  TORCH_ARG(std::string, remask) = "none";
  TORCH_ARG(double, eta) = 0.0;  // cap / rescale, in [0, 1]
  // Which masked positions a step decodes: random = MDLM's (each independently with probability
  // (alpha_s - alpha_t) / (1 - alpha_t)); max-prob | margin | entropy = MaskGIT's order (Chang et al. 2022): per
  // row the k masked positions of highest confidence, confidence = max_x0 p, p_(1) - p_(2), or -H(p(x0^l | z_t)),
  // with k = M_t - round(M_0 (1 - alpha_s) / (1 - alpha_{t_0})) (M_t masked now, M_0 at the first step): the number
  // the schedule leaves masked at s in expectation, so the user's step count is kept and s = 0 decodes every position.
  TORCH_ARG(std::string, unmask) = "random";
  // ReMDM-loop (Wang et al. 2025, Sec. 4.1), with a remask schedule above: the grid's times in [t_off, t_on] hold
  // alpha at alpha_on and only their steps remask (sigma_max = min(1, (1 - alpha_on) / alpha_on)); before, MDLM's
  // step takes alpha from alpha(1) to alpha_on over the grid times [t_on, 1]; after, from alpha_on to 1 over
  // [0, t_off]. The process time the network sees is warped alike:
  //   tau(t) = tau_on + (t - t_on) (1 - tau_on) / (1 - t_on)  for t >= t_on,
  //   tau(t) = tau_on                                           for t_off <= t < t_on,
  //   tau(t) = t tau_on / t_off                                 for t < t_off,
  // with alpha(tau_on) = alpha_on (alpha_on = 0: the process's own alpha(t_on), so tau_on = t_on). Every state keeps
  // the forward law at its own alpha, as in cap / rescale. Defaults t_on 0.55, t_off 0.05: the paper's OpenWebText
  // setting (there with alpha_on 0.9).
  TORCH_ARG(bool, loop) = false;
  TORCH_ARG(double, t_on) = 0.55;
  TORCH_ARG(double, t_off) = 0.05;
  TORCH_ARG(double, alpha_on) = 0.0;

 public:
  bool plain() const { return remask_ == "none" && unmask_ == "random"; }
};

std::vector<std::string> remask_choices();  // none, cap, rescale, conf
std::vector<std::string> unmask_choices();  // random, max-prob, margin, entropy
// Parses and checks the options of sampler `name` (a key outside remask/eta/unmask/loop/t_on/t_off/alpha_on, an
// unknown choice, eta outside [0, 1], eta without cap/rescale, remask with unmask, loop without remask, t_on / t_off
// / alpha_on without loop or outside 0 < t_off < t_on < 1, 0 < alpha_on < 1: std::invalid_argument naming the
// sampler and the option).
MaskedOptions masked_options(const std::string& name, const nlohmann::json& j);
nlohmann::json to_json(const MaskedOptions& o);

// ReMDM-loop's process time tau(t) of a grid time t (above); tau_on is the time where alpha(tau_on) = alpha_on.
double loop_time(const MaskedOptions& o, double tau_on, double t);

// sigma_t per position [B, L] for a step t -> s with alpha_t, alpha_s (ReMDM's schedules above); psi [B, L] the
// stored confidences (conf only), decoded [B, L] bool.
torch::Tensor remask_sigma(const MaskedOptions& o, double alpha_t, double alpha_s, const torch::Tensor& decoded,
                           const torch::Tensor& psi);
// MaskGIT's confidence of each position [B, L] from log p(x0 | z_t) [B, L, K] (o.unmask: max-prob, margin, entropy).
torch::Tensor unmask_confidence(const std::string& unmask, const torch::Tensor& logp);

// The absorbing chain with these options: prior (all masked), then per step the ReMDM posterior
//   decoded z_t:  z_s = z_t w.p. 1 - sigma, m w.p. sigma;
//   masked  z_t:  z_s ~ x0 ~ p(x0 | z_t) w.p. (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t), else m
// (sigma = 0: MDLM's reverse step), or MaskGIT's k most confident positions; draws by float64 Gumbel-max. With
// `cache` the network sees only rows that changed (mdlm-cached; exact for a denoiser that ignores t). f is
// counted by the caller. Shape [B, ...]; returns x0.
torch::Tensor sample_absorbing(const AbsorbingProcess& p, const DenoiseFn& f, const std::vector<double>& grid,
                               at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                               const torch::Device& device, const StepHook& hook, const MaskedOptions& o, bool cache);

}  // namespace gsdiff
