// The per-step state hook every sampler calls (DESIGN.md §8) and the shared reverse-step loop that calls it.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace gsdiff {

// progress(step, total) after each reverse step.
using Progress = std::function<void(int64_t step, int64_t total)>;

// One reverse step of a sampler from grid[k] to grid[k + 1]: x_t -> x_s (the sampler's own update).
using ReverseStep = std::function<torch::Tensor(const torch::Tensor& xt)>;

// What a hook is told about the state it is handed.
struct StepInfo {
  double t = 1.0, s = 1.0;  // the step just taken, t -> s; t = s = grid.front() for the prior draw
  int64_t step = 0, total = 0;  // 1..total after each step; 0 for the prior draw
  ReverseStep redo;             // runs the same step again from a given x_t (empty for the prior draw)
};

// x -> the state the sampler continues from. Called on the prior draw x_1 and on x_s after every reverse step
// (infilling / inpainting clamp known parts here; RePaint re-noises to x_t and calls redo).
using StepHook = std::function<torch::Tensor(const torch::Tensor& x, const StepInfo& info, torch::Generator& gen)>;

// The loop every sampler shares: x = hook(x_1), then x = hook(step(x, k)) for k = 0..total-1, progress after each.
// step(x, k) is the sampler's update from grid[k] to grid[k + 1]; an empty hook leaves the chain as it is.
torch::Tensor run_reverse_steps(torch::Tensor x, const std::vector<double>& grid,
                                const std::function<torch::Tensor(const torch::Tensor&, int64_t)>& step,
                                const StepHook& hook, torch::Generator& gen, const Progress& progress);

}  // namespace gsdiff
