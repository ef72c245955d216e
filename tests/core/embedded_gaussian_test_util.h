// The exact denoiser of gaussian-embed on a tiny enumerable token problem (shared by core and sample tests).
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/elbo.h"
#include "core/embedded_gaussian.h"

namespace gsdiff::testing {

// A known law over pairs x0 = (x_1, x_2) in {0, 1, 2}^2 (L = 2, K = 3), correlated across positions.
inline torch::Tensor pair_probs() {  // [K, K], sums to 1
  return torch::tensor({{0.30, 0.05, 0.05}, {0.02, 0.20, 0.08}, {0.10, 0.05, 0.15}}, torch::kFloat64);
}

// Exact p(x0 | z_t) by enumeration over the K^2 pairs, returned as per-position log-marginals [B, 2, K]:
// softmax of these logits times E is E[e(x0_l) | z_t], the MMSE denoiser.
inline DenoiseFn exact_pair_denoiser(const EmbeddedGaussianProcess& p, torch::Tensor probs) {
  return [&p, probs](const torch::Tensor& z_in, const torch::Tensor& t) {
    auto v = p.schedule().at(t.to(torch::kFloat64));  // [B]
    auto z = z_in.to(torch::kFloat64) * torch::sqrt(v.alpha * v.alpha + v.sigma * v.sigma).view({-1, 1, 1});  // undo network_input
    auto a = v.alpha.view({-1, 1, 1}), s2 = (v.sigma * v.sigma).view({-1, 1, 1});
    auto E = p.codebook();                                            // [K, d]
    auto D = (z.unsqueeze(2) - a.unsqueeze(-1) * E).pow(2).sum(-1);  // ||z_l - alpha e_k||^2 [B, 2, K]
    auto ll = -D / (2.0 * s2);                                        // [B, 2, K]
    auto logw = torch::log(probs).unsqueeze(0) + ll.select(1, 0).unsqueeze(2) + ll.select(1, 1).unsqueeze(1);  // [B, K, K]
    auto logZ = torch::logsumexp(logw.flatten(1), 1).view({-1, 1});  // [B, 1]
    auto m0 = torch::logsumexp(logw, 2) - logZ, m1 = torch::logsumexp(logw, 1) - logZ;  // [B, K]
    return torch::stack({m0, m1}, 1).to(z_in.scalar_type());           // [B, 2, K]
  };
}

// All K^2 pairs, each repeated `reps` times: int64 [K^2 reps, 2], row c * reps + r holds pair c = (c / K, c % K).
inline torch::Tensor all_pairs(int64_t K, int64_t reps) {
  auto c = torch::arange(K * K, torch::kLong).repeat_interleave(reps);  // [K^2 reps]
  return torch::stack({c.div(K, "floor"), c.remainder(K)}, 1);
}

}  // namespace gsdiff::testing
