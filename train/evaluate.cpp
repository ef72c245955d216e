// Likelihood bound over a dataset (bits/dim or bits/char with standard error) and the data adapter.
#include "train/evaluate.h"

#include <cmath>
#include <sstream>

#include "core/decoder.h"
#include "core/distributions.h"
#include "core/elbo.h"
#include "core/gaussian.h"

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

DenoiseFn classifier_log_prob_fn(DenoiserNet& model, torch::Tensor y) {
  return [model, y](const torch::Tensor& in, const torch::Tensor& t) mutable {
    auto logp = torch::log_softmax(model->forward(in, t.to(torch::kFloat32)).to(torch::kFloat32), -1);  // [B, C]
    return logp.gather(1, y.to(logp.device()).view({-1, 1})).squeeze(1);                             // [B]
  };
}

SelfCondFn self_cond_fn(DenoiserNet& model, torch::Tensor y) {
  return [model, y](const torch::Tensor& in, const torch::Tensor& t, const torch::Tensor& est) mutable {
    return model->forward_self_cond(in, t.to(torch::kFloat32), y, est);
  };
}

DenoiseFn bound_denoise_fn(const Process& p, DenoiserNet& model, torch::Tensor y) {
  if (!model->self_conditioned()) return denoise_fn(model, y);
  return self_condition_two_pass(p, self_cond_fn(model, y));
}

nlohmann::json BoundResult::to_json() const {
  nlohmann::json j{{"bound", mean}, {"stderr", stderr_}, {"unit", unit}, {"nats_per_example", mean_nats},
                   {"examples", examples}, {"dims", dims}, {"estimate", estimate}};
  if (!per_example.empty()) j["per_example"] = per_example;
  if (estimate == "monte-carlo") {
    j["time_samples"] = time_samples;
    j["time_sampling"] = time_sampling;
    j["passes"] = passes;
    if (target_stderr > 0) {
      j["target_stderr"] = target_stderr;
      j["target_reached"] = stderr_ <= target_stderr;  // not when the spread over examples alone exceeds it
    }
  } else if ((estimate == "exact" || estimate == "quadrature") && !extra.contains("diffusion_terms")) {
    j["quadrature_nodes"] = nodes;
    j["quadrature_error"] = quadrature_error;
    j["noise_samples"] = noise_samples;
    if (quadrature_tol > 0) j["quadrature_tol"] = quadrature_tol;
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

torch::Tensor score_nats(const data::Dataset& ds, const EvalOptions& opts,
                         const std::function<torch::Tensor(const torch::Tensor& x)>& score, BoundResult& r) {
  const int64_t n = opts.limit() > 0 ? std::min(opts.limit(), ds.size()) : ds.size();
  std::vector<torch::Tensor> nats;
  for (int64_t start = 0; start < n; start += opts.batch_size()) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + opts.batch_size()); ++i) idx.push_back(i);
    auto batch = ds.get_batch(idx, 0, 0);
    r.dims = double(batch.x[0].numel());
    nats.push_back(score(batch.x).to(torch::kCPU, torch::kFloat64));  // [b]
  }
  auto all = torch::cat(nats);  // [n]
  r.examples = all.size(0);
  r.unit = ds.name() == "text8" ? "bits/char" : "bits/dim";
  return all;
}

void summarise(const torch::Tensor& all, BoundResult& r) {
  const double to_bits = 1.0 / (r.dims * std::log(2.0));
  r.mean_nats = all.mean().item<double>();
  r.mean = r.mean_nats * to_bits;
  r.stderr_ = r.examples > 1 ? all.std().item<double>() / std::sqrt(double(r.examples)) * to_bits : 0.0;
}

BoundResult score_examples(const data::Dataset& ds, const EvalOptions& opts,
                           const std::function<torch::Tensor(const torch::Tensor& x)>& score) {
  BoundResult r;
  summarise(score_nats(ds, opts, score, r), r);
  return r;
}

