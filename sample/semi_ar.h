// Semi-autoregressive block generation beyond the training length (MDLM, Sahoo et al. 2024, Sec. 4.3).
#pragma once
#include <torch/torch.h>

#include "sample/sampler.h"

namespace gsdiff {

// Sequences of `length` tokens from a model of window W: the first window is sampled whole (with the caller's hook,
// e.g. a prompt); then, while tokens are missing, the last W - block tokens generated so far are the context of the
// next window, kept in every state of its chain (so the denoiser sees them; for absorbing they are unmasked from the
// start), and its last `block` tokens are appended. Earlier tokens are never changed once their window is done.
// block = W and length = W is the sampler itself (the same draws for the same generator).
struct BlockOptions {
  TORCH_ARG(int64_t, length) = 0;  // total tokens, >= the window W
  TORCH_ARG(int64_t, block) = 0;   // new tokens per window after the first, in [1, W]
};

// Throws std::invalid_argument naming `length` / `block` and the window when o does not fit.
void check_blocks(const BlockOptions& o, int64_t window);

// num sequences [num, length] of tokens of a discrete process (one sequence axis of `window`).
torch::Tensor sample_blocks(const Sampler& sampler, const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                            int64_t num, int64_t window, const BlockOptions& o, torch::Generator& gen,
                            const Progress& progress = {}, const StepHook& first_hook = {});

}  // namespace gsdiff
