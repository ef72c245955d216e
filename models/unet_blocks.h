// U-Net building blocks (DDPM, Ho et al. 2020): residual block with time embedding, spatial self-attention, resampling.
#pragma once
#include <torch/torch.h>

namespace gsdiff {

// GroupNorm in its parameters' dtype: float32 under autocast (CPU autocast in LibTorch 1.13
// passes bf16 activations to group_norm with float32 weights, which fails), bf16 for a bf16 model.
torch::Tensor group_norm_in_param_dtype(torch::nn::GroupNorm& norm, const torch::Tensor& x);

// GroupNorm -> SiLU -> conv3x3 -> + Dense(temb) -> GroupNorm -> SiLU -> dropout -> conv3x3 (zero-init),
// plus a 1x1 shortcut when the width changes.
struct ResBlockImpl : torch::nn::Module {
  ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t temb_ch, double dropout, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);  // [B,Ci,H,W],[B,T] -> [B,Co,H,W]
  // The same with temb_proj(silu(temb)) [B,Co] given: the U-Net computes all its blocks' projections in
  // one GEMM (the values of forward()'s).
  torch::Tensor forward_temb_proj(const torch::Tensor& x, const torch::Tensor& proj);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear temb_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ResBlock);

// Multi-head self-attention over the H*W positions; zero-initialised output projection.
struct AttnBlockImpl : torch::nn::Module {
  AttnBlockImpl(int64_t ch, int64_t heads, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);  // [B,C,H,W] -> [B,C,H,W]
  int64_t heads;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(AttnBlock);

// Stride-2 3x3 conv (pad 1): H -> ceil(H/2); or 2x2 average pooling when with_conv is false.
struct DownsampleImpl : torch::nn::Module {
  DownsampleImpl(int64_t ch, bool with_conv);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample);

// Nearest-neighbour x2 upsampling followed by an optional 3x3 conv.
struct UpsampleImpl : torch::nn::Module {
  UpsampleImpl(int64_t ch, bool with_conv);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

}  // namespace gsdiff
