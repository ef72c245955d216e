// Model registry: name -> factory, with the built-in U-Net and transformer pre-registered.
#include <map>
#include <mutex>

#include "models/classifier.h"
#include "models/denoiser.h"
#include "models/json_reader.h"
#include "models/transformer.h"
#include "models/unet.h"

namespace gsdiff {
namespace {

std::map<std::string, ModelFactory>& registry() {
  // Built-ins are inserted on first use (function-local static: no static initialiser to drop).
  static std::map<std::string, ModelFactory> r = {
      {"unet", [](const nlohmann::json& j) { return as_denoiser(UNet(unet_options_from_json(j))); }},
      {"transformer",
       [](const nlohmann::json& j) { return as_denoiser(Transformer(transformer_options_from_json(j))); }},
      {"classifier",
       [](const nlohmann::json& j) { return as_denoiser(Classifier(classifier_options_from_json(j))); }},
  };
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_model(const std::string& name, ModelFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = std::move(factory);
}

std::vector<std::string> model_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

DenoiserNet make_model(const nlohmann::json& cfg) {
  if (!cfg.is_object() || !cfg.contains("type") || !cfg.at("type").is_string())
    throw ModelConfigError("model config: expected an object with a string key 'type'");
  const std::string type = cfg.at("type").get<std::string>();
  ModelFactory f;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(type);
    if (it != registry().end()) f = it->second;
  }
  if (!f) {
    std::string known;
    for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
    throw ModelConfigError("model config: unknown type '" + type + "' (known: " + known + ")");
  }
  return f(cfg);
}

int64_t count_parameters(const torch::nn::Module& module, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true))
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

}  // namespace gsdiff
