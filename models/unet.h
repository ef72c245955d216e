// U-Net denoiser (DDPM architecture, Ho et al. 2020) for continuous or categorical images.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "models/denoiser.h"
#include "models/layers.h"
#include "models/unet_blocks.h"

namespace gsdiff {

// JSON keys are the option names below. Defaults: the DDPM CIFAR-10 model (35,746,307 params).
struct UNetOptions {
  // Data channels C (input; also the output channels unless out_channels is set).
  TORCH_ARG(int64_t, in_channels) = 3;
  // Input adapter: 0 = continuous float [B,C,H,W]; V > 0 = categorical int64 [B,C,H,W] with
  // values 0..V-1 (e.g. 256 levels, or 257 with a mask), each channel's value embedded into
  // input_emb_dim and the C embeddings concatenated before conv_in.
  TORCH_ARG(int64_t, input_states) = 0;
  TORCH_ARG(int64_t, input_emb_dim) = 32;
  TORCH_ARG(int64_t, ch) = 128;                                                   // base width
  TORCH_ARG(std::vector<int64_t>, ch_mult) = std::vector<int64_t>({1, 2, 2, 2});  // one per level
  TORCH_ARG(int64_t, num_res_blocks) = 2;                                         // per level (decoder: +1)
  // Attention where the feature map side equals one of these, for an image_size input
  // (fixes the attention levels; other input sizes use the same levels).
  TORCH_ARG(std::vector<int64_t>, attn_resolutions) = std::vector<int64_t>({16});
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, num_heads) = 1;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(int64_t, num_groups) = 32;  // GroupNorm groups
  TORCH_ARG(bool, resamp_with_conv) = true;
  TORCH_ARG(double, time_scale) = 1000.0;  // embeds sinusoid(time_scale * t)
  TORCH_ARG(int64_t, num_classes) = 0;     // > 0: class-conditional; null class = num_classes
  // Output head: 0 = continuous [B,out_channels(*2 if learned_variance),H,W];
  // K > 0 = categorical logits [B,out_channels,H,W,K].
  TORCH_ARG(int64_t, out_channels) = 0;  // 0 = in_channels
  TORCH_ARG(int64_t, output_states) = 0;
  TORCH_ARG(bool, learned_variance) = false;  // iDDPM: 2*C output channels
  // Self-conditioning (Chen et al. 2022): the previous x0 estimate as an extra input, zero-initialised.
  // Continuous input: x0_hat [B,C,H,W] through sc_conv, a bias-free 3x3 conv to ch added to conv_in's output (the
  // same as concatenating it to x as C more channels); categorical input: probabilities [B,C,H,W,K] (K =
  // output_states) through sc_embed, a bias-free Linear(K, input_emb_dim) added to each channel's embedding.
  TORCH_ARG(bool, self_condition) = false;
};

UNetOptions unet_options_from_json(const nlohmann::json& j);
nlohmann::json unet_options_to_json(const UNetOptions& o);

// Input sides must be divisible by 2^(levels-1) (levels = ch_mult.size()): 32x32 with 4
// levels (32->16->8->4); 28x28 with 3 levels (28->14->7). No padding is applied.
struct UNetImpl : DenoiserNetImpl {
  explicit UNetImpl(const UNetOptions& options_ = UNetOptions());
  // x: float [B, C, H, W], or int64 [B, C, H, W] states when input_states > 0 (or their relaxation, float
  // [B, C, H, W, input_states] probabilities); t [B]; y optional [B].
  torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) override;
  int64_t num_classes() const override { return options.num_classes(); }
  bool self_conditioned() const override { return options.self_condition(); }
  // estimate [B,C,H,W] (continuous) / [B,C,H,W,K] (categorical) or undefined (zeros)
  torch::Tensor forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor y, torch::Tensor estimate) override;
  nlohmann::json config() const override;
  void reset();

  UNetOptions options;
  SinusoidalEmbedding time_embed{nullptr};
  torch::nn::Linear temb1{nullptr}, temb2{nullptr};
  torch::nn::Embedding class_embed{nullptr}, input_embed{nullptr};
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr}, sc_conv{nullptr};
  torch::nn::Linear sc_embed{nullptr};
  std::vector<ResBlock> down_res, up_res;
  std::vector<AttnBlock> down_attn, up_attn;  // nullptr entries where no attention
  std::vector<Downsample> downsample;         // one per level except the last
  std::vector<Upsample> upsample;             // indexed by level; nullptr at level 0
  ResBlock mid1{nullptr}, mid2{nullptr};
  AttnBlock mid_attn{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  torch::Tensor channel_offset;  // buffer [1,C,1,1] = c * V (categorical input only)
};
TORCH_MODULE(UNet);

}  // namespace gsdiff
