// MD4 / GenMD4 (Shi et al. 2024): absorbing diffusion with learned polynomial, optionally state-dependent, schedules.
#pragma once
#include "core/mixture_kernels.h"

namespace gsdiff {

struct PolyMaskOptions {
  TORCH_ARG(DiscreteOptions, base) = {};          // K, t_min, dtype, parameterization; steps 0 (continuous time)
  TORCH_ARG(bool, state_dependent) = true;       // GenMD4: one exponent per token; false: MD4's one shared exponent
  TORCH_ARG(double, w_init) = 1.0;               // starting exponent (1: MDLM's linear schedule)
  TORCH_ARG(std::vector<double>, w_values) = {};  // trained exponents (empty: all w_init)
};

// Each token k is masked by time t with probability 1 - alpha_k(t), alpha_k(t) = 1 - t^{w_k}, w_k > 0 learned (Shi et
// al. 2024, sec. 5: MD4's polynomial schedule, and GenMD4's state-dependent one with w per token). Forward rate to the
// mask beta_k = -alpha_k' / alpha_k; the lens's CTMC bound then has, per masked position with the model's
// p = p(x0 | x_t) and c_k = -alpha_k' / (1 - alpha_k) = w_k / t,
//   c_{x0} (-log p(x0)) + sum_k p_k c_k - c_{x0}
// (the model's unmasking rate into k is p_k c_k, the true one c_{x0}: GenMD4's objective; with all w_k equal the last
// two terms cancel and it is MD4's weighted cross-entropy, w = 1 MDLM's). The Bayes reading p(x0 | x_t = M) ∝
// exp(logits) t^{w_k} lets the network see the schedule. The exponents train on the ELBO: pathwise through c and the
// Bayes reading, and through which positions are masked by REINFORCE with a leave-one-out baseline
// (log_forward_density), as GenMD4 does. Continuous time only; mdlm-cached does not apply (p(x0 | x_t) depends on t).
class PolyMaskProcess : public CategoricalProcess {
 public:
  explicit PolyMaskProcess(PolyMaskOptions opts);
  std::string name() const override { return "absorbing-poly"; }
  nlohmann::json options_json() const override;
  int64_t mask_token() const { return K_; }

  torch::Tensor qbar(const torch::Tensor& t) const override;
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rate(const torch::Tensor& t) const override;
  torch::Tensor prior_probs() const override;
  torch::Tensor marginal_probs(const torch::Tensor& x0, const torch::Tensor& t) const override;
  torch::Tensor likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const override;
  // In logs directly (w_k log t when masked): differentiable in w without a log 0 on the path.
  torch::Tensor log_likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const override;
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;

  torch::Tensor exponents() const;  // w [K] float64 (differentiable)
  std::vector<torch::Tensor> learnable_parameters() const override { return {rho_}; }
  // log q(x_t | x0) summed over positions [B], differentiable in the exponents (REINFORCE's score).
  torch::Tensor log_forward_density(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t) const override;

 private:
  torch::Tensor mask_prob(const torch::Tensor& t) const;  // 1 - alpha_k(t) = t^{w_k}  [N, K]
  torch::Tensor alpha(const torch::Tensor& t) const;      // [N, K]
  torch::Tensor mask_kernel(const torch::Tensor& stay, const torch::Tensor& to_mask, double mask_stay) const;
  PolyMaskOptions opts_;
  torch::Tensor rho_;  // float64 leaf [K] or [1]: w = softplus(rho)
};

// Parses {"name": "absorbing-poly", K, t_min, dtype, parameterization, state_dependent, w_init, w_values}; errors
// name the field.
PolyMaskOptions poly_mask_options_from_json(const nlohmann::json& j);

}  // namespace gsdiff
