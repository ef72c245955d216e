// Dense kernels: D3PM's discretized Gaussian, blackout (pure death) and a user's rate matrix.
#pragma once
#include "core/categorical.h"
#include "core/discrete_schedules.h"
#include "core/mixture_kernels.h"

namespace gsdiff {

// `discretized-gaussian` (Austin et al. 2021, App. A.2.2), discrete time only, ordinal states 0..K-1:
//   Q_t[i, j] = exp(-4 (i - j)^2 / ((K - 1)^2 beta_t)) / sum_{n=-(K-1)}^{K-1} exp(-4 n^2 / ((K - 1)^2 beta_t)),  i != j,
//   Q_t[i, i] = 1 - sum_{j != i} Q_t[i, j];  beta_t linear from beta_min to beta_max over T steps;  Qbar_t = Q_1 ... Q_t.
struct DiscretizedGaussianOptions {
  TORCH_ARG(int64_t, K) = 256;
  TORCH_ARG(int64_t, steps) = 1000;
  TORCH_ARG(double, beta_min) = 0.02;
  TORCH_ARG(double, beta_max) = 1.0;
  TORCH_ARG(std::string, dtype) = "float32";
  TORCH_ARG(std::string, parameterization) = "bayes";  // bayes | masked (CategoricalProcess::read_output)
};

class DiscretizedGaussianProcess : public CategoricalProcess {
 public:
  explicit DiscretizedGaussianProcess(DiscretizedGaussianOptions opts);
  std::string name() const override { return "discretized-gaussian"; }
  nlohmann::json options_json() const override;
  torch::Tensor one_step(int64_t i) const;  // Q_i [V, V], 1 <= i <= T
  torch::Tensor qbar(const torch::Tensor& t) const override;                         // t on the grid
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;  // s, t on the grid
  torch::Tensor rate(const torch::Tensor& t) const override;                         // error: no generator
  torch::Tensor prior_probs() const override;                                        // uniform (the stationary law)
  bool has_generator() const override { return false; }
  bool ordinal_states() const override { return true; }

 protected:
  torch::Tensor build_grid_table() const override;  // cumulative products

 private:
  int64_t index_of(double t, const char* what) const;
  DiscretizedGaussianOptions opts_;
};

// `blackout` (Santos et al. 2023): each of x0 individuals dies at rate mu(t) = beta(t) of the survival
// schedule; x_t ~ Binomial(x0, alpha_t); R(n, n - 1) = n mu(t); prior: all zeros.
// The ELBO terms are closed forms in the births n = x0 - x_t, with binomials from lgamma in float64: the dense
// p / q(x_t | x0) route divides by binomials that underflow at K = 256 (core/blackout.cpp).
class BlackoutProcess : public CategoricalProcess {
 public:
  explicit BlackoutProcess(DiscreteOptions opts);
  std::string name() const override { return "blackout"; }
  nlohmann::json options_json() const override;
  torch::Tensor qbar(const torch::Tensor& t) const override;
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rate(const torch::Tensor& t) const override;
  torch::Tensor prior_probs() const override;
  bool ordinal_states() const override { return true; }  // counts 0..K-1; reverse jumps are births n -> n + 1

  // Gathers in closed form (no [T + 1, V, V] table: 525 MB at K = 256, T = 1000): Bin(.; x0, alpha_t) rows,
  // x_t by binomial sampling.
  torch::Tensor marginal_probs(const torch::Tensor& x0, const torch::Tensor& t) const override;
  // x_t: the generic inverse-CDF draw from the closed-form marginal (one uniform per element, so the quadrature's
  // common random numbers give an x_t monotone in t; at::binomial's rejection sampler did not)
  torch::Tensor likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const override;
  torch::Tensor log_likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const override;
  // KL over the births back to s: q(x_s - x_t | x_t, x0) = Bin(x0 - x_t, r), r = (alpha_s - alpha_t) / (1 - alpha_t),
  // against p(x_s | x_t) = sum_n p(x0 = x_t + n | x_t) Bin(x_s - x_t; n, r), a mixture of normalised rows.
  torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                        const torch::Tensor& logp_x0) const override;
  // The rate integrand, with only y = x_t + 1 flowing into x_t: c (E - n + n log(n / E)), n = x0 - x_t,
  // E = E_p[x0 - x_t], c = -alpha'_t / (1 - alpha_t) (the generic form's r_q = n c / ((x_t + 1) mu)).
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;
  torch::Tensor sample_reverse(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                               const torch::Tensor& logp_x0, torch::Generator& gen) const override;

 private:
  torch::Tensor binomial_matrix(const torch::Tensor& p) const;  // [N, V, V]: Bin(y; x, p_n), float64
  // p(x_s - x_t = d | x_t) [B, ..., V] over d, mixing the rows P[n, d] = Bin(d; n, r) [B, V, V]; and log P.
  torch::Tensor reverse_births(const torch::Tensor& xt, const torch::Tensor& P, const torch::Tensor& logp) const;
  torch::Tensor birth_matrices(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& like) const;
  DiscreteOptions opts_;
};

// `rate-matrix`: a user's generator R (K x K, off-diagonals >= 0, rows sum to 0) with
// Qbar_t = exp(B(t) R), B(t) = -log alpha(t) of the survival schedule (matrix exponential, once per time grid).
struct RateMatrixOptions {
  TORCH_ARG(DiscreteOptions, base) = {};
  TORCH_ARG(std::vector<std::vector<double>>, rates) = {};
  TORCH_ARG(std::vector<double>, prior) = {};  // empty: the stationary distribution of R
  TORCH_ARG(std::string, source) = "";         // file the matrix came from (for messages)
};

// Reads and validates a rate-matrix JSON file ({"rates": [[...]], "schedule": ..., "prior": [...]});
// errors name the file, the row and the violated rule.
RateMatrixOptions rate_matrix_options_from_json(const nlohmann::json& j);

class RateMatrixProcess : public CategoricalProcess {
 public:
  explicit RateMatrixProcess(RateMatrixOptions opts);
  std::string name() const override { return "rate-matrix"; }
  nlohmann::json options_json() const override;
  torch::Tensor qbar(const torch::Tensor& t) const override;
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rate(const torch::Tensor& t) const override;
  torch::Tensor prior_probs() const override { return prior_; }
  const torch::Tensor& generator() const { return R_; }
  std::vector<double> prior_vec() const {
    auto p = prior_.contiguous();
    return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  }

 private:
  RateMatrixOptions opts_;
  torch::Tensor R_, prior_;  // [K, K], [K] float64
};

}  // namespace gsdiff
