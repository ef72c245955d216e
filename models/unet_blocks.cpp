// U-Net building blocks (DDPM, Ho et al. 2020): residual block with time embedding, spatial self-attention, resampling.
#include "models/unet_blocks.h"

#include <torch/version.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "models/layers.h"
#include "models/onednn_conv.h"
#include "models/unet_autograd.h"

namespace gsdiff {
namespace F = torch::nn::functional;
namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}
torch::nn::GroupNorm group_norm(int64_t groups, int64_t ch) {
  if (ch % groups != 0)
    throw std::invalid_argument("U-Net: GroupNorm groups (" + std::to_string(groups) +
                                ") must divide the channel count " + std::to_string(ch));
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, ch).eps(1e-6));
}
}  // namespace

torch::Tensor group_norm_in_param_dtype(torch::nn::GroupNorm& norm, const torch::Tensor& x) {
  const auto dtype = norm->weight.scalar_type();
  return norm(x.scalar_type() == dtype ? x : x.to(dtype));  // no aten::to dispatch in the common case
}

ResBlockImpl::ResBlockImpl(int64_t in_ch, int64_t out_ch, int64_t temb_ch, double p, int64_t groups) {
  norm1 = register_module("norm1", group_norm(groups, in_ch));
  conv1 = register_module("conv1", conv(in_ch, out_ch, 3));
  temb_proj = register_module("temb_proj", torch::nn::Linear(temb_ch, out_ch));
  norm2 = register_module("norm2", group_norm(groups, out_ch));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  conv2 = register_module("conv2", conv(out_ch, out_ch, 3));
  if (in_ch != out_ch) skip = register_module("skip", conv(in_ch, out_ch, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  return forward_temb_proj(x, temb_proj(F::silu(temb)));
}

torch::Tensor ResBlockImpl::forward_temb_proj(const torch::Tensor& x, const torch::Tensor& proj) {
  if (use_block_autograd(x, conv1->weight)) return resblock_single_node(*this, x, proj);  // same values, one node
  auto h = gsdiff::conv2d(conv1, F::silu(group_norm_in_param_dtype(norm1, x)), 1);  // [B,Co,H,W]
  // + [B,Co,1,1]: one view (Co is a model constant, B stays symbolic) instead of two unsqueezes.
  h = h + proj.view({-1, conv1->options.out_channels(), 1, 1});
  h = F::silu(group_norm_in_param_dtype(norm2, h));
  if (dropout->options.p() > 0) h = dropout(h);  // p = 0: identity, skip the call
  h = gsdiff::conv2d(conv2, h, 1);                // [B,Co,H,W]
  return (skip ? gsdiff::conv2d(skip, x, 0) : x) + h;
}

AttnBlockImpl::AttnBlockImpl(int64_t ch, int64_t h, int64_t groups) : heads(h) {
  if (h < 1 || ch % h != 0)
    throw std::invalid_argument("U-Net attention: heads (" + std::to_string(h) + ") must divide channels " +
                                std::to_string(ch));
  norm = register_module("norm", group_norm(groups, ch));
  qkv = register_module("qkv", conv(ch, 3 * ch, 1));
  proj = register_module("proj", conv(ch, ch, 1));
}

torch::Tensor AttnBlockImpl::forward(const torch::Tensor& x) {
#if TORCH_VERSION_MAJOR < 2
  if (use_block_autograd(x, qkv->weight)) return attnblock_single_node(*this, x);  // the same values, one node
#endif
  // Shapes stay symbolic: only model constants (3, heads) enter reshapes, never B, H or W.
  auto qkv_ = gsdiff::conv2d(qkv, group_norm_in_param_dtype(norm, x), 0).flatten(2);  // [B, 3C, N]
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.13 has no fused attention: the plain formula on the channels-first layout, with bmm
  // taking the transposed operands as strided views, so nothing is copied into [B, heads, N, Dh] and back.
  auto parts = qkv_.chunk(3, 1);  // q, k, v: [B, C, N] each (views)
  auto heads_first = [&](const torch::Tensor& a) {  // [B, C, N] -> [B*heads, Dh, N]
    return heads == 1 ? a : a.unflatten(1, {heads, -1}).flatten(0, 1);
  };
  auto q = heads_first(parts[0]), k = heads_first(parts[1]), v = heads_first(parts[2]);
  const double scale = 1.0 / std::sqrt(double(q.size(1)));  // head dim: a model constant
  // The weights transposed, wt[m, n] = k_m . q_n / sqrt(Dh) (keys m, queries n), softmax over the keys
  // (dim 1); then o = v wt needs no transposed view of the weights.
  auto wt = torch::bmm(k.transpose(1, 2), q * scale);  // [B*heads, N, N]
  wt = wt.scalar_type() == torch::kFloat ? torch::softmax(wt, 1)  // softmax in fp32
                                         : torch::softmax(wt.to(torch::kFloat), 1).to(v.scalar_type());
  auto o = torch::bmm(v, wt);  // [B*heads, Dh, N] = [B, C, N] in memory
  return x + gsdiff::conv2d(proj, o.view_as(x), 0);
#else
  qkv_ = qkv_.unflatten(1, {3, heads, -1});                        // [B, 3, heads, Dh, N]
  auto q = qkv_.select(1, 0).transpose(-2, -1);                    // [B, heads, N, Dh]
  auto k = qkv_.select(1, 1).transpose(-2, -1);
  auto v = qkv_.select(1, 2).transpose(-2, -1);
  auto o = dot_product_attention(q, k, v);              // [B, heads, N, Dh]
  o = o.transpose(-2, -1).flatten(1, 2).reshape_as(x);  // [B, C, H, W]
  return x + gsdiff::conv2d(proj, o, 0);
#endif
}

DownsampleImpl::DownsampleImpl(int64_t ch, bool with_conv) {
  if (with_conv)
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, ch, 3).stride(2).padding(1)));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  return conv ? gsdiff::conv2d(conv, x, 1) : F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
}

UpsampleImpl::UpsampleImpl(int64_t ch, bool with_conv) {
  if (with_conv) conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, ch, 3).padding(1)));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  // Scale factors, not an output size, so no spatial size is frozen into a traced graph.
  std::vector<double> scale{2.0, 2.0};
  auto h = at::upsample_nearest2d(x, c10::nullopt, scale);  // [B, C, 2H, 2W]
  return conv ? gsdiff::conv2d(conv, h, 1) : h;
}

}  // namespace gsdiff
