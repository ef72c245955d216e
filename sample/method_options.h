// Each sampler's own options (DESIGN.md §8), parsed from the JSON object SamplerOptions::method carries.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <vector>

namespace gsdiff {

// ddim (Song, Meng & Ermon 2021).
struct DdimOptions {
  TORCH_ARG(double, eta) = 0.0;  // 0 = deterministic DDIM, 1 = DDPM-like posterior noise
};

// pc: Langevin corrector after each Euler–Maruyama predictor step (Song et al. 2021, Alg. 5).
struct PcOptions {
  TORCH_ARG(double, snr) = 0.16;            // the corrector's signal-to-noise ratio
  TORCH_ARG(int64_t, corrector_steps) = 1;  // Langevin steps per predictor step
};

// tau-leaping (Campbell et al. 2022).
struct TauLeapingOptions {
  TORCH_ARG(bool, ordinal) = false;  // add the fired jumps' displacements (ordered states) instead of taking one jump
};

// heun: EDM's stochastic sampler (Karras et al. 2022, Alg. 2). Before each step from noise level s~_i = sigma / alpha,
// in [s_tmin, s_tmax], the state is lifted to s~^ = (1 + gamma) s~_i with gamma = min(s_churn / N, sqrt(2) - 1)
// (N = the grid's steps) by adding N(0, (s~^2 - s~_i^2) s_noise^2) to x / alpha; s_churn = 0 is the PF-ODE (Alg. 1).
struct HeunOptions {
  TORCH_ARG(double, s_churn) = 0.0;  // total churn over the grid (EDM: 0 on CIFAR-10, 40-80 on ImageNet)
  TORCH_ARG(double, s_tmin) = 0.0;   // churn only at levels sigma / alpha >= s_tmin ...
  TORCH_ARG(double, s_tmax) = std::numeric_limits<double>::infinity();  // ... and <= s_tmax
  TORCH_ARG(double, s_noise) = 1.0;  // scale of the added noise (EDM: 1.003-1.007 to offset detail loss)
};

// dpm-solver++: multistep DPM-Solver++ in lambda = log(alpha / sigma) with x0 prediction (Lu et al. 2022, Alg. 2),
// order 2 (2M) or 3 (3M: a quadratic through the last three x0_hat, integrated exactly against the exponential
// weight), and eta >= 0 the SDE variant's noise: eta = 0 the ODE, eta = 1 DPM-Solver++'s SDE (whose first-order
// step is the DDPM posterior draw); in between the family with marginals q(x_s | x0) exact for a point-mass x0.
struct DpmSolverOptions {
  TORCH_ARG(int64_t, order) = 2;  // 2 or 3 (the first steps use the orders their history allows)
  TORCH_ARG(double, eta) = 0.0;   // SDE noise scale
};
// ancestral and mdlm-cached on the absorbing process: MaskedOptions (sample/masked_step.h; remasking, unmask order).

// Parsers of the method's JSON object ({"eta": 1} for ddim): a key the method does not have, or a value of the
// wrong type or range, throws std::invalid_argument naming the sampler and listing its options.
DdimOptions ddim_options(const nlohmann::json& j);
PcOptions pc_options(const nlohmann::json& j);
TauLeapingOptions tau_leaping_options(const nlohmann::json& j);
HeunOptions heun_options(const nlohmann::json& j);
DpmSolverOptions dpm_solver_options(const nlohmann::json& j);
// The option names of sampler `name` ({} for a sampler without options); validate_method_options(name, j)
// parses j as that sampler's options (every key of j must be one of them).
std::vector<std::string> method_option_names(const std::string& name);
void validate_method_options(const std::string& name, const nlohmann::json& j);

// A JSON object for SamplerOptions::method from the options structs.
nlohmann::json to_json(const DdimOptions& o);
nlohmann::json to_json(const PcOptions& o);
nlohmann::json to_json(const TauLeapingOptions& o);
nlohmann::json to_json(const HeunOptions& o);
nlohmann::json to_json(const DpmSolverOptions& o);

}  // namespace gsdiff
