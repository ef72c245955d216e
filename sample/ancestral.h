// Ancestral sampling: x_1 ~ prior, then x_s ~ p_theta(x_s | x_t) down a descending time grid.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "core/elbo.h"
#include "core/process.h"
#include "sample/step_hook.h"

namespace gsdiff {

// Runs the reverse chain over `grid` (descending, grid.front() = 1, grid.back() = 0): x = sample_prior,
// then x = process.sample_reverse(x, s, t, pred, gen) for each consecutive pair (t, s), one network call
// per step for the whole batch. A continuous process returns its last prediction x0_hat at the final
// step to s = 0 (not a noisy z_0); a discrete one returns the x0 sample of its final reverse step. The result
// goes through process.to_data (tokens for gaussian-embed). `hook` sees x_1 and every x_s (sample/step_hook.h).
torch::Tensor sample_ancestral(const Process& process, const DenoiseFn& denoise, const std::vector<double>& grid,
                               at::IntArrayRef shape, torch::Generator& gen,
                               std::function<void(int64_t step, int64_t total)> progress = {},
                               const torch::Device& device = torch::kCPU, const StepHook& hook = {});

// The default grid: i / T for a discrete-time process (T + 1 points), else `steps` uniform steps
// (steps <= 0: 100). For a discrete-time process `steps` > 0 picks a subset of its grid.
std::vector<double> default_grid(const Process& process, int64_t steps = 0);

}  // namespace gsdiff
