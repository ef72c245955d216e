// The shared reverse-step loop: a sampler's update, then the per-step hook, then progress.
#include "sample/step_hook.h"

namespace gsdiff {

torch::Tensor run_reverse_steps(torch::Tensor x, const std::vector<double>& grid,
                                const std::function<torch::Tensor(const torch::Tensor&, int64_t)>& step,
                                const StepHook& hook, torch::Generator& gen, const Progress& progress) {
  const int64_t total = int64_t(grid.size()) - 1;
  if (hook) x = hook(x, StepInfo{grid.front(), grid.front(), 0, total, {}}, gen);  // the prior draw x_1
  for (int64_t k = 0; k < total; ++k) {
    x = step(x, k);
    if (hook) x = hook(x, StepInfo{grid[k], grid[k + 1], k + 1, total, [&step, k](const torch::Tensor& xt) { return step(xt, k); }}, gen);
    if (progress) progress(k + 1, total);
  }
  return x;
}

}  // namespace gsdiff
