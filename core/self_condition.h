// Self-conditioning (Chen et al. 2022, Analog Bits, sec. 3.2): the network's previous x0 estimate as an extra input.
#pragma once
#include <torch/torch.h>

#include <functional>

#include "core/elbo.h"
#include "core/process.h"

namespace gsdiff {

// A self-conditioned network: (network_input(x_t, t), t, estimate) -> raw output, with the estimate of x0 that
// self_condition_estimate() reads off an output; an undefined estimate stands for zeros ("no estimate yet").
using SelfCondFn =
    std::function<torch::Tensor(const torch::Tensor& net_in, const torch::Tensor& t, const torch::Tensor& estimate)>;

// The estimate a raw output gives, detached and in the output's dtype: x0_hat [B, ...] (continuous; codes
// [B, L, d] for gaussian-embed) or the probabilities p(x0 | x_t) [B, ..., K] (discrete).
torch::Tensor self_condition_estimate(const Process& p, const torch::Tensor& out, const torch::Tensor& net_in,
                                      const torch::Tensor& t);

// One pass with zeros for the estimate (training's other half).
DenoiseFn self_condition_zeros(SelfCondFn f);
// Two passes at the same (x_t, t): the first, with zeros and without gradient, gives the estimate the second
// sees. Training uses it with probability 1/2 (Chen et al. 2022, Alg. 1); evaluation always: the output is a
// deterministic function of (x_t, t), so the ELBO of this denoiser is a valid bound. `p` must outlive the result.
DenoiseFn self_condition_two_pass(const Process& p, SelfCondFn f);
// Sampling (Chen et al. 2022, Alg. 2): each call sees the estimate of the previous call (zeros at the first),
// so a sampler feeds back the previous step's x0 estimate. The state is shared by copies of the returned
// function: build one per chain. A call on another number of rows than the last (a sampler that evaluates a
// subset of rows, e.g. mdlm-cached) is refused: which rows the previous estimates belong to is unknown.
DenoiseFn self_condition_feedback(const Process& p, SelfCondFn f);

}  // namespace gsdiff
