// Each sampler's own options (DESIGN.md §8), parsed from the JSON object SamplerOptions::method carries.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

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

// ancestral and mdlm-cached on the absorbing process: MaskedOptions (sample/masked_step.h; remasking, unmask order).

// Parsers of the method's JSON object ({"eta": 1} for ddim): a key the method does not have, or a value of the
// wrong type or range, throws std::invalid_argument naming the sampler and listing its options.
DdimOptions ddim_options(const nlohmann::json& j);
PcOptions pc_options(const nlohmann::json& j);
TauLeapingOptions tau_leaping_options(const nlohmann::json& j);
// The option names of sampler `name` ({} for a sampler without options); validate_method_options(name, j)
// parses j as that sampler's options (every key of j must be one of them).
std::vector<std::string> method_option_names(const std::string& name);
void validate_method_options(const std::string& name, const nlohmann::json& j);

// A JSON object for SamplerOptions::method from the options structs.
nlohmann::json to_json(const DdimOptions& o);
nlohmann::json to_json(const PcOptions& o);
nlohmann::json to_json(const TauLeapingOptions& o);

}  // namespace gsdiff
