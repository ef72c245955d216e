// Shared by `gsdiff sample` and `gsdiff train`: draw samples from a model and write PNG / text / CSV.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/process.h"
#include "models/denoiser.h"
#include "train/config.h"

namespace gsdiff::cli {

struct SampleRequest {
  int64_t num = 64, steps = 0;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  bool progress = false;
  bool print_stats = false;  // print network calls / rows and the sampling CPU and wall time to stderr
};

// Samples `num` examples of the config's data shape with the ancestral sampler and writes them to
// `path`: a PNG grid (images), one text8 line per sample (tokens) or CSV rows (real vectors).
void sample_to_file(const Config& cfg, const Process& process, DenoiserNet& model, const SampleRequest& req,
                    const std::string& path);

// Real vectors [N, ...] as CSV text: one row per sample, 6 significant digits.
std::string csv_rows(const torch::Tensor& x);

// Parses --device.
torch::Device parse_device(const std::string& s);

}  // namespace gsdiff::cli
