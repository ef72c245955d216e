// Likelihood bound over a dataset (bits/dim or bits/char with standard error) and the data adapter.
#include "train/evaluate.h"

#include <cmath>

#include "core/decoder.h"
#include "core/distributions.h"
#include "core/elbo.h"

namespace gsdiff {

torch::Tensor to_process_space(const Process& p, const torch::Tensor& x) {
  if (x.scalar_type() == torch::kUInt8)  // images: 256 levels
    return p.space() == Space::Continuous ? levels_to_unit(x) : x.to(torch::kLong);
  if (p.space() == Space::Discrete && x.is_floating_point())
    throw std::invalid_argument("process '" + p.name() + "' is discrete but the data is real-valued");
  return x;
}

DenoiseFn denoise_fn(DenoiserNet& model, torch::Tensor y) {
  return [model, y](const torch::Tensor& in, const torch::Tensor& t) mutable {
    return model->forward(in, t.to(torch::kFloat32), y);
  };
}

nlohmann::json BoundResult::to_json() const {
  return {{"bound", mean},         {"stderr", stderr_}, {"unit", unit},
          {"nats_per_example", mean_nats}, {"examples", examples}, {"dims", dims},
          {"estimate", exact ? "exact" : "monte-carlo"}, {"time_samples", time_samples}};
}

BoundResult evaluate_bound(const Process& p, DenoiserNet& model, const data::Dataset& ds, const EvalOptions& opts,
                           const torch::Device& device) {
  const int64_t n = opts.limit() > 0 ? std::min(opts.limit(), ds.size()) : ds.size();
  auto gen = make_generator(device, opts.seed());
  bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  auto f = denoise_fn(model);
  std::vector<torch::Tensor> nats;
  BoundResult r;
  for (int64_t start = 0; start < n; start += opts.batch_size()) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + opts.batch_size()); ++i) idx.push_back(i);
    auto batch = ds.get_batch(idx, 0, 0);
    auto x0 = to_process_space(p, batch.x).to(device);  // [b, ...]
    r.dims = double(x0[0].numel());
    auto terms = negative_elbo(p, f, x0, gen, ElboOptions().exact(opts.exact()).time_samples(opts.time_samples()));
    nats.push_back(terms.total().to(torch::kCPU, torch::kFloat64));  // [b]
  }
  if (was_training) model->train();
  auto all = torch::cat(nats);  // [n]
  r.examples = all.size(0);
  const double to_bits = 1.0 / (r.dims * std::log(2.0));
  r.mean_nats = all.mean().item<double>();
  r.mean = r.mean_nats * to_bits;
  r.stderr_ = r.examples > 1 ? all.std().item<double>() / std::sqrt(double(r.examples)) * to_bits : 0.0;
  r.exact = opts.exact();
  r.time_samples = opts.time_samples();
  r.unit = ds.name() == "text8" ? "bits/char" : "bits/dim";
  return r;
}

}  // namespace gsdiff
