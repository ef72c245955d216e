// Guidance of a discrete reverse step (Schiff et al. 2025): D-CFG from an unconditional model, D-CBG from a classifier.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/elbo.h"
#include "core/process.h"
#include "sample/step_hook.h"

namespace gsdiff {

// Maps a reverse step's transition probabilities p(x_s | x_t) [B, ..., V], those of the DenoiseFn the sampler was
// given, to the guided ones (per position, normalised). Set in SamplerOptions::guidance; the discrete ancestral,
// tweedie and mdlm-cached samplers apply it at every step (the last one to s = 0 included; mdlm-cached to the step
// formed from its cached prediction), tau-leaping and euler guide their rates (guide_rates) and their last step's
// transition.
//
// Why not a DenoiseFn wrapper (DESIGN.md §8): Schiff et al.'s guided step p(x_s | x_t, y)^gamma p(x_s | x_t)^(1-gamma)
// is a geometric mixture of two *transitions*, and a transition sum_x0 q(x_s | x_t, x0) p(x0 | x_t) that is linear
// in p(x0 | x_t) is in general not the geometric mixture of two such transitions for any p(x0 | x_t): for the
// absorbing process the probability of staying masked, (1 - alpha_s) / (1 - alpha_t), is the same for every x0
// prediction, but the guided step changes it: the unmasking mass is scaled by Z = sum_k p_c^gamma p_u^(1-gamma)
// before normalising (Z >= 1 for gamma > 1 by Jensen's inequality, so a guided chain unmasks faster). So the guidance acts where the transition is formed; the x0-level combination stays available
// as classifier_free_guidance (sample/guidance.h).
class StepGuidance {
 public:
  virtual ~StepGuidance() = default;
  // probs [B, ..., V] -> guided probs [B, ..., V]; s and t [B] float64.
  virtual torch::Tensor guide(const Process& p, const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                              const torch::Tensor& probs) const = 0;
  // The CTMC counterpart, for the samplers that step reverse rates (tau-leaping, euler): R_hat(x_t, y) [B, ..., V] at
  // time t (zero at y = x_t) -> the guided rates (Nisonoff et al. 2024's rate-level guidance).
  virtual torch::Tensor guide_rates(const Process& p, const torch::Tensor& xt, const torch::Tensor& t,
                                    const torch::Tensor& rates) const = 0;
  virtual std::string name() const = 0;
};

// The exact reverse step of a categorical process, p(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p(x0 | x_t) [B, ..., V],
// from a DenoiseFn (predict + CategoricalProcess::reverse_probs).
torch::Tensor reverse_step_probs(const Process& p, const DenoiseFn& f, const torch::Tensor& xt, const torch::Tensor& s,
                                 const torch::Tensor& t);

// p^gamma ∝ p_a^gamma p_b^(1-gamma) per position over the last axis; zero where p_a or p_b is zero (the support of
// a reverse step is the kernel's, the same for both). gamma = 1 is p_a, gamma = 0 is p_b.
torch::Tensor geometric_mixture(const torch::Tensor& pa, const torch::Tensor& pb, double gamma);

// D-CFG (Schiff et al. 2025, sec. 3.1): the sampler's DenoiseFn is the conditional model p(. | x_t, y); `uncond`
// the same model with the null class; p^gamma(x_s | x_t, y) ∝ p(x_s | x_t, y)^gamma p(x_s | x_t)^(1 - gamma).
// One more network call per step (the unconditional one). Rates: R_c(x, y)^gamma R_u(x, y)^(1 - gamma).
std::shared_ptr<StepGuidance> discrete_cfg(DenoiseFn uncond, double gamma);

// D-CBG's options: how log p(y | x', s) is scored on the single-position changes x' of x_t (position j set to v).
struct DcbgOptions {
  // "exact": the classifier on every single change, D x V rows per example and step, refused above max_rows.
  // "taylor": Schiff et al.'s first-order approximation around x_t, log p(y | x') - log p(y | x_t) ~
  //   g[j, v] - g[j, x_j] with g = d log p(y | x, s) / d one_hot(x) [B, D, V]: one forward and one backward pass of
  //   the classifier on the one-hot x_t (the networks take that relaxed input, forward(one_hot(x)) = forward(x)).
  // "auto": exact when D x V <= max_rows, otherwise taylor.
  TORCH_ARG(std::string, approximation) = "auto";
  TORCH_ARG(int64_t, max_rows) = 1 << 16;
};
// The approximation's names, and the one that `o` picks for D positions of V states.
const std::vector<std::string>& dcbg_approximations();
std::string dcbg_approximation_for(const DcbgOptions& o, int64_t D, int64_t V);

// D-CBG (Schiff et al. 2025, sec. 3.2): p^gamma(x_s | x_t, y) ∝ p(y | x_s, s)^gamma p(x_s | x_t), per position, from
// a noisy-input classifier `classifier`: (network_input(x, s), s) -> class logits [B, C] (a "classifier" model).
// Each position's factor p(y | x_s, s) is scored on the single change of x_t that sets that position to x_s (the other
// positions kept at x_t), exactly or by the Taylor approximation (DcbgOptions). Exact for one position (D = 1); for
// D > 1 it is the paper's per-position factorisation (exact as the steps shrink, when at most one position moves per
// step). Rates: R_u(x, y) (p(y_c | y, t) / p(y_c | x, t))^gamma for y one change away from x: at gamma = 1 with the
// exact classifier, the conditional rates (Bayes: p_t(y | c) / p_t(x | c) = p_t(y) / p_t(x) p(c | y) / p(c | x)).
std::shared_ptr<StepGuidance> discrete_cbg(DenoiseFn classifier, torch::Tensor y, double gamma,
                                           DcbgOptions options = DcbgOptions());

// The discrete ancestral chain with every step guided: x_s ~ guide(p(x_s | x_t)), from the prior to s = 0 (what
// the "ancestral" sampler runs when SamplerOptions::guidance is set). Returns x0 [shape] int64.
torch::Tensor sample_guided_ancestral(const Process& p, const DenoiseFn& f, const StepGuidance& g,
                                      const std::vector<double>& grid, at::IntArrayRef shape, torch::Generator& gen,
                                      const Progress& progress, const torch::Device& device, const StepHook& hook);

}  // namespace gsdiff
