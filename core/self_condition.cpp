// Self-conditioning's estimate and its three uses: zeros, two passes (training, the bound), feedback (sampling).
#include "core/self_condition.h"

#include <memory>
#include <stdexcept>
#include <string>

namespace gsdiff {

using torch::Tensor;

Tensor self_condition_estimate(const Process& p, const Tensor& out, const Tensor& net_in, const Tensor& t) {
  torch::NoGradGuard ng;
  auto pred = p.read_output(out, p.state_from_network_input(net_in, t), t);  // x0_hat, or log p(x0 | x_t)
  if (p.space() == Space::Discrete) pred = torch::exp(pred);                 // [B, ..., K] probabilities
  return pred.detach().to(out.scalar_type());
}

DenoiseFn self_condition_zeros(SelfCondFn f) {
  return [f = std::move(f)](const Tensor& x, const Tensor& t) { return f(x, t, Tensor()); };
}

DenoiseFn self_condition_two_pass(const Process& p, SelfCondFn f) {
  return [pp = &p, f = std::move(f)](const Tensor& x, const Tensor& t) {
    Tensor est;
    {
      torch::NoGradGuard ng;  // Chen et al. 2022, Alg. 1: stop_gradient on the first estimate
      est = self_condition_estimate(*pp, f(x, t, Tensor()), x, t);
    }
    return f(x, t, est);
  };
}

DenoiseFn self_condition_feedback(const Process& p, SelfCondFn f) {
  auto prev = std::make_shared<Tensor>();
  return [pp = &p, f = std::move(f), prev](const Tensor& x, const Tensor& t) {
    if (prev->defined() && prev->size(0) != x.size(0))
      throw std::invalid_argument("self-conditioning: the previous estimate has " + std::to_string(prev->size(0)) +
                                  " rows but this call " + std::to_string(x.size(0)) +
                                  "; a sampler that calls the network on a subset of rows (mdlm-cached) cannot feed "
                                  "estimates back (use --sampler ancestral)");
    auto out = f(x, t, *prev);
    *prev = self_condition_estimate(*pp, out, x, t);
    return out;
  };
}

}  // namespace gsdiff
