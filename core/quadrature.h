// Gauss–Legendre quadrature: fixed nodes and weights, and adaptive composite integration of batched integrands.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <utility>
#include <vector>

namespace gsdiff {

// n nodes and weights with sum_i w_i f(x_i) ~ int_a^b f(x) dx, exact for polynomials of degree 2n - 1.
std::pair<std::vector<double>, std::vector<double>> gauss_legendre(int n, double a = 0.0, double b = 1.0);

// The result of integrating a batch of integrands f(t) -> [B] over [a, b].
struct QuadratureResult {
  torch::Tensor value;     // [B] float64: the integral of each integrand
  double error = 0;        // estimated remaining error of value.mean() (0 when not estimated)
  int64_t evaluations = 0; // calls of f (nodes used)
  bool converged = false;  // error <= tolerance
};

// Globally adaptive composite Gauss–Legendre (order-n rule per panel). Each panel holds its n-node value
// on the whole panel ("coarse") and on its two halves ("fine"); its error estimate is
// |mean over the batch of (fine - coarse)|, an upper estimate of the fine value's error for smooth f.
// The panel with the largest estimate is bisected until the sum of estimates is <= tol or another
// bisection would pass max_evaluations. The first panels are graded dyadically towards a (where
// SNR(t_min) or a rate may blow up): edges a + (b - a) 2^-k, k = 6..0. The value is the sum of fine values.
QuadratureResult integrate_adaptive(const std::function<torch::Tensor(double)>& f, double a, double b, double tol,
                                    int64_t max_evaluations, int order = 4);

}  // namespace gsdiff
