// The likelihood loop behind `gsdiff eval --ode` (the probability-flow ODE).
#include "tools/eval_extra.h"

#include <cmath>

namespace gsdiff::cli {

BoundResult evaluate_ode(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                         const OdeLikelihoodOptions& ode, const torch::Device& device) {
  if (p.space() != Space::Continuous) throw std::invalid_argument("--ode needs a continuous (Gaussian) process, got " + p.name());
  auto gen = at::detail::createCPUGenerator(opts.seed());
  bool dequantized = false;
  auto r = score_examples(ds, opts, [&](const torch::Tensor& x) {
    if (x.scalar_type() == torch::kUInt8) {  // 8-bit: uniform dequantisation + D log 128
      dequantized = true;
      auto xd = dequantize_uniform(x, gen).to(device);
      return ode_nll(p, f, xd, gen, ode).nll + double(x[0].numel()) * std::log(128.0);
    }
    return ode_nll(p, f, to_process_space(p, x).to(device), gen, ode).nll;
  });
  // Each field named for what it is: the ODE's steps and integrator, the trace estimator and its probes.
  r.estimate = "probability-flow-ode";
  r.extra = {{"ode_steps", ode.steps()},
             {"ode_integrator", ode.integrator()},
             {"ode_t_start", ode.t_start() >= 0 ? ode.t_start() : p.t_min()},
             {"trace_estimator", ode.trace() == "exact" ? "exact (one backward pass per dimension)" : "hutchinson-" + ode.trace()},
             {"trace_samples", ode.trace() == "exact" ? int64_t(0) : int64_t(1)},
             {"dequantization", dequantized ? "uniform, x = (v + u) / 128 - 1, plus D log 128 nats" : "none"}};
  if (ode.trace() != "exact") r.extra["trace_note"] = "one probe per example, fixed along the path; its noise is in stderr";
  return r;
}

}  // namespace gsdiff::cli
