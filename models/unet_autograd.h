// ResBlock and AttnBlock as single autograd nodes: forward without graph recording, backward written out.
#pragma once
#include <torch/torch.h>

namespace gsdiff {

struct ResBlockImpl;
struct AttnBlockImpl;

// Process-wide switch (default on). When on, a block whose forward runs with grad mode enabled, outside
// autocast and tracing, is recorded as one autograd node instead of ~10 (GroupNorm, SiLU, conv, add,
// dropout, ...): the forward calls the same ATen ops with recording off and keeps what their backward
// needs; the backward calls ATen's own backward kernels (convolution_backward, native_group_norm_backward,
// silu_backward, _softmax_backward_data, bmm) in the chain rule's order. Values and gradients equal the
// op-by-op graph's: the ResBlock's bit for bit where the same kernels run (set_cpu_kernels(false)), the
// AttnBlock's up to bmm's summation order (tests/models/unet_autograd_test.cpp); on the CPU,
// silu(GroupNorm(x)) and dropout run on the kernels of models/cpu_kernels.h (float32, AVX2: equal up to
// float rounding; dropout draws its mask from its own counter-based hash, so a seed gives other masks than
// ATen's bernoulli_), and the convolutions run on gsdiff's cached oneDNN primitives (models/onednn_conv.h)
// where built, else 1x1 convolutions from 4M multiply-adds up on ATen's oneDNN instead of THNN (both faster;
// equal up to float rounding). Off: every op is its own node, as before.
void set_block_autograd(bool on);
bool block_autograd_enabled();

// Whether a block with input `x` and first weight `weight` takes the single-node path now: switched on,
// grad mode on, something to differentiate, same dtype, no autocast, not tracing.
bool use_block_autograd(const torch::Tensor& x, const torch::Tensor& weight);

// out = (skip ? skip(x) : x) + conv2(dropout(silu(norm2(conv1(silu(norm1(x))) + proj)))), one node.
torch::Tensor resblock_single_node(ResBlockImpl& b, const torch::Tensor& x, const torch::Tensor& proj);
// out = x + proj(attention(norm(x))) on LibTorch 1.13's channels-first layout, one node.
torch::Tensor attnblock_single_node(AttnBlockImpl& a, const torch::Tensor& x);

}  // namespace gsdiff
