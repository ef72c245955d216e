// Exact likelihood of a continuous model through the probability-flow ODE with a Hutchinson trace estimator.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/elbo.h"
#include "core/process.h"

namespace gsdiff {

struct OdeLikelihoodOptions {
  TORCH_ARG(int64_t, steps) = 100;                  // fixed steps from t_start to 1
  TORCH_ARG(std::string, integrator) = "rk4";       // rk4 | heun
  TORCH_ARG(std::string, trace) = "rademacher";     // rademacher | gaussian (Hutchinson) | exact (D backward passes)
  TORCH_ARG(double, t_start) = -1.0;                // < 0: the process's t_min
};

// Per-example results, nats [B] (float64).
struct OdeLikelihood {
  torch::Tensor nll;         // -log p_{t_start}(x0) = -(prior_logp + delta_logp)
  torch::Tensor prior_logp;  // log N(x_1; 0, prior_std^2 I) at the ODE's end point
  torch::Tensor delta_logp;  // int_{t_start}^1 div v(x_t, t) dt  (log p_t0(x0) - log p_1(x_1))
  torch::Tensor x1;          // the end point x_1 [B, ...]
};

// -log p(x0) of a Gaussian-process model by the probability-flow ODE (Song et al. 2021, Sec. 4.3;
// Grathwohl et al. 2018, FFJORD): dx/dt = v = f(t) x - 1/2 g(t)^2 score(x, t), score = -(x - alpha x0_hat)/sigma^2,
// d log p_t(x_t)/dt = -div v, integrated from x_{t_start} = x0 to t = 1. div v is estimated by
// eps^T (dv/dx) eps with one noise vector per example held fixed along the path (unbiased for the
// Gaussian and Rademacher choices), or computed exactly. The DenoiseFn must be differentiable in x.
// The ODE state is float64; the network is fed x0's dtype. The result is exact up to the integrator and the
// estimator, and refers to the density at t_start.
OdeLikelihood ode_nll(const Process& p, const DenoiseFn& f, const torch::Tensor& x0, torch::Generator& gen,
                      const OdeLikelihoodOptions& opts = {});

// 8-bit data (uniform dequantisation, Theis et al. 2016; Ho et al. 2019): levels v in {0..255}^D map to
// x = (v + u) / 128 - 1, u ~ U[0, 1)^D (so u = 1/2 is DESIGN's x = (2v + 1)/256 - 1). Since
// P(v) = int_{[0,1)^D} p_Y(v + u) du and p_Y(y) = p_X(y / 128 - 1) / 128^D, Jensen gives
//   -log P(v) <= E_u[-log p_X(x)] + D log 128,   bits/dim = (E_u[-log p_X(x)] / D + log 128) / log 2.
torch::Tensor dequantize_uniform(const torch::Tensor& levels, torch::Generator& gen);  // float32 x, like levels
double dequantized_bits_per_dim(double nll_nats_per_example, int64_t dims);

}  // namespace gsdiff
