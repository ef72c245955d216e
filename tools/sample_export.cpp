// Sampling from a TorchScript export (process rebuilt from its gsdiff.json) and writing the samples.
#include "tools/sample_export.h"

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>

#include "core/decoder.h"
#include "core/distributions.h"
#include "core/registry.h"
#include "sample/export.h"
#include "sample/guidance.h"
#include "sample/writers.h"
#include "tools/flags.h"
#include "tools/sample_util.h"

namespace gsdiff::cli {

void write_samples(const std::string& path, const torch::Tensor& x_in, int64_t categories) {
  auto x = x_in.to(torch::kCPU);
  if (x.dim() == 4 && (x.size(1) == 1 || x.size(1) == 3)) {  // images [N, C, H, W]
    auto levels = x.is_floating_point() ? unit_to_levels(x) : x.clamp(0, 255);
    write_png_grid(path, levels.to(torch::kUInt8));
  } else if (!x.is_floating_point() && categories == 27) {
    write_text(path, tokens_to_text8(x.reshape({x.size(0), -1})));
  } else {
    write_text(path, csv_rows(x));
  }
}

void sample_fn_to_file(const Process& process, const DenoiseFn& f, const std::vector<int64_t>& example_shape,
                       int64_t categories, const std::string& sampler, const SamplerOptions& opts, int64_t num,
                       int64_t steps, const std::string& grid, uint64_t seed, const std::string& out,
                       const StepHook& hook, const SampleExtras& extras) {
  std::vector<int64_t> shape{num};
  shape.insert(shape.end(), example_shape.begin(), example_shape.end());
  auto gen = make_generator(opts.device, seed);
  auto progress = [](int64_t k, int64_t n) {
    if (k == n || k % std::max<int64_t>(1, n / 10) == 0)
      std::cerr << "\rsampling step " << k << "/" << n << (k == n ? "\n" : "") << std::flush;
  };
  torch::NoGradGuard ng;
  SamplerStats stats;
  SamplerOptions o = opts;
  o.stats = &stats;
  auto run = make_sampler(sampler, o);
  auto fn = filtered_denoiser(process, f, extras.filter);  // temperature / top-p (identity by default)
  const auto g = time_grid(process, steps, grid);
  const std::clock_t cpu0 = std::clock();
  const auto wall0 = std::chrono::steady_clock::now();
  auto x = extras.blocks.length() > 0
               ? sample_blocks(run, process, fn, g, num, example_shape.at(0), extras.blocks, gen, progress, hook)
               : run(process, fn, g, shape, gen, progress, hook);
  const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::cerr << "network calls " << stats.network_calls << " (rows " << stats.network_rows << "), sampling " << cpu
            << " s CPU, " << wall << " s wall\n";
  write_samples(out, x, categories);
}

std::unique_ptr<Process> with_flow_eta(std::unique_ptr<Process> p, double flow_eta) {
  if (flow_eta < 0) return p;
  if (p->name() != "discrete-flow")
    throw UsageError("--flow-eta: an option of discrete-flow processes (Campbell et al.'s stochasticity), not of " + p->name());
  auto j = p->options_json();
  j["name"] = p->name();
  j["eta"] = flow_eta;
  return make_process(j);
}

void sample_export_to_file(const std::string& model_path, const std::string& sampler, const SamplerOptions& opts,
                           int64_t num, int64_t steps, const std::string& grid, uint64_t seed,
                           const std::string& out, const HookMaker& make_hook, const SampleExtras& extras) {
  auto ex = load_export(model_path, opts.device);
  register_builtins();
  auto process = with_flow_eta(make_process(ex.meta.at("process")), extras.flow_eta);
  auto shape = ex.meta.at("data_shape").get<std::vector<int64_t>>();
  SamplerOptions o = opts;
  o.denoiser_uses_t = ex.meta.at("model").value("time_conditioning", true);  // the exported network's option
  sample_fn_to_file(*process, export_denoise_fn(*process, ex), shape, process->num_categories(), sampler, o, num, steps,
                    grid, seed, out, make_hook ? make_hook(*process, shape) : StepHook{}, extras);
}

}  // namespace gsdiff::cli
