// Conversions between eps, x0, v and score predictions for x_t = alpha x0 + sigma eps.
#include "core/parameterization.h"

#include "core/options.h"

namespace gsdiff {

Param parse_param(const std::string& name) {
  if (name == "eps") return Param::Eps;
  if (name == "x0") return Param::X0;
  if (name == "v") return Param::V;
  if (name == "score") return Param::Score;
  if (name == "velocity") return Param::Velocity;
  if (name == "edm") return Param::Edm;
  throw ConfigError("parameterization must be one of eps, x0, v, score, velocity, edm; got '" + name + "'");
}

std::string param_name(Param p) {
  switch (p) {
    case Param::Eps: return "eps";
    case Param::X0: return "x0";
    case Param::V: return "v";
    case Param::Score: return "score";
    case Param::Velocity: return "velocity";
    case Param::Edm: return "edm";
  }
  return "?";
}

namespace {
void check_derivatives(Param p, const torch::Tensor& da, const torch::Tensor& ds) {
  TORCH_CHECK(!needs_derivatives(p) || (da.defined() && ds.defined()), "parameterization '", param_name(p),
              "' needs the schedule's derivatives dalpha/dt and dsigma/dt");
  TORCH_CHECK(p != Param::Edm, "parameterization 'edm' needs sigma_data: use EdmPrecond");
}
}  // namespace

torch::Tensor x0_from_output(Param p, const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& a,
                             const torch::Tensor& s, const torch::Tensor& da, const torch::Tensor& ds) {
  check_derivatives(p, da, ds);
  switch (p) {
    case Param::Eps: return x0_from_eps(out, xt, a, s);
    case Param::X0: return out;
    // alpha x_t - sigma v = (alpha^2 + sigma^2) x0
    case Param::V: return (a * xt - s * out) / (a * a + s * s);
    // eps = -sigma score
    case Param::Score: return (xt + s * s * out) / a;
    case Param::Velocity: return (ds * xt - s * out) / (ds * a - s * da);
    case Param::Edm: break;
  }
  return out;
}

torch::Tensor output_from_x0(Param p, const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& a,
                             const torch::Tensor& s, const torch::Tensor& da, const torch::Tensor& ds) {
  check_derivatives(p, da, ds);
  switch (p) {
    case Param::Eps: return eps_from_x0(x0, xt, a, s);
    case Param::X0: return x0;
    case Param::V: return a * eps_from_x0(x0, xt, a, s) - s * x0;
    case Param::Score: return -eps_from_x0(x0, xt, a, s) / s;
    case Param::Velocity: return da * x0 + ds * eps_from_x0(x0, xt, a, s);
    case Param::Edm: break;
  }
  return x0;
}

// With s~ = sigma / alpha and x~ = x_t / alpha: c_in x~ = x_t / sqrt(sigma^2 + sd^2 alpha^2).
torch::Tensor EdmPrecond::input(const torch::Tensor& xt, const torch::Tensor& a, const torch::Tensor& s) const {
  return xt * torch::rsqrt(s * s + sigma_data * sigma_data * a * a);
}

torch::Tensor EdmPrecond::x0(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& a,
                             const torch::Tensor& s) const {
  const double sd2 = sigma_data * sigma_data;
  auto st = s / a, xv = xt / a;                    // s~, x~
  auto d = st * st + sd2;
  return sd2 / d * xv + st * sigma_data * torch::rsqrt(d) * out;  // c_skip x~ + c_out F
}

torch::Tensor EdmPrecond::output(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& a,
                                 const torch::Tensor& s) const {
  const double sd2 = sigma_data * sigma_data;
  auto st = s / a, xv = xt / a;
  auto d = st * st + sd2;
  return (x0 - sd2 / d * xv) / (st * sigma_data * torch::rsqrt(d));  // (x0 - c_skip x~) / c_out
}

}  // namespace gsdiff
