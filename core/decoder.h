// Discretized Gaussian decoder over 256 levels (Ho et al. 2020, eq. 13): log-likelihood and bits/dim.
#pragma once
#include <torch/torch.h>

namespace gsdiff {

// Data convention (DESIGN.md §4): level v in 0..255 maps to x = v / 127.5 - 1; bins have
// half-width 1/255 around each x; the edge bins are open (extend to -inf and +inf).
inline torch::Tensor levels_to_unit(const torch::Tensor& v) { return v.to(torch::kFloat32) / 127.5 - 1.0; }
inline torch::Tensor unit_to_levels(const torch::Tensor& x) {
  return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch::kLong);
}

// log P(bin of x0 | N(mean, exp(log_std)^2)), x0 on the grid; shape of x0.
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0, const torch::Tensor& mean,
                                                  const torch::Tensor& log_std);

// log P(bin k) for all 256 bins: [..., 256]; the probabilities sum to 1.
torch::Tensor discretized_gaussian_bin_log_probs(const torch::Tensor& mean, const torch::Tensor& log_std);

// nats -> bits per dimension: nats / (D ln 2).
inline double bits_per_dim(double nats, double dims) { return nats / (dims * 0.69314718055994530942); }

}  // namespace gsdiff
