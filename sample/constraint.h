// Conditioning on known parts (infilling, prompts, inpainting) as a per-step hook around any sampler.
#pragma once
#include <torch/torch.h>

#include "core/process.h"
#include "sample/step_hook.h"

namespace gsdiff {

// Known positions and their values, shared by every sample of a batch:
//   known   bool [example shape] (e.g. [L] for text, [C, H, W] for images): true where the data is given;
//   values  data [example shape]: int64 tokens in [0, K) (discrete processes and gaussian-embed), else float
//           in the data's range ([-1, 1] for images); read only where known.
struct Constraint {
  torch::Tensor known, values;
};

struct ConstraintOptions {
  // RePaint's resampling (Lugmayr et al. 2022, Alg. 1): after each step t -> s (s > 0), N times re-noise x_s
  // back to x_t by the forward kernel q(x_t | x_s), put the known part back, redo the step and replace it again.
  // 0 = the plain replacement method. N extra network calls per step.
  TORCH_ARG(int64_t, resample) = 0;
};

// The hook that enforces c on every state of a chain on p (prior draw, every x_s, the final x0):
//   discrete (CategoricalProcess): known tokens are put in the state at every step, so the denoiser sees them
//     (absorbing: unmasked from the start). With an exact denoiser this samples the exact conditional law for
//     absorbing (an unmasked token is clean data, so p(x0 | x_t) is then p(x0 | x_t, x0_known)); for kernels
//     whose states do not reveal x0 (uniform) the denoiser reads a kept token as a noisy one: an approximation.
//   continuous (GaussianProcess): the known part of x_s is replaced by a draw of q(x_s | x0 = values), and the
//     final x0 by embed(values) (Song et al. 2021, the replacement method; approximate, see the README).
// Only the process interface is used (sample_xt, embed; q(x_t | x_s) from the schedule or Q_{t|s}), so a user
// kernel gets it. Throws std::invalid_argument when c does not fit p or `example_shape` (check_constraint).
StepHook constraint_hook(const Process& p, Constraint c, ConstraintOptions o = {});

// Throws std::invalid_argument naming what is wrong: shapes differ from `example_shape`, known is not bool,
// values out of [0, K) for a discrete (or gaussian-embed) process, or resample < 0.
void check_constraint(const Process& p, const Constraint& c, at::IntArrayRef example_shape,
                      const ConstraintOptions& o = {});

// A draw of the forward kernel q(x_t | x_s), s < t, per example (s, t [B]): Gaussian
// x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) eps; categorical
// x_t ~ Cat(Q_{t|s}[x_s, .]). Throws for other process families.
torch::Tensor sample_forward_step(const Process& p, const torch::Tensor& xs, const torch::Tensor& s,
                                  const torch::Tensor& t, torch::Generator& gen);

}  // namespace gsdiff
