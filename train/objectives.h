// Training objectives: one callable each, mapping a batch to a per-example loss [B] (DESIGN.md §1).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/elbo.h"
#include "core/process.h"
#include "train/config.h"

namespace gsdiff {

class LossAwareTimes;  // train/loss_aware.h

struct ObjectiveResult {
  torch::Tensor loss;   // per-example loss [B] (what is minimised)
  torch::Tensor nelbo;  // per-example negative-ELBO estimate in nats [B], undefined if not computed
  // What each example was scored on, for diagnosing a non-finite step (undefined where not applicable):
  torch::Tensor t;                    // [B] float64: the time of the example's term
  ElboTerms terms;                    // [B] nats each: prior, diffusion, reconstruction of the one-call bound
  torch::Tensor reconstruction_rows;  // bool [B]: the example scored the reconstruction term
};

using Objective = std::function<ObjectiveResult(const Process&, const DenoiseFn&, const torch::Tensor& x0,
                                                torch::Generator&)>;

// elbo / masked-ce: the Monte-Carlo negative ELBO, one t per example (masked-ce is the absorbing
//   process's continuous-time ELBO, Sahoo et al. 2024 / Shi et al. 2024).
// simple: DDPM's eps-MSE (Ho et al. 2020), mean over dimensions, t uniform (Gaussian processes only).
// weighted: w(t) ||x0 - x0_hat||^2 summed over dims: min-SNR-gamma (Hang et al. 2023), flow-matching (Lipman
//   et al. 2023: ||u - u_hat||^2 on the velocity u = dx_t/dt) or the
//   likelihood weighting -SNR'(t)/2 (VDM) (Gaussian processes only).
// hybrid: Gaussian: simple + lambda * elbo (Nichol & Dhariwal 2021); discrete: elbo + lambda * CE,
//   CE = -log p_theta(x0 | x_t) at a uniform t (Austin et al. 2021).
// classifier: cross-entropy of the label y on x_t at a uniform t, for a "classifier" model (D-CBG, Schiff et al.
//   2025); per example, not per dimension.
// Every loss is per dimension (nats / D for the ELBO), so learning rates transfer across data sizes.
// objective.time_sampling: uniform or logsnr (Gaussian processes) for elbo / masked-ce; loss-aware needs its
// sampler (make_loss_aware), which the objective reads and feeds at every call (the trainer syncs and saves it).
Objective make_objective(const ObjectiveOptions& opts, const Process& process,
                         std::shared_ptr<LossAwareTimes> loss_aware = nullptr);
// The objective names, each with a one-line description (gsdiff info; the unknown-name error lists the names).
const std::vector<std::pair<std::string, std::string>>& objective_descriptions();

// Uniform times: grid i / T with i in 1..T (discrete time) or U(t_min, 1) (continuous), float64 [B].
torch::Tensor sample_train_times(const Process& p, int64_t batch, bool low_discrepancy, torch::Generator& gen,
                                 const torch::Device& device);

}  // namespace gsdiff
