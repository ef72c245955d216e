// Draws samples with the ancestral sampler and writes them in the data's natural format.
#include "tools/sample_util.h"

#include <torch/version.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/decoder.h"
#include "core/distributions.h"
#include "data/factory.h"
#include "sample/ancestral.h"
#include "sample/sampler.h"
#include "sample/guidance.h"
#include "sample/writers.h"
#include "train/evaluate.h"

namespace gsdiff::cli {

torch::Device parse_device(const std::string& s) {
  if (s == "cpu") return torch::kCPU;
  if (s.rfind("cuda", 0) == 0) {
#if defined(GSDIFF_WITH_CUDA)
    if (!torch::cuda::is_available())
      throw std::runtime_error("--device " + s + ": this gsdiff has CUDA (LibTorch " TORCH_VERSION
                               ") but no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)");
#else
    throw std::runtime_error("--device " + s + ": this gsdiff was built against a CPU-only LibTorch (" TORCH_VERSION
                             "); build it against a CUDA PyTorch (scripts/cuda_build.sh) for --device cuda");
#endif
    return torch::Device(s);
  }
  throw std::invalid_argument("--device must be cpu or cuda[:N], got '" + s + "'");
}

std::string csv_rows(const torch::Tensor& x) {
  std::ostringstream out;
  auto flat = x.reshape({x.size(0), -1}).to(torch::kCPU, torch::kFloat64).contiguous();  // [N, D]
  const double* v = flat.data_ptr<double>();
  for (int64_t i = 0; i < flat.size(0); ++i) {
    for (int64_t j = 0; j < flat.size(1); ++j) out << (j ? "," : "") << v[i * flat.size(1) + j];
    out << "\n";
  }
  return out.str();
}

void sample_to_file(const Config& cfg, const Process& process, DenoiserNet& model, const SampleRequest& req,
                    const std::string& path) {
  auto ds = data::make_dataset(eval_data_config(cfg));
  std::vector<int64_t> shape = {req.num};
  for (auto d : ds->example_shape()) shape.push_back(d);
  auto gen = make_generator(req.device, req.seed);
  bool was_training = model->is_training();
  model->eval();
  auto progress = [&](int64_t k, int64_t n) {
    if (req.progress && (k == n || k % std::max<int64_t>(1, n / 10) == 0))
      std::cerr << "\rsampling step " << k << "/" << n << (k == n ? "\n" : "") << std::flush;
  };
  SamplerStats stats;
  const std::clock_t cpu0 = std::clock();
  const auto wall0 = std::chrono::steady_clock::now();
  auto x = sample_ancestral(process, counted(sampling_denoise_fn(process, model), &stats), default_grid(process, req.steps), shape, gen,
                            progress, req.device).to(torch::kCPU);
  if (req.print_stats)  // the same line as sample_fn_to_file's (bench/mdlm_cached.sh reads it)
    std::cerr << "network calls " << stats.network_calls << " (rows " << stats.network_rows << "), sampling "
              << double(std::clock() - cpu0) / CLOCKS_PER_SEC << " s CPU, "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count() << " s wall\n";
  if (was_training) model->train();
  switch (ds->kind()) {
    case data::DataKind::Image: {
      auto levels = x.is_floating_point() ? unit_to_levels(x) : x.clamp(0, 255);
      write_png_grid(path, levels.to(torch::kUInt8));  // [N,C,H,W] -> grid
      break;
    }
    case data::DataKind::Tokens:
      write_text(path, tokens_to_text8(x));
      break;
    case data::DataKind::Continuous: {
      write_text(path, csv_rows(x));
      break;
    }
  }
}

}  // namespace gsdiff::cli
