// Shared building blocks: sinusoidal time embedding, rotary positions, attention kernel.
#include "models/layers.h"

#include <torch/version.h>

#include <cmath>
#include <stdexcept>

namespace gsdiff {

SinusoidalEmbeddingImpl::SinusoidalEmbeddingImpl(int64_t d, double scale, double max_period) : dim(d) {
  if (d < 4 || d % 2 != 0)
    throw std::invalid_argument("SinusoidalEmbedding: dim must be even and >= 4, got " + std::to_string(d));
  const int64_t half = d / 2;
  // w_i = exp(-log(max_period) * i / (half - 1)), pre-multiplied by the time scale.
  auto w = torch::exp(torch::arange(half, torch::kFloat) * (-std::log(max_period) / double(half - 1)));
  freqs = register_buffer("freqs", w * scale);
}

torch::Tensor SinusoidalEmbeddingImpl::forward(const torch::Tensor& t) {
  // [B, 1] * [half] broadcasts to [B, half]; no cast when t is float already.
  auto args = (t.scalar_type() == torch::kFloat ? t : t.to(torch::kFloat)).unsqueeze(1) * freqs;
  return torch::cat({torch::sin(args), torch::cos(args)}, 1);         // [B, dim]
}

RotaryEmbeddingImpl::RotaryEmbeddingImpl(int64_t head_dim, double base) {
  if (head_dim % 2 != 0)
    throw std::invalid_argument("RotaryEmbedding: head_dim must be even, got " + std::to_string(head_dim));
  auto i = torch::arange(0, head_dim, 2, torch::kFloat);
  inv_freq = register_buffer("inv_freq", torch::pow(base, -i / double(head_dim)));
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbeddingImpl::forward(const torch::Tensor& positions) {
  auto ang = positions.to(torch::kFloat).unsqueeze(1) * inv_freq.unsqueeze(0);  // [L, Dh/2]
  return {torch::cos(ang), torch::sin(ang)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;                             // a model constant (head dim), not a data size
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);  // [B, H, L, Dh/2]
  auto out = torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  return out.to(x.scalar_type());  // keep bf16 under autocast
}

torch::Tensor positions_like(const torch::Tensor& row) {
  return torch::ones_like(row, torch::kFloat).cumsum(0) - 1.0;  // [L] = 0..L-1
}

torch::Tensor dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);
#else
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));         // head dim: a model constant
  auto w = torch::matmul(q * scale, k.transpose(-2, -1));           // [B, H, L, L]
  w = torch::softmax(w.to(torch::kFloat), -1).to(v.scalar_type());  // softmax in fp32
  return torch::matmul(w, v);                                       // [B, H, L, Dh]
#endif
}

void init_xavier_zero_bias(torch::nn::Module& module) {
  torch::NoGradGuard g;
  auto init = [](torch::nn::Module& m) {
    if (auto* l = m.as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(l->weight);
      if (l->bias.defined()) l->bias.zero_();
    } else if (auto* c = m.as<torch::nn::Conv2d>()) {
      torch::nn::init::xavier_uniform_(c->weight);
      if (c->bias.defined()) c->bias.zero_();
    }
  };
  init(module);  // include_self=true would need shared_from_this, unavailable in constructors
  for (auto& m : module.modules(/*include_self=*/false)) init(*m);
}

void zero_init(torch::nn::Module& module) {
  torch::NoGradGuard g;
  for (auto& p : module.parameters()) p.zero_();
}

}  // namespace gsdiff
