// DenoiseFn combinators: classifier-free guidance, expert switching across noise levels, TorchScript and model wrappers.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include "core/elbo.h"
#include "core/process.h"
#include "core/self_condition.h"
#include "models/denoiser.h"

namespace gsdiff {

// Classifier-free guidance (Ho & Salimans 2022) on the raw output of both model families:
//   continuous: out = (1 + w) cond - w uncond   (eps / x0 / v / score are all linear in x_t, so this is
//               the usual eps extrapolation, expressed in the model's own parameterisation);
//   discrete:   out = (1 + w) log_softmax(cond) - w log_softmax(uncond)  (Nisonoff et al. 2024; Schiff et
//               al. 2025, UDLM). read_output() then renormalises over the x0 reachable from x_t, which
//               gives exactly normalise(p_cond^(1+w) / p_uncond^w) restricted to those x0, since the
//               restriction and log_softmax only shift both terms by per-position constants.
// Two network calls per step; w = 0 is the conditional model.
DenoiseFn classifier_free_guidance(DenoiseFn cond, DenoiseFn uncond, double w, Space space);

// The network with class labels y [B] bound in (undefined y = the null class, i.e. unconditional).
DenoiseFn model_denoise_fn(DenoiserNet model, torch::Tensor y = {});
// The self-conditioned network (x_t, t, estimate) with labels y bound in (undefined y = the null class).
SelfCondFn model_self_cond_fn(DenoiserNet model, torch::Tensor y = {});
// The network as one chain's DenoiseFn: model_denoise_fn, or for a self-conditioned model (model.self_condition)
// self_condition_feedback, which feeds each call the previous call's x0 estimate (build one per chain).
DenoiseFn sampling_denoise_fn(const Process& p, DenoiserNet model, torch::Tensor y = {});
// cfg over one class-conditional model: cond with labels y, uncond with the null class num_classes() (each with its
// own feedback when self-conditioned).
DenoiseFn guided_model_fn(DenoiserNet model, torch::Tensor y, double w, const Process& p);

// Expert switching across noise levels (arXiv:2511.19434): examples with t > tau go to `high` (the
// high-noise expert), the rest to `low`. One call when the batch shares a side, else one per expert on
// its rows. Usable by every sampler and by negative_elbo: the combined bound is the sum of each
// expert's terms on its side of tau.
DenoiseFn switch_experts(DenoiseFn high, DenoiseFn low, double tau);

// A TorchScript module's forward(x_t, t) as a DenoiseFn (the export from sample/export.h).
DenoiseFn jit_denoise_fn(std::shared_ptr<torch::jit::Module> module);

}  // namespace gsdiff
