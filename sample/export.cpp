// TorchScript export with gsdiff.json metadata (torch::jit::ExtraFilesMap), and loading it back.
#include "sample/export.h"

#include <stdexcept>

#include "core/self_condition.h"
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

void export_model(DenoiserNet model, const nlohmann::json& meta_in, const torch::Tensor& x_example,
                  const torch::Tensor& t_example, const std::string& path, const torch::Tensor& estimate_example) {
  if (!meta_in.contains("process")) throw std::invalid_argument("export_model: meta needs a \"process\" entry");
  const bool sc = model->self_conditioned();
  if (sc && !estimate_example.defined())
    throw std::invalid_argument("export_model: a self-conditioned model (model.self_condition) needs an example "
                                "estimate (example_estimate)");
  auto meta = meta_in;
  meta["self_condition"] = sc;
  if (sc) {
    auto shape = estimate_example.sizes().vec();
    shape.erase(shape.begin());  // one example's
    const int64_t K = int64_t(shape.size()) > x_example[0].dim() ? shape.back() : 0;  // discrete: [..., K]
    meta["self_condition_estimate"] = {
        {"shape", shape}, {"categories", K}, {"dtype", "float32"},
        {"meaning", K > 0 ? "p(x0 | x_t) of the previous network call, [B, ..., K]; zeros at the first call"
                          : "x0_hat of the previous network call, x_t's shape; zeros at the first call"}};
    meta["forward"] = "forward(x_t, t, estimate) -> raw network output; t float32 [B] in [0, 1]; estimate float32 "
                      "[B] + self_condition_estimate.shape (Chen et al. 2022's self-conditioning)";
  }
  auto module = sc ? trace_model(model, x_example, t_example.to(torch::kFloat32), {}, estimate_example.to(torch::kFloat32))
                   : trace_model(model, x_example, t_example.to(torch::kFloat32));
  torch::jit::ExtraFilesMap extra{{kExportMetaFile, meta.dump(2)}};
  module.save(path, extra);
}

torch::Tensor example_estimate(const Process& p, DenoiserNet model, const torch::Tensor& x, const torch::Tensor& t) {
  torch::NoGradGuard ng;
  const bool was_training = model->is_training();
  model->eval();
  auto tf = t.to(torch::kFloat32);
  auto est = self_condition_estimate(p, model->forward_self_cond(x, tf, {}, {}), x, t);  // [B, ...] or [B, ..., K]
  model->train(was_training);
  return est.to(torch::kFloat32);
}

LoadedExport load_export(const std::string& path, const torch::Device& device) {
  torch::jit::ExtraFilesMap extra{{kExportMetaFile, ""}};
  auto m = std::make_shared<torch::jit::Module>(torch::jit::load(path, device, extra));
  m->eval();
  const auto& text = extra[kExportMetaFile];
  if (text.empty()) throw std::runtime_error(path + ": not a gsdiff export (no " + kExportMetaFile + " inside)");
  return {m, nlohmann::json::parse(text)};
}

DenoiseFn export_denoise_fn(const Process& p, const LoadedExport& ex) {
  auto module = ex.module;
  if (!ex.meta.value("self_condition", false))
    return [module](const torch::Tensor& x, const torch::Tensor& t) { return module->forward({x, t.to(torch::kFloat32)}).toTensor(); };
  const auto shape = ex.meta.at("self_condition_estimate").at("shape").get<std::vector<int64_t>>();
  SelfCondFn f = [module, shape](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& est) {
    std::vector<int64_t> full{x.size(0)};
    full.insert(full.end(), shape.begin(), shape.end());
    auto e = est.defined() ? est.to(torch::kFloat32) : torch::zeros(full, x.options().dtype(torch::kFloat32));
    return module->forward({x, t.to(torch::kFloat32), e}).toTensor();
  };
  return self_condition_feedback(p, std::move(f));
}

}  // namespace gsdiff
