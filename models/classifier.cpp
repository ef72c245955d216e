// A noisy-input classifier: a registered trunk, mean- and max-pooled over positions, and a linear class head.
#include "models/classifier.h"

#include <stdexcept>
#include <string>

#include "models/json_reader.h"

namespace gsdiff {

ClassifierOptions classifier_options_from_json(const nlohmann::json& j) {
  ClassifierOptions o;
  ModelJsonReader r(j, "classifier options");
  r.ignore("type");
  r.read("classes", o.classes());
  r.read("features", o.features());
  r.ignore("trunk");
  r.finish();
  if (j.is_object() && j.contains("trunk")) o.trunk(j.at("trunk"));
  return o;
}

ClassifierImpl::ClassifierImpl(const ClassifierOptions& options_) : options(options_) {
  const auto& o = options;
  if (o.classes() < 2) throw ModelConfigError("classifier options: key 'classes' must be >= 2, got " + std::to_string(o.classes()));
  if (o.features() < 1) throw ModelConfigError("classifier options: key 'features' must be >= 1");
  auto cfg = o.trunk();
  const std::string type = cfg.is_object() ? cfg.value("type", std::string()) : std::string();
  if (type == "transformer") {
    cfg["out_dim"] = o.features();
  } else if (type == "unet") {
    cfg["out_channels"] = o.features(), cfg["output_states"] = 0;
  } else {
    throw ModelConfigError("classifier options: key 'trunk' must be a \"unet\" or \"transformer\" config, got " + cfg.dump());
  }
  trunk = register_module("trunk", make_model(cfg));
  if (trunk->num_classes() > 0 || trunk->self_conditioned())
    throw ModelConfigError("classifier options: the trunk takes no class labels and no self-conditioning");
  head = register_module("head", torch::nn::Linear(2 * o.features(), o.classes()));
}

nlohmann::json ClassifierImpl::config() const {
  return {{"type", "classifier"}, {"classes", options.classes()}, {"features", options.features()}, {"trunk", trunk->config()}};
}

torch::Tensor ClassifierImpl::forward(torch::Tensor x, torch::Tensor t, torch::Tensor y) {
  if (y.defined()) throw std::invalid_argument("classifier: takes no class labels");
  auto h = trunk->forward(x, t);                              // [B, L, F] or [B, F, H, W]
  h = h.dim() == 3 ? h.transpose(1, 2) : h.flatten(2);       // [B, F, positions]
  // Mean and max over positions: a U-Net's GroupNorm leaves each example's spatial means nearly fixed, so the mean
  // alone carries little of the class.
  return head(torch::cat({h.mean(2), std::get<0>(h.max(2))}, 1));  // [B, classes]
}

ClassifierImpl* as_classifier(DenoiserNet& model) { return dynamic_cast<ClassifierImpl*>(model.get()); }

}  // namespace gsdiff
