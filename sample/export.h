// TorchScript export of a denoiser with its process and data description inside the archive.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "models/denoiser.h"

namespace gsdiff {

// Name of the extra file inside the archive that holds the metadata JSON.
constexpr const char* kExportMetaFile = "gsdiff.json";

// Traces model->forward(x_t, t) at the example inputs (any batch size works afterwards, see
// models/trace.h) and saves it to `path` with `meta` written as the extra file "gsdiff.json".
// meta holds at least: "process" (the process options JSON with "name", enough for make_process),
// "parameterization", "data_shape" (one example's shape), "alphabet" (text, or "" for images),
// "model" (the model config). The module's forward(x_t, t) returns the raw network output.
void export_model(DenoiserNet model, const nlohmann::json& meta, const torch::Tensor& x_example,
                  const torch::Tensor& t_example, const std::string& path);

// Loads an export with torch::jit::load and parses its metadata; throws if gsdiff.json is missing.
struct LoadedExport {
  std::shared_ptr<torch::jit::Module> module;
  nlohmann::json meta;
};
LoadedExport load_export(const std::string& path, const torch::Device& device = torch::kCPU);

// The metadata of an export: process JSON, parameterisation, data shape, alphabet, model config.
nlohmann::json export_meta(const nlohmann::json& process_json, const nlohmann::json& model_config,
                           const std::vector<int64_t>& data_shape, const std::string& alphabet);

}  // namespace gsdiff
