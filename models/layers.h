// Shared building blocks: sinusoidal time embedding, rotary positions, attention kernel.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace gsdiff {

// Sinusoidal embedding of continuous time (Vaswani et al. 2017; DDPM, Ho et al. 2020):
// emb(t) = [sin(s t w_i), cos(s t w_i)], w_i = max_period^(-i/(half-1)), s = scale (e.g. 1000).
struct SinusoidalEmbeddingImpl : torch::nn::Module {
  SinusoidalEmbeddingImpl(int64_t dim, double scale = 1000.0, double max_period = 10000.0);
  torch::Tensor forward(const torch::Tensor& t);  // t [B] -> [B, dim] (float32)
  int64_t dim;
  torch::Tensor freqs;  // buffer [dim/2]
};
TORCH_MODULE(SinusoidalEmbedding);

// Rotary position embedding (Su et al. 2021, RoFormer), "rotate half" convention.
struct RotaryEmbeddingImpl : torch::nn::Module {
  RotaryEmbeddingImpl(int64_t head_dim, double base = 10000.0);
  // positions float [L] -> (cos, sin), each [L, head_dim/2].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& positions);
  torch::Tensor inv_freq;  // buffer [head_dim/2]
};
TORCH_MODULE(RotaryEmbedding);

// x [B, H, L, Dh] rotated by cos/sin [L, Dh/2].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Positions 0..L-1 as float [L], read from a tensor's dimension `dim` without baking L into a
// traced graph (ones_like + cumsum instead of arange(L)). `row` must be 1-D.
torch::Tensor positions_like(const torch::Tensor& row);

// softmax(q k^T / sqrt(Dh)) v for q, k, v [B, H, L, Dh] -> [B, H, L, Dh]. Uses the fused
// at::scaled_dot_product_attention on LibTorch >= 2, the plain formula on 1.13.
torch::Tensor dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// DDPM-style initialisation: xavier-uniform weights and zero biases for every Linear/Conv2d.
void init_xavier_zero_bias(torch::nn::Module& module);
// Zeroes a Linear/Conv2d's weight and bias (adaLN-zero, zero-init output layers).
void zero_init(torch::nn::Module& module);

}  // namespace gsdiff
