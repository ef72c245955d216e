// Hand-written CPU kernels (AVX2 + FMA) of the U-Net's single-node ResBlock: silu(GroupNorm(x)), dropout.
#pragma once
#include <torch/torch.h>

#include <array>
#include <tuple>

namespace gsdiff {

// Process-wide switch (default on): off makes group_norm_silu_fusable and dropout_fusable false, so callers
// run ATen's ops instead (for comparisons: the single-node blocks are then bit-identical to the op-by-op graph).
void set_cpu_kernels(bool on);
bool cpu_kernels_enabled();

// Whether the fused kernels take `x`: float32, CPU, contiguous [B, C, ...], and a CPU with AVX2 + FMA.
bool group_norm_silu_fusable(const torch::Tensor& x, const torch::Tensor& gamma);

// out = silu(y), y = (x - mean_g) * rstd_g * gamma_c + beta_c (Wu & He 2018), silu(y) = y sigmoid(y);
// mean and rstd = 1 / sqrt(var + eps) per (sample, group) over the group's channels and positions:
// returns (out [B, C, ...], mean [B, G], rstd [B, G]) as at::native_group_norm + at::silu, in one pass
// over the output (no normalised tensor is kept: the backward recomputes y from x, mean and rstd).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> group_norm_silu_forward(const torch::Tensor& x,
                                                                                const torch::Tensor& gamma,
                                                                                const torch::Tensor& beta,
                                                                                int64_t groups, double eps);

// (dx, dgamma, dbeta) of out = silu(GroupNorm(x)) given dout, where `mask` asks for them:
// dy = dout sigmoid(y) (1 + y (1 - sigmoid(y))), then GroupNorm's backward,
// dx = gamma_c rstd dy + c2 x + c3, c2 = (db_g mean - ds_g) rstd^3 / (D HW), c3 = -c2 mean - db_g rstd / (D HW),
// ds_g = sum_{c in g} gamma_c sum dy x, db_g = sum_{c in g} gamma_c sum dy;
// dgamma_c = sum_n (sum dy x - mean sum dy) rstd, dbeta_c = sum_n sum dy.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> group_norm_silu_backward(
    const torch::Tensor& dout, const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& rstd,
    const torch::Tensor& gamma, const torch::Tensor& beta, int64_t groups, std::array<bool, 3> mask);

// Inverted dropout (Srivastava et al. 2014) with a counter-based mask: element i is kept iff
// hash(seed, i) / 2^24 < 1 - p (24-bit uniforms: P(keep) = round((1 - p) 2^24) / 2^24), out = keep ? a / (1 - p) : 0.
// The hash is two rounds of a 32-bit integer mixer ("lowbias32") over (i, seed): the mask costs a few integer
// operations per element instead of a Mersenne-Twister draw (ATen's CPU bernoulli_), and is kept as bits.
// Returns (out, keep bits [ceil(numel / 8)] uint8, bit j of byte k = element 8k + j).
bool dropout_fusable(const torch::Tensor& a);  // float32, CPU, contiguous, AVX2 + FMA
std::tuple<torch::Tensor, torch::Tensor> dropout_forward(const torch::Tensor& a, double p, uint64_t seed);
torch::Tensor dropout_backward(const torch::Tensor& grad, const torch::Tensor& keep, double p);
// 64 bits from LibTorch's default CPU generator (torch::manual_seed makes the masks reproducible).
uint64_t draw_dropout_seed();

}  // namespace gsdiff
