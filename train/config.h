// The run configuration: one JSON file parsed once into typed option structs, with --set overrides.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/options.h"

namespace gsdiff {

// What the network is trained on (train/objectives.h).
struct ObjectiveOptions {
  TORCH_ARG(std::string, name) = "elbo";        // elbo | simple | weighted | hybrid | masked-ce
  TORCH_ARG(bool, low_discrepancy) = true;      // elbo: VDM's shifted-lattice t across the batch
  TORCH_ARG(std::string, weighting) = "min-snr";  // weighted: min-snr | likelihood | flow-matching | edm
  TORCH_ARG(double, edm_p_mean) = -1.2;           // weighted/edm: ln(sigma / alpha) ~ N(P_mean, P_std^2) (Karras et al. 2022)
  TORCH_ARG(double, edm_p_std) = 1.2;
  TORCH_ARG(double, min_snr_gamma) = 5.0;       // weighted/min-snr (Hang et al. 2023)
  TORCH_ARG(double, hybrid_lambda) = 0.001;     // hybrid: simple-or-CE + lambda * elbo (iDDPM / D3PM)
  // elbo / hybrid in continuous time: the share of each batch that scores the reconstruction term
  // (core/elbo.h sample_negative_elbo; discrete time uses 1/T).
  TORCH_ARG(double, reconstruction_prob) = 0.125;
  // elbo / masked-ce: how each example's one term is drawn (importance-weighted, so the bound stays unbiased):
  // uniform | logsnr (Gaussian processes: t by log-SNR, Song et al. 2021) | loss-aware (iDDPM's sampler,
  // Nichol & Dhariwal 2021 sec. 3.3: P ∝ sqrt(E[L^2]) per bin, train/loss_aware.h).
  TORCH_ARG(std::string, time_sampling) = "uniform";
  TORCH_ARG(int64_t, loss_aware_bins) = 0;        // 0: T in discrete time, 64 in continuous time
  TORCH_ARG(int64_t, loss_aware_history) = 10;    // losses per bin before leaving uniform; the window after
  TORCH_ARG(double, loss_aware_uniform) = 0.001;  // the uniform share mixed into the proposal
};

struct TrainOptions {
  TORCH_ARG(int64_t, steps) = 1000;             // optimizer iterations
  TORCH_ARG(std::string, optimizer) = "adamw";  // adamw (FusedAdamW) | sgd (plain: no momentum; beta*, adam_eps unused)
  TORCH_ARG(double, lr) = 2e-4;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, adam_eps) = 1e-8;
  TORCH_ARG(int64_t, warmup_steps) = 0;         // linear warmup from 0
  TORCH_ARG(std::string, lr_schedule) = "constant";  // constant | cosine (to 0 at `steps`)
  TORCH_ARG(double, grad_clip) = 1.0;           // max global grad norm; <= 0: off
  TORCH_ARG(double, ema_decay) = 0.999;         // 0: no EMA
  TORCH_ARG(bool, ema_warmup) = true;           // decay min(ema_decay, (1 + n) / (10 + n))
  TORCH_ARG(int64_t, accumulate) = 1;           // micro-batches per optimizer step
  TORCH_ARG(uint64_t, seed) = 0;                // trainer generator + torch global generator
  TORCH_ARG(double, label_dropout) = 0.1;       // class-conditional: p(label -> null class)
  TORCH_ARG(int64_t, log_every) = 50;           // a metrics line every N steps and at the run's last step; 0 = none
  TORCH_ARG(int64_t, checkpoint_every) = 1000;
  TORCH_ARG(int64_t, keep_checkpoints) = 3;
  TORCH_ARG(int64_t, sample_every) = 0;         // sample grid every N steps (and at the end); 0 = only at the end
  TORCH_ARG(int64_t, eval_every) = 0;           // validation bound every N steps; 0 = never
  TORCH_ARG(int64_t, max_consecutive_skips) = 20;  // non-finite loss/grad: steps skipped before erroring
  TORCH_ARG(bool, tensorboard) = true;          // rank 0 writes TensorBoard event files to <out>/tb
  // fp32 | bf16: bf16 autocast around the forward pass and the loss (models/autocast.h), on CUDA or CPU.
  TORCH_ARG(std::string, precision) = "fp32";
};

struct SampleOptions {
  TORCH_ARG(int64_t, steps) = 0;     // reverse steps; 0 = the process's T, or 100 in continuous time
  TORCH_ARG(int64_t, num) = 64;
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(bool, ema) = true;       // sample with the EMA weights when present
};

struct EvalOptions {
  TORCH_ARG(int64_t, limit) = 0;          // examples scored; 0 = all
  TORCH_ARG(int64_t, batch_size) = 100;
  TORCH_ARG(bool, exact) = false;         // all T terms / adaptive Gauss–Legendre in t to quadrature_tol
  TORCH_ARG(int64_t, time_samples) = 1;   // Monte Carlo: t per example (per pass with target_stderr)
  TORCH_ARG(double, quadrature_tol) = 1e-3;  // exact, continuous time: bits per dimension
  TORCH_ARG(int64_t, max_nodes) = 2048;      // exact, continuous time: most quadrature nodes per batch
  TORCH_ARG(int64_t, noise_samples) = 1;     // exact, continuous time: x_t noise streams per example
  TORCH_ARG(int64_t, quadrature_nodes) = 0;  // > 0: a fixed Gauss–Legendre rule instead (not converged)
  TORCH_ARG(std::string, time_sampling) = "auto";  // auto (logsnr for Gaussian processes) | uniform | logsnr
  TORCH_ARG(bool, per_example) = false;      // report every example's bound too (`gsdiff eval --per-example`)
  TORCH_ARG(double, target_stderr) = 0;      // > 0: add passes of time_samples t until stderr <= this
  TORCH_ARG(int64_t, max_passes) = 64;       // most passes with target_stderr
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(bool, ema) = true;
};

struct DebugOptions {
  TORCH_ARG(int64_t, nan_at_step) = -1;   // inject a NaN into the loss at this step (tests)
  // Fault injection (tests): at step fault_step, on rank fault_rank, in the middle of the last micro-batch's
  // backward pass, the process sends itself SIGKILL ("kill": a dying rank) or SIGSTOP ("stop": a hanging one).
  TORCH_ARG(std::string, fault) = "none";  // none | kill | stop
  TORCH_ARG(int64_t, fault_step) = -1;
  TORCH_ARG(int64_t, fault_rank) = 0;
};

struct Config {
  nlohmann::json process, model, data;  // checked by their own factories
  nlohmann::json eval_data;             // merged over `data` for evaluation (e.g. {"split": "test"})
  ObjectiveOptions objective;
  TrainOptions train;
  SampleOptions sample;
  EvalOptions eval;
  DebugOptions debug;
  nlohmann::json resolved;  // the full config with every default filled in
};

// Parses a config object; unknown keys and wrong types throw ConfigError naming the dotted key.
Config parse_config(const nlohmann::json& j);
Config load_config(const std::string& path, const std::vector<std::string>& sets = {});
// Applies one "a.b.c=value" override in place (value parsed as JSON, else taken as a string).
void apply_set(nlohmann::json& j, const std::string& assignment);
nlohmann::json to_json(const Config& c);

// The data config for evaluation: data, minus loader keys, with eval_data merged over it.
nlohmann::json eval_data_config(const Config& c);

}  // namespace gsdiff
