// Common denoiser interface (x_t, t[, y]) -> output and the model registry keyed by "type".
#pragma once
#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/json_reader.h"

namespace gsdiff {

// Every denoising network: maps a noisy state x_t and time t to an output tensor.
// It knows nothing about noise schedules; `core` interprets the output (eps, x0, v, logits).
//   x: float [B,C,H,W] / [B,L,d] (continuous) or int64 [B,C,H,W] / [B,L] (categorical)
//   t: float [B] in [0, 1] (continuous time; discrete step i is passed as i / T)
//   y: optional int64 [B] class labels; value num_classes = the null class (classifier-free
//      guidance); undefined = all null.
struct DenoiserNetImpl : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) = 0;
  // Number of real classes for conditioning (0 = unconditional); the null class is this value.
  virtual int64_t num_classes() const = 0;
  // The options as a JSON object that make_model() accepts ({"type": ..., ...}).
  virtual nlohmann::json config() const = 0;
  // False for a network whose output does not depend on t (MDLM's time-independent denoiser for absorbing
  // processes): samplers that reuse predictions across times (mdlm-cached) are exact only then.
  virtual bool uses_time() const { return true; }
  // Self-conditioning (Chen et al. 2022): a network built with self_condition = true also takes the previous
  // x0 estimate: float [B, ...] shaped like x0_hat (continuous; [B, L, d] codes for gaussian-embed) or the
  // probabilities p(x0 | x_t) [B, ..., K] (categorical output); undefined = zeros, which is what forward() feeds.
  virtual bool self_conditioned() const { return false; }
  virtual torch::Tensor forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor y, torch::Tensor estimate) {
    if (estimate.defined())
      throw std::invalid_argument("this model takes no self-conditioning estimate (model.self_condition = false)");
    return forward(x, t, y);
  }
};
TORCH_MODULE(DenoiserNet);

// Wraps a concrete module (UNet, Transformer holder, or a shared_ptr to a DenoiserNetImpl
// subclass) as the common DenoiserNet; the module is shared, not copied.
template <typename Impl>
DenoiserNet as_denoiser(std::shared_ptr<Impl> impl) {
  return DenoiserNet(std::shared_ptr<DenoiserNetImpl>(std::move(impl)));
}
template <typename Impl>
DenoiserNet as_denoiser(const torch::nn::ModuleHolder<Impl>& holder) {
  return as_denoiser(holder.ptr());
}

// Factory: builds a model from the full config object (including "type").
using ModelFactory = std::function<DenoiserNet(const nlohmann::json&)>;

// Registers (or replaces) a model type. "unet" and "transformer" are built in.
void register_model(const std::string& name, ModelFactory factory);
// Builds cfg["type"]; an unknown type is a ModelConfigError listing model_names().
DenoiserNet make_model(const nlohmann::json& cfg);
// Known model type names, sorted.
std::vector<std::string> model_names();

// Number of scalar parameters (trainable only when trainable_only).
int64_t count_parameters(const torch::nn::Module& module, bool trainable_only = false);

}  // namespace gsdiff
