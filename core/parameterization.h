// Reading a network's output as eps, x0, v or score, with exact conversions (x_t = alpha x0 + sigma eps).
#pragma once
#include <torch/torch.h>

#include <string>

namespace gsdiff {

enum class Param { Eps, X0, V, Score, Velocity, Edm };

Param parse_param(const std::string& name);  // "eps" | "x0" | "v" | "score" | "velocity" | "edm"
std::string param_name(Param p);

// alpha, sigma broadcast against x_t.  v = alpha eps - sigma x0 (Salimans & Ho 2022);
// score = grad log q(x_t | x0) = -eps / sigma (Song et al. 2021); velocity = d x_t / dt = alpha' x0 + sigma' eps
// (flow matching's target, Lipman et al. 2023; needs the derivatives dalpha, dsigma broadcast like alpha):
// x0 = (sigma' x_t - sigma u) / (sigma' alpha - sigma alpha'), the denominator -sigma^2 d(alpha/sigma)/dt > 0.
torch::Tensor x0_from_output(Param p, const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& alpha,
                             const torch::Tensor& sigma, const torch::Tensor& dalpha = {}, const torch::Tensor& dsigma = {});
torch::Tensor output_from_x0(Param p, const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& alpha,
                             const torch::Tensor& sigma, const torch::Tensor& dalpha = {}, const torch::Tensor& dsigma = {});
inline bool needs_derivatives(Param p) { return p == Param::Velocity; }

// EDM's preconditioning (Karras et al. 2022, Table 1 and sec. 5) on any Gaussian path: x_t = alpha x0 + sigma eps
// is the VE state x~ = x_t / alpha at noise level s~ = sigma / alpha, and
//   x0_hat = D(x~) = c_skip x~ + c_out F(c_in x~, t),  c_skip = sd^2 / (s~^2 + sd^2),
//   c_out = s~ sd / sqrt(s~^2 + sd^2),  c_in = 1 / sqrt(s~^2 + sd^2)   (sd = sigma_data),
// so the network's input and target both have unit variance at every noise level. The network is conditioned on t
// (a monotone function of s~) where EDM feeds c_noise = ln(s~) / 4. (Param::Edm in x0_from_output /
// output_from_x0 is refused: it needs sigma_data, which this carries.)
struct EdmPrecond {
  double sigma_data = 0.5;
  torch::Tensor input(const torch::Tensor& xt, const torch::Tensor& alpha, const torch::Tensor& sigma) const;  // c_in x~
  torch::Tensor x0(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& alpha,
                   const torch::Tensor& sigma) const;
  torch::Tensor output(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& alpha,
                       const torch::Tensor& sigma) const;  // F's target
};

inline torch::Tensor eps_from_x0(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& a,
                                 const torch::Tensor& s) {
  return (xt - a * x0) / s;
}
inline torch::Tensor x0_from_eps(const torch::Tensor& eps, const torch::Tensor& xt, const torch::Tensor& a,
                                 const torch::Tensor& s) {
  return (xt - s * eps) / a;
}

}  // namespace gsdiff
