// Survival schedules alpha(t) for discrete kernels: Qbar_t = exp(B(t) R) with B(t) = -log alpha(t).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <string>

namespace gsdiff {

// alpha(t) = probability that a dimension has not yet jumped (uniform: resampled; absorbing: masked;
// blackout: an individual still alive). beta(t) = -alpha'(t) / alpha(t) is the rate multiplier.
struct SurvivalSchedule {
  std::string type = "linear";  // linear | log-linear | cosine | exponential
  double eps = 1e-3;            // log-linear: alpha = 1 - (1 - eps) t            (Lou et al. 2024, SEDD)
  double rate = 5.0;            // exponential: alpha = exp(-rate t)
  // linear: alpha = 1 - t (Sahoo et al. 2024, MDLM; D3PM absorbing);  cosine: alpha = 1 - cos(pi/2 (1 - t)) (Shi et al. 2024, MD4)

  torch::Tensor alpha(const torch::Tensor& t) const;   // float64, shaped like t
  torch::Tensor dalpha(const torch::Tensor& t) const;  // d alpha / dt
  torch::Tensor beta(const torch::Tensor& t) const { return -dalpha(t) / alpha(t); }
  torch::Tensor B(const torch::Tensor& t) const { return -torch::log(alpha(t)); }

  static SurvivalSchedule from_json(const nlohmann::json& j, const std::string& context);
  nlohmann::json to_json() const;
};

}  // namespace gsdiff
