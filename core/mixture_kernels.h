// Uniform and absorbing kernels: Qbar_t = alpha_t I + (1 - alpha_t) 1 pi^T, with O(V) gathers and closed-form ELBOs.
#pragma once
#include "core/categorical.h"
#include "core/discrete_schedules.h"

namespace gsdiff {

struct DiscreteOptions {
  TORCH_ARG(int64_t, K) = 27;                // data categories
  TORCH_ARG(int64_t, steps) = 0;             // T; 0 = continuous time
  TORCH_ARG(double, t_min) = 0.0;
  TORCH_ARG(SurvivalSchedule, schedule) = {};
  TORCH_ARG(std::string, dtype) = "float32"; // compute precision of probabilities
  TORCH_ARG(std::string, parameterization) = "bayes";  // bayes | masked (CategoricalProcess::read_output)
};

// Kernels that jump to a fixed distribution pi at rate beta(t) = -alpha'/alpha:
//   R_t = beta(t) (1 pi^T - I),  Qbar_t = alpha_t I + (1 - alpha_t) 1 pi^T,  Q_{t|s} = same with alpha_t / alpha_s.
class MixtureKernelProcess : public CategoricalProcess {
 public:
  torch::Tensor qbar(const torch::Tensor& t) const override;
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rate(const torch::Tensor& t) const override;
  torch::Tensor prior_probs() const override { return pi_; }

  torch::Tensor marginal_probs(const torch::Tensor& x0, const torch::Tensor& t) const override;
  torch::Tensor likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const override;
  torch::Tensor mul_qbar(const torch::Tensor& w, const torch::Tensor& t) const override;
  torch::Tensor step_probs_into(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rates_into(const torch::Tensor& xt, const torch::Tensor& t) const override;

  const SurvivalSchedule& schedule() const { return opts_.schedule(); }
  nlohmann::json options_json() const override;

 protected:
  MixtureKernelProcess(DiscreteOptions opts, int64_t V, torch::Tensor pi);
  // alpha_t per example, shaped to broadcast against x [B, ...] plus one trailing axis.
  torch::Tensor alpha_like(const torch::Tensor& t, const torch::Tensor& x, torch::ScalarType dt) const;
  DiscreteOptions opts_;
  torch::Tensor pi_;  // [V] float64
};

// `uniform`: pi = 1/K (Austin et al. 2021, D3PM uniform; Schiff et al. 2025, UDLM).
class UniformProcess : public MixtureKernelProcess {
 public:
  explicit UniformProcess(DiscreteOptions opts);
  std::string name() const override { return "uniform"; }
  // Closed form of the rate integrand with a = alpha_t, b = (1 - alpha_t)/K, x = x_t:
  //   w_k = p(k | x_t) / (a [k = x] + b),  ratio_theta(y) = a w_y + b sum_k w_k,
  //   ratio_q(y) = (a [y = x0] + b) / (a [x = x0] + b),  rates into x: beta/K from every y != x.
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;
};

// `absorbing`: pi = e_mask, mask = state K (Austin et al. 2021; Sahoo et al. 2024, MDLM; Shi et al. 2024, MD4).
class AbsorbingProcess : public MixtureKernelProcess {
 public:
  explicit AbsorbingProcess(DiscreteOptions opts);
  std::string name() const override { return "absorbing"; }
  int64_t mask_token() const { return K_; }
  // MDLM / MD4: -alpha'_t / (1 - alpha_t) * (-log p(x0 | x_t)) on masked positions, 0 elsewhere.
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;
};

}  // namespace gsdiff
