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
  // Continuous time: true integrates over t by adaptive Gauss–Legendre (core/quadrature.h) until the
  // estimated error of the batch-mean diffusion term is <= quadrature_tol nats per data dimension (or
  // max_nodes are spent: then ElboTerms::converged is false); false is Monte Carlo with `time_samples`
  // t per example. Every quadrature node draws x_t from the same noise (common random numbers), so the
  // integrand of each example is one function of t that the quadrature can converge on; the Monte-Carlo
  // part over x_t stays in the spread over examples.
  TORCH_ARG(bool, exact) = false;
  TORCH_ARG(int64_t, time_samples) = 1;
  TORCH_ARG(double, quadrature_tol) = 1e-3;  // nats per dimension
  // Exact continuous time: independent noise streams per example, each one function of t; the integrand is
  // their mean (R times the network calls, about 1/R the variance that one stream leaves to the stderr).
  TORCH_ARG(int64_t, noise_samples) = 1;
  TORCH_ARG(int64_t, max_nodes) = 2048;
  // > 0: a fixed Gauss–Legendre rule with this many nodes instead (exact = true, continuous time), for
  // convergence studies; no error estimate, converged = false.
  TORCH_ARG(int64_t, quadrature_nodes) = 0;
  // Monte-Carlo t on a shifted lattice across the batch (VDM's low-discrepancy sampler).
  TORCH_ARG(bool, low_discrepancy) = false;
  // Monte-Carlo t proposal: "uniform" (t ~ U(t_min, 1), or i ~ U{2..T}) or "logsnr" (Gaussian processes:
  // log-SNR uniform over [lambda(1), lambda(t_min)], Song et al. 2021 sec. 5, p(t) ∝ g(t)^2 / sigma_t^2;
  // discrete time: P(i) ∝ lambda(t_{i-1}) - lambda(t_i)), importance-weighted so the estimate stays unbiased.
  TORCH_ARG(std::string, time_sampling) = "uniform";
};

// Per-example nats [B]; total() is the bound on -log p(x0).
struct ElboTerms {
  torch::Tensor prior, diffusion, reconstruction;
  torch::Tensor total() const { return prior + diffusion + reconstruction; }
  // How the diffusion term was computed: network calls per example for it (quadrature nodes, T - 1 terms
  // or Monte-Carlo samples), the estimated error of its batch mean in nats per example (quadrature only),
  // and whether it is exact in t (all T terms, or a quadrature that met its tolerance).
  int64_t nodes = 0;
  double quadrature_error = 0;
  bool converged = false;
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
  torch::Tensor weight;  // [B] float64: the importance weight 1 / P of each example's term (terms = weight * term)
  torch::Tensor bin;     // long [B]: the term's bin under OneCallOptions::bin_probs (discrete time i - 1;
                         // continuous time the bin of t, -1 for the reconstruction); undefined without bin_probs
};

// How the one-call estimator picks each example's term. Every choice is importance-weighted by 1 / P(term), so
// the per-example total stays an unbiased estimate of -ELBO; the choices differ only in variance.
struct OneCallOptions {
  TORCH_ARG(double, reconstruction_prob) = 0.125;  // continuous time: P(the reconstruction term at t_min)
  TORCH_ARG(bool, low_discrepancy) = false;         // stratified u across the batch (VDM)
  // "uniform": i ~ U{1..T} / t ~ U(t_min, 1). "logsnr" (Gaussian processes; Song et al. 2021 sec. 5): continuous
  // time t with density ∝ -lambda'(t); discrete time the reconstruction with P = 1/T, else i in 2..T with
  // P(i) ∝ lambda(t_{i-1}) - lambda(t_i). Ignored when bin_probs is defined.
  TORCH_ARG(std::string, time_sampling) = "uniform";
  // Defined [N] (positive, summing to 1): a proposal over N equal bins, e.g. iDDPM's loss-aware sampler
  // (train/loss_aware.h). Discrete time N = T and P(term L_{i-1}) = bin_probs[i - 1]; continuous time the
  // diffusion term's t falls in bin k of [t_min, 1] with probability bin_probs[k], uniform inside it.
  TORCH_ARG(torch::Tensor, bin_probs);
};
ElboSample sample_negative_elbo(const Process& p, const DenoiseFn& f, const torch::Tensor& x0, torch::Generator& gen,
                                const OneCallOptions& opts);
inline ElboSample sample_negative_elbo(const Process& p, const DenoiseFn& f, const torch::Tensor& x0,
                                       torch::Generator& gen, double reconstruction_prob = 0.125,
                                       bool low_discrepancy = false) {
  return sample_negative_elbo(p, f, x0, gen,
                              OneCallOptions().reconstruction_prob(reconstruction_prob).low_discrepancy(low_discrepancy));
}

// Time tensor [B] filled with t (float64, on x's device).
torch::Tensor time_like(const torch::Tensor& x, double t);

// t ~ U(t_min, 1) per example [B]; with low_discrepancy, (u + i / B) mod 1 mapped to [t_min, 1].
torch::Tensor sample_times(int64_t batch, double t_min, bool low_discrepancy, torch::Generator& gen,
                           const torch::Device& device);

}  // namespace gsdiff
