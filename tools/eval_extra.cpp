// The likelihood loop behind `gsdiff eval --ode` (the probability-flow ODE).
#include "tools/eval_extra.h"

#include <cmath>

namespace gsdiff::cli {

BoundResult evaluate_ode(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                         const OdeLikelihoodOptions& ode, const torch::Device& device) {
  if (p.space() != Space::Continuous) throw std::invalid_argument("--ode needs a continuous (Gaussian) process, got " + p.name());
  auto gen = at::detail::createCPUGenerator(opts.seed());
  auto r = score_examples(ds, opts, [&](const torch::Tensor& x) {
    if (x.scalar_type() == torch::kUInt8) {  // 8-bit: uniform dequantisation + D log 128
      auto xd = dequantize_uniform(x, gen).to(device);
      return ode_nll(p, f, xd, gen, ode).nll + double(x[0].numel()) * std::log(128.0);
    }
    return ode_nll(p, f, to_process_space(p, x).to(device), gen, ode).nll;
  });
  r.exact = ode.trace() == "exact";
  r.time_samples = ode.steps();
  return r;
}

}  // namespace gsdiff::cli
