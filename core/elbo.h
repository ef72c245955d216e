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

// The bound for training, from ONE network call per example: each example scores one term of the
// bound, chosen at random and importance-weighted, so every per-example total is an unbiased estimate
// of -ELBO. Discrete time: i ~ U{1..T}, term T * L_{i-1}, where L_0 is the reconstruction (the
// estimator DDPM and iDDPM train with, Ho et al. 2020 eq. 5, Nichol & Dhariwal 2021 sec. 3.1).
// Continuous time: the reconstruction at t_min with probability q (weight 1/q), else the integrand at
// t ~ U(t_min, 1) (weight (1 - t_min)/(1 - q)). t, x_t and the prediction of that call are returned so
// that a hybrid objective reuses them instead of calling the network again.
struct ElboSample {
  ElboTerms terms;  // per-example nats [B]
  torch::Tensor t;     // [B] float64: the time each example was scored at
  torch::Tensor xt;    // [B, ...]
  torch::Tensor pred;  // [B, ...]: read_output of the one network call
  torch::Tensor reconstruction_rows;  // bool [B]: the example scored the reconstruction term (else diffusion)
};
ElboSample sample_negative_elbo(const Process& p, const DenoiseFn& f, const torch::Tensor& x0, torch::Generator& gen,
                                double reconstruction_prob = 0.125, bool low_discrepancy = false);

// Time tensor [B] filled with t (float64, on x's device).
torch::Tensor time_like(const torch::Tensor& x, double t);

// t ~ U(t_min, 1) per example [B]; with low_discrepancy, (u + i / B) mod 1 mapped to [t_min, 1].
torch::Tensor sample_times(int64_t batch, double t_min, bool low_discrepancy, torch::Generator& gen,
                           const torch::Device& device);

}  // namespace gsdiff
