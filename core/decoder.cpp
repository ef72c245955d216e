// Discretized Gaussian decoder: bin masses by erfc differences, stable in both tails.
#include "core/decoder.h"

#include <cmath>

namespace gsdiff {

namespace {

// P(a < Z < b) for standard normal Z, from the side where the tail is small (no cancellation).
torch::Tensor normal_mass(const torch::Tensor& a, const torch::Tensor& b) {
  const double r = 1.0 / std::sqrt(2.0);
  auto upper = 0.5 * (torch::erfc(a * r) - torch::erfc(b * r));    // accurate when a > 0
  auto lower = 0.5 * (torch::erfc(-b * r) - torch::erfc(-a * r));  // accurate when b < 0
  return torch::where(a > 0, upper, lower);
}

torch::Tensor safe_log(const torch::Tensor& p) {
  double tiny = p.scalar_type() == torch::kFloat64 ? 1e-300 : 1e-30;
  return torch::log(p.clamp_min(tiny));
}

}  // namespace

torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0, const torch::Tensor& mean,
                                                  const torch::Tensor& log_std) {
  const double half = 1.0 / 255.0;
  auto inv_std = torch::exp(-log_std);
  auto a = (x0 - half - mean) * inv_std;
  auto b = (x0 + half - mean) * inv_std;
  const double inf = std::numeric_limits<double>::infinity();
  a = torch::where(x0 < -1.0 + 1e-3, torch::full_like(a, -inf), a);  // open bottom bin
  b = torch::where(x0 > 1.0 - 1e-3, torch::full_like(b, inf), b);    // open top bin
  return safe_log(normal_mass(a, b));
}

torch::Tensor discretized_gaussian_bin_log_probs(const torch::Tensor& mean, const torch::Tensor& log_std) {
  auto grid = torch::arange(256, mean.options()) / 127.5 - 1.0;  // [256]
  return discretized_gaussian_log_likelihood(grid, mean.unsqueeze(-1), log_std.unsqueeze(-1));
}

}  // namespace gsdiff
