// TorchScript export with gsdiff.json metadata (torch::jit::ExtraFilesMap), and loading it back.
#include "sample/export.h"

#include <stdexcept>

#include "models/trace.h"

namespace gsdiff {

nlohmann::json export_meta(const nlohmann::json& process_json, const nlohmann::json& model_config,
                           const std::vector<int64_t>& data_shape, const std::string& alphabet) {
  nlohmann::json m;
  m["format"] = "gsdiff-export";
  m["version"] = 1;
  m["process"] = process_json;
  m["parameterization"] = process_json.value("parameterization", std::string("logits"));
  m["data_shape"] = data_shape;
  m["alphabet"] = alphabet;
  m["model"] = model_config;
  m["forward"] = "forward(x_t, t) -> raw network output; t float32 [B] in [0, 1]";
  return m;
}

void export_model(DenoiserNet model, const nlohmann::json& meta, const torch::Tensor& x_example,
                  const torch::Tensor& t_example, const std::string& path) {
  if (!meta.contains("process")) throw std::invalid_argument("export_model: meta needs a \"process\" entry");
  if (model->self_conditioned())  // the trace has no input for the estimate: an export would silently feed zeros
    throw std::invalid_argument(
        "export: a self-conditioned model (model.self_condition = true) cannot be exported yet: the traced "
        "forward(x_t, t) has no input for the previous x0 estimate, and a sampler running from the export alone would "
        "feed zeros, which the model saw in only half of its training steps; sample from the checkpoint instead");
  auto module = trace_model(model, x_example, t_example.to(torch::kFloat32));
  torch::jit::ExtraFilesMap extra{{kExportMetaFile, meta.dump(2)}};
  module.save(path, extra);
}

LoadedExport load_export(const std::string& path, const torch::Device& device) {
  torch::jit::ExtraFilesMap extra{{kExportMetaFile, ""}};
  auto m = std::make_shared<torch::jit::Module>(torch::jit::load(path, device, extra));
  m->eval();
  const auto& text = extra[kExportMetaFile];
  if (text.empty()) throw std::runtime_error(path + ": not a gsdiff export (no " + kExportMetaFile + " inside)");
  return {m, nlohmann::json::parse(text)};
}

}  // namespace gsdiff
