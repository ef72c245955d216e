// Likelihood bound over a dataset (bits/dim or bits/char with standard error) and the data adapter.
#include "train/evaluate.h"

#include <cmath>
#include <sstream>

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

BoundResult score_examples(const data::Dataset& ds, const EvalOptions& opts,
                           const std::function<torch::Tensor(const torch::Tensor& x)>& score) {
  const int64_t n = opts.limit() > 0 ? std::min(opts.limit(), ds.size()) : ds.size();
  std::vector<torch::Tensor> nats;
  BoundResult r;
  for (int64_t start = 0; start < n; start += opts.batch_size()) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + opts.batch_size()); ++i) idx.push_back(i);
    auto batch = ds.get_batch(idx, 0, 0);
    r.dims = double(batch.x[0].numel());
    nats.push_back(score(batch.x).to(torch::kCPU, torch::kFloat64));  // [b]
  }
  auto all = torch::cat(nats);  // [n]
  r.examples = all.size(0);
  const double to_bits = 1.0 / (r.dims * std::log(2.0));
  r.mean_nats = all.mean().item<double>();
  r.mean = r.mean_nats * to_bits;
  r.stderr_ = r.examples > 1 ? all.std().item<double>() / std::sqrt(double(r.examples)) * to_bits : 0.0;
  r.unit = ds.name() == "text8" ? "bits/char" : "bits/dim";
  return r;
}

void check_finite_bound(const TermWatch& watched, const torch::Tensor& total, int64_t first_example) {
  auto tc = total.detach().to(torch::kCPU, torch::kFloat64);  // [b]
  for (int64_t j = 0; j < tc.size(0); ++j) {
    const double v = tc[j].item<double>();
    if (std::isfinite(v)) continue;
    std::ostringstream os;
    os << "the bound is not finite for example " << first_example + j << " of the evaluation data: ";
    if (const auto& h = watched.hit(j)) os << watched.describe(*h);
    else os << "process '" << watched.name() << "': the sum of finite terms is " << v;
    throw NonFiniteBound(os.str());
  }
}

BoundResult evaluate_bound_fn(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                              const torch::Device& device) {
  auto gen = make_generator(device, opts.seed());
  torch::NoGradGuard ng;
  TermWatch watched(p);  // names the term, time and example of a non-finite bound
  int64_t first = 0;     // index of the batch's first example in the split
  auto r = score_examples(ds, opts, [&](const torch::Tensor& x) {
    auto x0 = to_process_space(p, x).to(device);  // [b, ...]
    watched.reset(x0.size(0));
    auto terms = negative_elbo(watched, f, x0, gen, ElboOptions().exact(opts.exact()).time_samples(opts.time_samples()));
    auto total = terms.total();  // [b] nats
    check_finite_bound(watched, total, first);
    first += x0.size(0);
    return total;
  });
  r.exact = opts.exact();
  r.time_samples = opts.time_samples();
  return r;
}

BoundResult evaluate_bound(const Process& p, DenoiserNet& model, const data::Dataset& ds, const EvalOptions& opts,
                           const torch::Device& device) {
  const bool was_training = model->is_training();
  model->eval();
  auto r = evaluate_bound_fn(p, denoise_fn(model), ds, opts, device);
  if (was_training) model->train();
  return r;
}

}  // namespace gsdiff
