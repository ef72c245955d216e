// Ancestral sampler over any process: prior draw, then the process's own reverse step per grid pair.
#include "sample/ancestral.h"

#include <cmath>
#include <stdexcept>

namespace gsdiff {

std::vector<double> default_grid(const Process& p, int64_t steps) {
  std::vector<double> g;
  if (!p.continuous_time()) {
    const int64_t T = p.steps();
    const int64_t n = steps > 0 ? std::min(steps, T) : T;
    int64_t last = -1;
    for (int64_t k = n; k >= 0; --k) {  // indices round(k T / n), descending and distinct
      int64_t i = int64_t(std::llround(double(k) * double(T) / double(n)));
      if (i != last) g.push_back(p.grid_time(i));
      last = i;
    }
    return g;
  }
  const int64_t n = steps > 0 ? steps : 100;
  for (int64_t k = n; k >= 0; --k) g.push_back(double(k) / double(n));
  return g;
}

torch::Tensor sample_ancestral(const Process& p, const DenoiseFn& denoise, const std::vector<double>& grid,
                               at::IntArrayRef shape, torch::Generator& gen,
                               std::function<void(int64_t, int64_t)> progress, const torch::Device& device,
                               const StepHook& hook) {
  if (grid.size() < 2) throw std::invalid_argument("sample_ancestral: the grid needs at least two times");
  for (size_t i = 1; i < grid.size(); ++i)
    if (!(grid[i] < grid[i - 1])) throw std::invalid_argument("sample_ancestral: the grid must be strictly descending");
  torch::NoGradGuard ng;
  const bool continuous = p.space() == Space::Continuous;
  auto opts = torch::TensorOptions().device(device).dtype(continuous ? torch::kFloat32 : torch::kLong);
  const int64_t B = shape[0];
  auto tdev = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto step = [&](const torch::Tensor& x, int64_t k) {
    auto t = torch::full({B}, grid[k], tdev), s = torch::full({B}, grid[k + 1], tdev);  // [N]
    auto pred = predict(p, denoise, x, t);  // x0_hat [N, ...] or log p(x0 | x_t) [N, ..., K]
    // Final step to s = 0 (continuous): the mean prediction rather than a noisy z_0.
    return continuous && grid[k + 1] <= 0.0 ? pred : p.sample_reverse(x, s, t, pred, gen);
  };
  auto x = run_reverse_steps(p.sample_prior(shape, opts, gen), grid, step, hook, gen, progress);  // [N, ...]
  return p.to_data(x);  // the data's form (gaussian-embed: nearest code -> tokens)
}

}  // namespace gsdiff
