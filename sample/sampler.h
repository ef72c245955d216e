// The one sampler signature, sampler options, the sampler registry by name and time grids.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "core/elbo.h"
#include "core/process.h"
#include "sample/method_options.h"
#include "sample/step_guidance.h"
#include "sample/step_hook.h"

namespace gsdiff {

// What a sampler did (filled when SamplerOptions::stats is set).
struct SamplerStats {
  int64_t network_calls = 0;  // calls of the DenoiseFn (each on a whole or partial batch)
  int64_t network_rows = 0;   // examples evaluated, summed over calls (a cache skips rows)
};

// What every sampler shares; a method's own options (ddim's eta, pc's snr and corrector steps, tau-leaping's
// ordinal steps) are the JSON object `method`, parsed by that method (sample/method_options.h) and checked by
// make_sampler: a key the named sampler does not have is an error listing its options.
struct SamplerOptions {
  nlohmann::json method = nlohmann::json::object();  // e.g. to_json(DdimOptions().eta(1)) for "ddim"
  // mdlm-cached: whether the DenoiseFn's output depends on t (DenoiserNetImpl::uses_time; an expert switch does).
  // The cache is exact only for a time-independent denoiser: with true, mdlm-cached refuses.
  bool denoiser_uses_t = true;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;  // state dtype of continuous samplers
  SamplerStats* stats = nullptr;              // optional call counter
  // Guidance of each discrete reverse step (sample/step_guidance.h: D-CFG, D-CBG; Schiff et al. 2025); null = none.
  // The discrete samplers on a categorical process apply it: ancestral, tweedie and mdlm-cached to their transitions,
  // tau-leaping and euler to their rates; check_sampler refuses it for continuous processes.
  std::shared_ptr<const StepGuidance> guidance;
};

// The shared signature: grid is strictly descending (grid.front() = 1, grid.back() = 0 or t_min); one
// network call per step (two for heun, 1 + corrector_steps for pc) for the whole batch; returns x0 [shape].
// An optional per-step hook (sample/step_hook.h) sees the prior draw and every x_s, and may replace it
// (conditioning on known parts: sample/constraint.h); every sampler below calls it.
class Sampler {
 public:
  using Fn = std::function<torch::Tensor(const Process&, const DenoiseFn&, const std::vector<double>& grid,
                                         at::IntArrayRef shape, torch::Generator&, const Progress&, const StepHook&)>;
  Sampler() = default;
  explicit Sampler(Fn fn) : fn_(std::move(fn)) {}
  torch::Tensor operator()(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape,
                           torch::Generator& gen, const Progress& progress = {}, const StepHook& hook = {}) const {
    return fn_(p, f, grid, shape, gen, progress, hook);
  }
  explicit operator bool() const { return bool(fn_); }

 private:
  Fn fn_;
};

// Every sampler below has this signature plus the options (bound by make_sampler) and the hook.
#define GSDIFF_SAMPLER(fn)                                                                                   \
  torch::Tensor fn(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape, \
                   torch::Generator& gen, const Progress& progress = {}, const SamplerOptions& o = {},          \
                   const StepHook& hook = {})

// ---- continuous (GaussianProcess); a final step to s = 0 returns the prediction x0_hat ----
GSDIFF_SAMPLER(sample_ancestral_any);   // DDPM (Ho et al. 2020) / D3PM (Austin et al. 2021): process.sample_reverse
GSDIFF_SAMPLER(sample_ddim);            // DDIM with eta (Song, Meng & Ermon 2021)
GSDIFF_SAMPLER(sample_euler_maruyama);  // Euler–Maruyama on the reverse SDE (Song et al. 2021)
GSDIFF_SAMPLER(sample_heun);            // probability-flow ODE, Heun in sigma/alpha on x/alpha (Karras et al. 2022, EDM Alg. 1)
GSDIFF_SAMPLER(sample_dpm_solver_pp);   // DPM-Solver++(2M) in log-SNR time with x0 prediction (Lu et al. 2022)
GSDIFF_SAMPLER(sample_pc);              // predictor-corrector: EM predictor + Langevin corrector (Song et al. 2021)
// (pc: the corrector's step 2 (snr |z| / |score|)^2 depends on the state, so it does not leave p_t exactly
// invariant; on Gaussian data it inflates the variance by ~2.6% at snr 0.02 and ~7.5% at snr 0.1 with 400 steps.)

// ---- discrete (CategoricalProcess); a final step to s = 0 draws x0 from the exact reverse step ----
GSDIFF_SAMPLER(sample_tau_leaping);     // tau-leaping on the reverse CTMC (Campbell et al. 2022)
GSDIFF_SAMPLER(sample_ctmc_euler);      // Euler step of the reverse CTMC: P(y) = R_hat(x, y) h (Campbell et al. 2022)
GSDIFF_SAMPLER(sample_tweedie);         // analytic / Tweedie tau-leaping (Lou et al. 2024, SEDD)
GSDIFF_SAMPLER(sample_mdlm_cached);     // absorbing only: network called on rows that changed (Sahoo et al. 2024, MDLM)

// SEDD's analytic step: p(x_s = y | x_t) ∝ Q_{t|s}[y, x_t] * r_s(y), with the Tweedie ratio estimate
// r_s(y) = p_s(y) / p_t(x_t) = sum_x0 p(x0 | x_t) Qbar_s[x0, y] / Qbar_t[x0, x_t]. For every kernel with
// Qbar_s = Qbar_t Q_{t|s}^{-1} (absorbing and uniform included) this is term by term the exact reverse
// step CategoricalProcess::reverse_probs, so sample_tweedie coincides with ancestral sampling (tested).
torch::Tensor tweedie_reverse_probs(const Process& p, const torch::Tensor& xt, const torch::Tensor& s,
                                    const torch::Tensor& t, const torch::Tensor& logp_x0);  // [B, ..., V]

// ---- registry ----
// Names: ancestral, ddim, euler-maruyama, heun, dpm-solver++, pc (continuous); ancestral, tau-leaping,
// euler, tweedie, mdlm-cached (discrete). Unknown name -> std::invalid_argument listing the known ones.
Sampler make_sampler(const std::string& name, const SamplerOptions& opts = {});
std::vector<std::string> sampler_names();
std::vector<std::string> sampler_names(Space space);
// The samplers that run on p with these options (e.g. no tau-leaping for discretized-gaussian: no generator).
std::vector<std::string> compatible_samplers(const Process& p, const SamplerOptions& opts = {});
// Throws std::invalid_argument naming the sampler, the process, why, and the compatible samplers.
void check_sampler(const std::string& name, const Process& p, const SamplerOptions& opts = {});

// Descending time grid with `steps` steps (<= 0: the process's T, or 100 in continuous time):
//   kind "uniform": t_k = k / n (a discrete-time process gets its own grid i / T, subsampled to `steps`);
//   kind "quadratic": t_k = (k / n)^2 (denser near the data; continuous time only).
//   kind "karras": EDM's rho = 7 noise levels (karras_grid; continuous-time Gaussian processes, 18 by default).
std::vector<double> time_grid(const Process& p, int64_t steps = 0, const std::string& kind = "uniform");
// EDM's grid: n levels of sigma / alpha spaced uniformly in its 1/rho power over the process's range, as times.
std::vector<double> karras_grid(const Process& p, int64_t steps = 0, double rho = 7.0);

// A DenoiseFn that counts its calls and rows into `stats` (not owned).
DenoiseFn counted(DenoiseFn f, SamplerStats* stats);

}  // namespace gsdiff
