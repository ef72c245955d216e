// TorchScript tracing of a DenoiserNet into a torch::jit::Module whose forward(x_t, t[, y][, estimate]) works at any batch size.
#pragma once
#include <torch/script.h>

#include "models/denoiser.h"

namespace gsdiff {

// Traces model->forward(x, t) (or forward(x, t, y) when y is defined; forward_self_cond(x, t, y, estimate) when the
// self-conditioning estimate is defined: float [B, ...] as models/denoiser.h describes it) in eval mode and returns
// a Module with method forward(x_t, t[, y][, estimate]) and the model's parameters and buffers as
// attributes (detached copies, same dotted names as named_parameters()/named_buffers()).
// No batch size or sequence length is frozen into the graph; tensor dtypes, the number of
// dims, model sizes and (for the U-Net) nothing spatial except the level count are.
// The model's train/eval mode is restored afterwards. Save with module.save(path).
torch::jit::Module trace_model(DenoiserNet model, const torch::Tensor& x, const torch::Tensor& t,
                               const torch::Tensor& y = {}, const torch::Tensor& estimate = {});

}  // namespace gsdiff
