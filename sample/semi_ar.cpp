// Semi-autoregressive sampling: a window, then windows whose first W - block tokens are the kept context.
#include "sample/semi_ar.h"

#include <stdexcept>

namespace gsdiff {

using torch::Tensor;

void check_blocks(const BlockOptions& o, int64_t window) {
  if (o.length() < window)
    throw std::invalid_argument("blocks: length must be at least the model's sequence length " + std::to_string(window) +
                                ", got " + std::to_string(o.length()));
  if (o.block() < 1 || o.block() > window)
    throw std::invalid_argument("blocks: block must lie in [1, " + std::to_string(window) + "] (the model's sequence length), got " +
                                std::to_string(o.block()));
}

Tensor sample_blocks(const Sampler& sampler, const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                     int64_t num, int64_t window, const BlockOptions& o, torch::Generator& gen, const Progress& progress,
                     const StepHook& first_hook) {
  check_blocks(o, window);
  if (p.space() != Space::Discrete)
    throw std::invalid_argument("blocks: semi-autoregressive sampling keeps context tokens in the state, so it needs a discrete "
                                "process, got " + p.name());
  auto out = sampler(p, f, grid, {num, window}, gen, progress, first_hook);  // [num, W]
  const int64_t C = window - o.block();                                       // context tokens per later window
  while (out.size(1) < o.length()) {
    auto ctx = out.narrow(1, out.size(1) - C, C).contiguous();  // [num, C] the newest tokens, fixed from here on
    // Keep the context in every state (a discrete state is the tokens [num, W]), the prior draw and the final x0 included.
    StepHook keep = [ctx, C](const Tensor& x, const StepInfo&, torch::Generator&) {
      if (C == 0) return x;
      auto y = x.clone();
      y.narrow(1, 0, C).copy_(ctx.to(y.device(), y.scalar_type()));
      return y;
    };
    auto w = sampler(p, f, grid, {num, window}, gen, progress, keep);  // [num, W]
    const int64_t need = std::min(o.block(), o.length() - out.size(1));
    out = torch::cat({out, w.narrow(1, C, need).to(out.device())}, 1);  // [num, so far + need]
  }
  return out;
}

}  // namespace gsdiff
