// TorchScript export of a denoiser with its process and data description inside the archive.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/process.h"
#include "core/self_condition.h"
#include "models/denoiser.h"

namespace gsdiff {

// Name of the extra file inside the archive that holds the metadata JSON.
constexpr const char* kExportMetaFile = "gsdiff.json";

// Traces model->forward(x_t, t) at the example inputs (any batch size works afterwards, see
// models/trace.h) and saves it to `path` with `meta` written as the extra file "gsdiff.json".
// meta holds at least: "process" (the process options JSON with "name", enough for make_process),
// "parameterization", "data_shape" (one example's shape), "alphabet" (text, or "" for images),
// "model" (the model config). The module's forward(x_t, t) returns the raw network output.
// A self-conditioned model (model.self_condition) needs estimate_example, float [B, ...] (example_estimate): its
// module is forward(x_t, t, estimate), and gsdiff.json gets "self_condition": true, "self_condition_estimate"
// ({"shape": one example's estimate shape, "categories": K or 0, "dtype", "meaning"}: the estimate is x_t's shape,
// plus [K] when K > 0) and the matching "forward" string; other models get "self_condition": false.
void export_model(DenoiserNet model, const nlohmann::json& meta, const torch::Tensor& x_example,
                  const torch::Tensor& t_example, const std::string& path, const torch::Tensor& estimate_example = {});

// The estimate the model's own output at (x, t) gives (core/self_condition.h self_condition_estimate), float
// [B, ...]: x0_hat, or p(x0 | x_t) [B, ..., K]; the example input of a self-conditioned export.
torch::Tensor example_estimate(const Process& p, DenoiserNet model, const torch::Tensor& x, const torch::Tensor& t);

// Loads an export with torch::jit::load and parses its metadata; throws if gsdiff.json is missing.
struct LoadedExport {
  std::shared_ptr<torch::jit::Module> module;
  nlohmann::json meta;
};
LoadedExport load_export(const std::string& path, const torch::Device& device = torch::kCPU);

// The export as one chain's DenoiseFn: forward(x_t, t); for a self-conditioned export ("self_condition" in its
// gsdiff.json) self_condition_feedback over forward(x_t, t, estimate), zeros at the first call, exactly as
// sampling_denoise_fn feeds the checkpoint's model (build one per chain). `p` must outlive the result.
DenoiseFn export_denoise_fn(const Process& p, const LoadedExport& ex);

// The metadata of an export: process JSON, parameterisation, data shape, alphabet, model config.
nlohmann::json export_meta(const nlohmann::json& process_json, const nlohmann::json& model_config,
                           const std::vector<int64_t>& data_shape, const std::string& alphabet);

}  // namespace gsdiff
