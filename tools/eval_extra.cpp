// The likelihood loops behind `gsdiff eval --switch` (any DenoiseFn) and `gsdiff eval --ode`.
#include "tools/eval_extra.h"

#include <cmath>

#include "core/distributions.h"

namespace gsdiff::cli {

namespace {

// Scores the first opts.limit() examples in batches; per-batch nats [b] from `score`.
template <typename Score>
BoundResult loop(const data::Dataset& ds, const EvalOptions& opts, Score score) {
  const int64_t n = opts.limit() > 0 ? std::min(opts.limit(), ds.size()) : ds.size();
  std::vector<torch::Tensor> nats;
  BoundResult r;
  for (int64_t start = 0; start < n; start += opts.batch_size()) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + opts.batch_size()); ++i) idx.push_back(i);
    auto batch = ds.get_batch(idx, 0, 0);
    r.dims = double(batch.x[0].numel());
    nats.push_back(score(batch.x).to(torch::kCPU, torch::kFloat64));
  }
  auto all = torch::cat(nats);
  r.examples = all.size(0);
  const double to_bits = 1.0 / (r.dims * std::log(2.0));
  r.mean_nats = all.mean().item<double>();
  r.mean = r.mean_nats * to_bits;
  r.stderr_ = r.examples > 1 ? all.std().item<double>() / std::sqrt(double(r.examples)) * to_bits : 0.0;
  r.unit = ds.name() == "text8" ? "bits/char" : "bits/dim";
  return r;
}

}  // namespace

BoundResult evaluate_bound_fn(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                              const torch::Device& device) {
  auto gen = make_generator(device, opts.seed());
  torch::NoGradGuard ng;
  auto r = loop(ds, opts, [&](const torch::Tensor& x) {
    auto x0 = to_process_space(p, x).to(device);
    return negative_elbo(p, f, x0, gen, ElboOptions().exact(opts.exact()).time_samples(opts.time_samples())).total();
  });
  r.exact = opts.exact();
  r.time_samples = opts.time_samples();
  return r;
}

BoundResult evaluate_ode(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                         const OdeLikelihoodOptions& ode, const torch::Device& device) {
  if (p.space() != Space::Continuous) throw std::invalid_argument("--ode needs a continuous (Gaussian) process, got " + p.name());
  auto gen = at::detail::createCPUGenerator(opts.seed());
  auto r = loop(ds, opts, [&](const torch::Tensor& x) {
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
