// Temperature and nucleus (top-p) on p(x0 | x_t) as a DenoiseFn wrapper.
#pragma once
#include <torch/torch.h>

#include "core/distributions.h"
#include "core/elbo.h"
#include "core/process.h"

namespace gsdiff {

// What the discrete samplers draw x0 from: p(x0 | x_t)^(1 / temperature), renormalised, then restricted to its
// nucleus (Holtzman et al. 2020): the fewest most probable x0 whose mass reaches top_p, renormalised.
struct TokenFilterOptions {
  TORCH_ARG(double, temperature) = 1.0;  // > 0; 1 = the model's law, < 1 sharper, > 1 flatter
  TORCH_ARG(double, top_p) = 1.0;        // in (0, 1]; 1 = no truncation

 public:
  bool identity() const { return temperature_ == 1.0 && top_p_ == 1.0; }
};

// Throws std::invalid_argument naming the option and its range.
void check_token_filter(const TokenFilterOptions& o);

// log p(x0 | x_t) [B, ..., K] (normalised, -inf allowed) -> the filtered law's log-probabilities, float64
// [B, ..., K]: lp / temperature renormalised, then -inf outside the nucleus (the most probable x0 is always kept;
// ties at the nucleus edge are broken by index).
torch::Tensor filter_logp(const torch::Tensor& logp, const TokenFilterOptions& o);

// A DenoiseFn whose output, read by p.read_output, is filter_logp of f's prediction: every sampler that calls
// predict (ancestral, tau-leaping, euler, tweedie, mdlm-cached) then draws from the filtered law. For the Bayes
// parameterisation the output is filtered log p minus log q(x_t | x0) (read_output adds it back), for the masked
// one the filtered log p itself. Needs a categorical process (network input = x_t); f unchanged when o is the
// identity. p must outlive the result.
DenoiseFn filtered_denoiser(const Process& p, DenoiseFn f, const TokenFilterOptions& o);

// Draws from the filtered law are by float64 Gumbel-max (sample_gumbel_max, core/distributions.h).

}  // namespace gsdiff
