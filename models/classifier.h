// A noisy-input classifier p(y | x_t, t) for classifier-based guidance (Schiff et al. 2025, D-CBG): trunk + pooled head.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "models/denoiser.h"

namespace gsdiff {

// JSON: {"type": "classifier", "classes": C, "features": F, "trunk": {a "unet" or "transformer" config}}.
// The trunk maps (x_t, t) to F features per position (its out_dim, or a U-Net's out_channels with a continuous
// head, both set here to F); their mean and maximum over positions go through a Linear(2F, C) to the class logits.
struct ClassifierOptions {
  TORCH_ARG(int64_t, classes) = 10;
  TORCH_ARG(int64_t, features) = 64;
  TORCH_ARG(nlohmann::json, trunk) = nlohmann::json{{"type", "transformer"}};
};

ClassifierOptions classifier_options_from_json(const nlohmann::json& j);

struct ClassifierImpl : DenoiserNetImpl {
  explicit ClassifierImpl(const ClassifierOptions& options_ = ClassifierOptions());
  // x_t as the trunk takes it, t [B] -> logits [B, classes]. Takes no class input (y must be undefined).
  torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) override;
  int64_t num_classes() const override { return 0; }  // not class-conditional: it predicts the class
  int64_t classes() const { return options.classes(); }
  nlohmann::json config() const override;

  ClassifierOptions options;
  DenoiserNet trunk{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Classifier);

// The classifier inside a DenoiserNet, or null when it is another model.
ClassifierImpl* as_classifier(DenoiserNet& model);

}  // namespace gsdiff
