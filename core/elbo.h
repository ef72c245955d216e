// The unified negative ELBO: prior + diffusion + reconstruction, for any process (DESIGN.md §1).
#pragma once
#include <torch/torch.h>

#include <functional>

#include "core/process.h"

namespace gsdiff {

// The network as the ELBO sees it: (network_input(x_t, t), t) -> raw output. Class labels etc. are bound in.
using DenoiseFn = std::function<torch::Tensor(const torch::Tensor& net_in, const torch::Tensor& t)>;

// pred = read_output(denoise(network_input(x_t, t), t), x_t, t).
torch::Tensor predict(const Process& p, const DenoiseFn& f, const torch::Tensor& xt, const torch::Tensor& t);

struct ElboOptions {
  // Discrete time: true sums all T - 1 KL terms; false samples `time_samples` step indices per example.
  // Continuous time: true integrates over t by Gauss–Legendre with `time_samples` nodes; false is Monte Carlo.
  TORCH_ARG(bool, exact) = false;
  TORCH_ARG(int64_t, time_samples) = 1;
  // Monte-Carlo t on a shifted lattice across the batch (VDM's low-discrepancy sampler).
  TORCH_ARG(bool, low_discrepancy) = false;
};

// Per-example nats [B]; total() is the bound on -log p(x0).
struct ElboTerms {
  torch::Tensor prior, diffusion, reconstruction;
  torch::Tensor total() const { return prior + diffusion + reconstruction; }
};

ElboTerms negative_elbo(const Process& p, const DenoiseFn& f, const torch::Tensor& x0, torch::Generator& gen,
                        const ElboOptions& opts = {});

// Time tensor [B] filled with t (float64, on x's device).
torch::Tensor time_like(const torch::Tensor& x, double t);

// t ~ U(t_min, 1) per example [B]; with low_discrepancy, (u + i / B) mod 1 mapped to [t_min, 1].
torch::Tensor sample_times(int64_t batch, double t_min, bool low_discrepancy, torch::Generator& gen,
                           const torch::Device& device);

}  // namespace gsdiff
