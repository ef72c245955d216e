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

 protected:
  torch::Tensor build_grid_table() const override;  // cumulative products

 private:
  int64_t index_of(double t, const char* what) const;
  DiscretizedGaussianOptions opts_;
};

// `blackout` (Santos et al. 2023): each of x0 individuals dies at rate mu(t) = beta(t) of the survival
// schedule; x_t ~ Binomial(x0, alpha_t); R(n, n - 1) = n mu(t); prior: all zeros.
class BlackoutProcess : public CategoricalProcess {
 public:
  explicit BlackoutProcess(DiscreteOptions opts);
  std::string name() const override { return "blackout"; }
  nlohmann::json options_json() const override;
  torch::Tensor qbar(const torch::Tensor& t) const override;
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override;
  torch::Tensor rate(const torch::Tensor& t) const override;
  torch::Tensor prior_probs() const override;

 private:
  torch::Tensor binomial_matrix(const torch::Tensor& p) const;  // [N, V, V]: Bin(y; x, p_n)
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
