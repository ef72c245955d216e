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
  throw ConfigError("parameterization must be one of eps, x0, v, score, velocity; got '" + name + "'");
}

std::string param_name(Param p) {
  switch (p) {
    case Param::Eps: return "eps";
    case Param::X0: return "x0";
    case Param::V: return "v";
    case Param::Score: return "score";
    case Param::Velocity: return "velocity";
  }
  return "?";
}

namespace {
void check_derivatives(Param p, const torch::Tensor& da, const torch::Tensor& ds) {
  TORCH_CHECK(!needs_derivatives(p) || (da.defined() && ds.defined()), "parameterization '", param_name(p),
              "' needs the schedule's derivatives dalpha/dt and dsigma/dt");
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
  }
  return x0;
}

}  // namespace gsdiff
