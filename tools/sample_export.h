// `gsdiff sample --model model.pt`: sampling from a TorchScript export alone, with any registered sampler.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sample/sampler.h"
#include "sample/semi_ar.h"
#include "sample/token_filter.h"

namespace gsdiff::cli {

// What `gsdiff sample` adds around any sampler: temperature / top-p on p(x0 | x_t) (a DenoiseFn wrapper) and
// semi-autoregressive blocks (length 0: none).
struct SampleExtras {
  TokenFilterOptions filter;
  BlockOptions blocks;
  double flow_eta = -1;  // >= 0: a discrete-flow process's eta at sampling (--flow-eta); < 0: the process's own
};

// The process with a discrete-flow eta of the sampler's choice (`flow_eta` >= 0): every eta generates the same
// probability path (Campbell et al. 2024, sec. 3.3), so a model trained at one eta samples at another. The process
// itself when flow_eta < 0; refused, naming --flow-eta, for other processes.
std::unique_ptr<Process> with_flow_eta(std::unique_ptr<Process> p, double flow_eta);

// The step hook for a process and example shape known only once an export is loaded (e.g. a constraint); it may
// throw to refuse flags that do not fit the process.
using HookMaker = std::function<StepHook(const Process& process, const std::vector<int64_t>& example_shape)>;

// Samples `num` examples of the export's data shape (gsdiff.json) with `sampler` on a time grid of `steps` of the
// given kind (sample/sampler.h time_grid: uniform | quadratic | karras) and writes them like sample_to_file: PNG grid (3-d shapes), text8 lines (tokens) or CSV rows.
void sample_export_to_file(const std::string& model_path, const std::string& sampler, const SamplerOptions& opts,
                           int64_t num, int64_t steps, const std::string& grid, uint64_t seed,
                           const std::string& out, const HookMaker& make_hook = {}, const SampleExtras& extras = {});

// Samples from a checkpoint's process and data shape with any sampler and DenoiseFn (e.g. expert
// switching), writing like sample_to_file; `hook` is every step's state hook (e.g. constraint_hook; with blocks, the
// first window's). Prints the network calls and rows (SamplerStats) and the sampling CPU and wall time to stderr.
void sample_fn_to_file(const Process& process, const DenoiseFn& f, const std::vector<int64_t>& example_shape,
                       int64_t categories, const std::string& sampler, const SamplerOptions& opts, int64_t num,
                       int64_t steps, const std::string& grid, uint64_t seed, const std::string& out,
                       const StepHook& hook = {}, const SampleExtras& extras = {});

// Writes samples x [N, ...] by shape and family: images (3-d example shape) as a PNG grid,
// tokens as text8 lines, anything else as CSV rows.
void write_samples(const std::string& path, const torch::Tensor& x, int64_t categories);

}  // namespace gsdiff::cli
