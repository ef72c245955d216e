// Toy sets: 2-D Gaussian mixture, checkerboard, and a Markov chain with exact entropy.
#pragma once
#include <torch/torch.h>

#include <array>
#include <vector>

namespace gsdiff::data {

// Mixture of isotropic 2-D Gaussians.
struct GmmSpec {
  std::vector<std::array<double, 2>> means;
  std::vector<double> stds;
  std::vector<double> weights;  // normalised on use
  // k equal-weight components on a circle of `radius`, each with standard deviation `std`.
  static GmmSpec ring(int64_t k = 8, double radius = 2.0, double std = 0.1);
};
torch::Tensor sample_gmm(int64_t n, const GmmSpec& spec, torch::Generator gen);  // float [n,2]
torch::Tensor gmm_mean(const GmmSpec& spec);        // double [2]: sum_k w_k mu_k
torch::Tensor gmm_covariance(const GmmSpec& spec);  // double [2,2]: sum_k w_k (s_k^2 I + mu_k mu_k^T) - m m^T

// Uniform on the "black" cells ((row + col) even) of a cells x cells board covering
// [-half_width, half_width]^2; cells must be even. float [n,2].
torch::Tensor sample_checkerboard(int64_t n, torch::Generator gen, int64_t cells = 4, double half_width = 2.0);

// A first-order Markov chain over K symbols, sequences of length L:
// p(x) = pi0(x_1) prod_{t>1} P(x_{t-1}, x_t). With p_t = pi0 P^{t-1} the marginal at step t,
// the entropy of a whole sequence is exactly
//   H = H(pi0) + sum_{t=2..L} sum_i p_{t-1}(i) H(P(i, .))     (chain rule of entropy),
// which for a stationary start pi0 = pi reduces to H(pi) + (L-1) sum_i pi_i H(P(i, .)).
class MarkovChain {
 public:
  // transition: [K,K] rows summing to 1; initial: [K] or undefined for the stationary distribution.
  MarkovChain(torch::Tensor transition, int64_t length, torch::Tensor initial = {});
  // The default toy: K = 4, a fixed sticky transition matrix, stationary start.
  static MarkovChain example(int64_t length = 8);
  torch::Tensor sample(int64_t n, torch::Generator gen) const;  // int64 [n,L]
  torch::Tensor log_prob(const torch::Tensor& x) const;          // double [n], nats
  double entropy_nats() const;                                   // of a whole length-L sequence
  torch::Tensor stationary() const;                              // double [K]: pi P = pi
  int64_t vocab() const { return transition_.size(0); }
  int64_t length() const { return length_; }
  const torch::Tensor& transition() const { return transition_; }
  const torch::Tensor& initial() const { return initial_; }

 private:
  torch::Tensor transition_, initial_;  // double
  int64_t length_;
};

}  // namespace gsdiff::data
