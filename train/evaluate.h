// The data adapter (dataset values -> process space) and the likelihood bound over a dataset.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <nlohmann/json.hpp>

#include "core/elbo.h"
#include "core/process.h"
#include "core/self_condition.h"
#include "data/dataset.h"
#include "models/denoiser.h"
#include "train/config.h"
#include "train/term_watch.h"

namespace gsdiff {

// Images uint8 -> levels_to_unit (continuous processes) or int64 levels (discrete); tokens stay int64,
// real-valued data stays float. Decided by process.space(): the only place data meets a process family.
torch::Tensor to_process_space(const Process& p, const torch::Tensor& x);

// The network as a DenoiseFn: float32 time, labels y (undefined = null class).
DenoiseFn denoise_fn(DenoiserNet& model, torch::Tensor y = {});
// A classifier model (models/classifier.h) with the labels y [B] bound in: (x_t, t) -> log p(y | x_t, t) [B].
DenoiseFn classifier_log_prob_fn(DenoiserNet& model, torch::Tensor y);
// The self-conditioned network (x_t, t, estimate) with labels y bound in (models/denoiser.h forward_self_cond).
SelfCondFn self_cond_fn(DenoiserNet& model, torch::Tensor y = {});
// The network for the bound: denoise_fn, or for a self-conditioned model its two passes at the same (x_t, t)
// (core/self_condition.h; a deterministic function of x_t, so its ELBO is a valid bound). `p` must outlive it.
DenoiseFn bound_denoise_fn(const Process& p, DenoiserNet& model, torch::Tensor y = {});

// An upper bound on -log p(x) averaged over examples, with its standard error (over examples) and how it
// was computed: "exact" (all T terms, or a continuous-time quadrature that met its tolerance, with the
// nodes used and the estimated remaining quadrature error), "quadrature" (a quadrature that did not, or a
// fixed rule), "monte-carlo" (t per example and their proposal) or a method of its own (`method`, e.g. the
// probability-flow ODE, whose fields go in `extra`).
struct BoundResult {
  double mean = 0, stderr_ = 0;  // in `unit`
  double mean_nats = 0;          // per example
  int64_t examples = 0;
  double dims = 0;
  std::string unit;              // bits/dim or bits/char
  std::string estimate = "monte-carlo";
  int64_t time_samples = 0;      // monte-carlo: t per example in all (passes x eval.time_samples)
  int64_t passes = 1;            // monte-carlo: passes over the data (eval.target_stderr adds them)
  std::string time_sampling;     // monte-carlo: uniform | logsnr
  double target_stderr = 0;      // > 0 when passes were added until stderr <= it
  std::vector<double> per_example;  // eval.per_example: each example's bound in `unit`, in data order
  int64_t nodes = 0;             // exact / quadrature: network calls per example for the diffusion term (max over batches)
  double quadrature_error = 0;   // estimated remaining quadrature error of the mean, in `unit`
  double quadrature_tol = 0;     // in `unit`
  int64_t noise_samples = 1;     // exact / quadrature: x_t noise streams per example
  nlohmann::json extra;          // method-specific fields, merged into to_json()
  nlohmann::json to_json() const;
};

// Per-example nats [n] of the first `opts.limit()` examples (all when 0), in order and in batches of
// opts.batch_size(): `score` maps a data-space batch [b, ...] to nats [b]. Sets r.examples, dims, unit.
torch::Tensor score_nats(const data::Dataset& ds, const EvalOptions& opts,
                         const std::function<torch::Tensor(const torch::Tensor& x)>& score, BoundResult& r);
// Fills mean, mean_nats and stderr_ of r from per-example nats [n].
void summarise(const torch::Tensor& nats, BoundResult& r);

// score_nats then summarise: mean and standard error per dimension in bits.
BoundResult score_examples(const data::Dataset& ds, const EvalOptions& opts,
                           const std::function<torch::Tensor(const torch::Tensor& x)>& score);

// The ElboOptions eval runs for a process: eval.time_sampling "auto" is logsnr for Gaussian processes.
ElboOptions elbo_options(const Process& p, const EvalOptions& opts);
// A bound that is nan or inf: the message names the process, the term (prior, diffusion, reconstruction), its
// time and the example. `gsdiff eval` and validation during training stop with it instead of printing null.
struct NonFiniteBound : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Throws NonFiniteBound for the first non-finite entry of total [b] (example first_example + j).
void check_finite_bound(const TermWatch& watched, const torch::Tensor& total, int64_t first_example);

// The negative ELBO of any DenoiseFn (e.g. switch_experts(high, low, tau)) under no_grad, by score_examples.
BoundResult evaluate_bound_fn(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                              const torch::Device& device);

// evaluate_bound_fn with one model, in eval mode for the call.
BoundResult evaluate_bound(const Process& p, DenoiserNet& model, const data::Dataset& ds, const EvalOptions& opts,
                           const torch::Device& device);

}  // namespace gsdiff