ElboOptions elbo_options(const Process& p, const EvalOptions& opts) {
  std::string ts = opts.time_sampling();
  if (ts == "auto") ts = dynamic_cast<const GaussianProcess*>(&p) ? "logsnr" : "uniform";
  return ElboOptions()
      .exact(opts.exact())
      .time_samples(opts.time_samples())
      .quadrature_tol(opts.quadrature_tol() * std::log(2.0))  // bits -> nats per dimension
      .max_nodes(opts.max_nodes())
      .noise_samples(opts.noise_samples())
      .quadrature_nodes(opts.quadrature_nodes())
      .time_sampling(ts);
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

namespace {
// A batch whose bound is not finite is scored once more through TermWatch (uniform times: the prior and
// reconstruction are deterministic in t, the diffusion term is named at the time it failed again), so the
// error names the process, the term, its time and the example; if the second pass is finite, the first
// non-finite example is still refused, named by its index.
void diagnose_nonfinite(const Process& p, const DenoiseFn& f, const torch::Tensor& x0, const torch::Tensor& total,
                        ElboOptions eo, torch::Generator& gen, int64_t first) {
  if (torch::isfinite(total).all().item<bool>()) return;
  TermWatch watched(p);
  watched.reset(x0.size(0));
  auto again = negative_elbo(watched, f, x0, gen, eo.time_sampling("uniform")).total();  // [b]
  auto bad = torch::isfinite(again).all().item<bool>() ? total : again;
  check_finite_bound(watched, bad, first);
}
}  // namespace

BoundResult evaluate_bound_fn(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                              const torch::Device& device) {
  auto gen = make_generator(device, opts.seed());
  torch::NoGradGuard ng;
  const auto eo = elbo_options(p, opts);
  BoundResult r;
  double err_sum = 0;  // nats per example, summed over examples
  bool converged = true;
  int64_t first = 0;  // index of the batch's first example in the split (passes restart it)
  auto score = [&](const torch::Tensor& x) {
    auto x0 = to_process_space(p, x).to(device);  // [b, ...]
    auto terms = negative_elbo(p, f, x0, gen, eo);
    diagnose_nonfinite(p, f, x0, terms.total(), eo, gen, first);
    first += x0.size(0);
    r.nodes = std::max(r.nodes, terms.nodes);
    err_sum += terms.quadrature_error * double(x0.size(0));
    converged = converged && terms.converged;
    return terms.total();
  };
  auto sum = score_nats(ds, opts, score, r);  // [n]
  first = 0;
  summarise(sum, r);
  const bool one_step = !p.continuous_time() && p.steps() < 2;  // T = 1: prior + reconstruction, nothing to sample
  const bool mc = !opts.exact() && !one_step;
  // eval.target_stderr: more passes (fresh t and x_t) until the standard error of the per-example means is met.
  while (mc && opts.target_stderr() > 0 && r.stderr_ > opts.target_stderr() && r.passes < opts.max_passes()) {
    sum += score_nats(ds, opts, score, r);
    first = 0;
    r.passes += 1;
    summarise(sum / double(r.passes), r);
  }
  const double to_bits = 1.0 / (r.dims * std::log(2.0));
  if (opts.per_example()) {
    auto v = (sum / double(r.passes) * to_bits).contiguous();  // [n] bits per dim or char
    r.per_example.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  }
  if (mc) {
    r.estimate = "monte-carlo";
    r.time_samples = r.passes * opts.time_samples();
    r.time_sampling = eo.time_sampling();
    r.target_stderr = opts.target_stderr();
  } else if (!p.continuous_time()) {
    r.estimate = "exact";
    r.extra["diffusion_terms"] = std::max<int64_t>(0, p.steps() - 1);  // all KL terms, one x_t each
  } else {
    r.estimate = converged ? "exact" : "quadrature";
    r.noise_samples = opts.noise_samples();
    r.quadrature_error = err_sum / double(r.examples) * to_bits;
    if (p.continuous_time() && opts.quadrature_nodes() == 0) r.quadrature_tol = opts.quadrature_tol();
    if (!converged && p.continuous_time())
      r.extra["warning"] = opts.quadrature_nodes() > 0
                               ? "fixed Gauss-Legendre rule: no error estimate, not a converged bound"
                               : "quadrature did not reach quadrature_tol within max_nodes";
  }
  return r;
}

BoundResult evaluate_bound(const Process& p, DenoiserNet& model, const data::Dataset& ds, const EvalOptions& opts,
                           const torch::Device& device) {
  const bool was_training = model->is_training();
  model->eval();
  auto r = evaluate_bound_fn(p, bound_denoise_fn(p, model), ds, opts, device);
  if (was_training) model->train();
  return r;
}

}  // namespace gsdiff
