// DiT-style bidirectional transformer denoiser (Peebles & Xie 2023; as used by SEDD / MDLM) for sequences.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/denoiser.h"
#include "models/layers.h"

namespace gsdiff {

// JSON keys are the option names below. Defaults: the 12 x 768 "base" model for text8.
struct TransformerOptions {
  // Input adapter: input_dim == 0: tokens int64 [B,L] in 0..vocab_size-1 (K + mask);
  // input_dim = d > 0: continuous vectors float [B,L,d] (Gaussian diffusion on embeddings).
  TORCH_ARG(int64_t, vocab_size) = 28;
  TORCH_ARG(int64_t, input_dim) = 0;
  // Output head: [B,L,out_dim]: K logits (categorical), or d for a vector prediction.
  TORCH_ARG(int64_t, out_dim) = 27;
  TORCH_ARG(int64_t, dim) = 768;   // hidden width D
  TORCH_ARG(int64_t, depth) = 12;  // number of blocks
  TORCH_ARG(int64_t, num_heads) = 12;
  TORCH_ARG(int64_t, mlp_ratio) = 4;   // MLP hidden = mlp_ratio * D
  TORCH_ARG(int64_t, cond_dim) = 128;  // width of the time (+class) conditioning vector
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(std::string, positions) = "rotary";  // "rotary" | "learned"
  TORCH_ARG(int64_t, max_len) = 256;             // learned positions only: longest sequence
  TORCH_ARG(double, time_scale) = 1000.0;
  TORCH_ARG(int64_t, num_classes) = 0;  // > 0: class-conditional; null class = num_classes
  // false: the network ignores t (its conditioning sees t = 0 always). For absorbing processes p(x0 | x_t)
  // does not depend on t (Sahoo et al. 2024, MDLM), and only such a model makes mdlm-cached exact.
  TORCH_ARG(bool, time_conditioning) = true;
  // Self-conditioning (Chen et al. 2022): the previous x0 estimate [B, L, e] (e = input_dim for vector input,
  // out_dim probabilities for tokens) enters through sc_proj, a bias-free Linear(e, dim) added to the input
  // embedding (for vector input the same as concatenating it to x before in_proj). Zero-initialised.
  TORCH_ARG(bool, self_condition) = false;
};

TransformerOptions transformer_options_from_json(const nlohmann::json& j);
nlohmann::json transformer_options_to_json(const TransformerOptions& o);

// Pre-norm block with adaLN-zero modulation from the conditioning vector c:
// x += g1 * Attn(LN(x)(1+s1)+b1); x += g2 * MLP(LN(x)(1+s2)+b2), (b,s,g) = Linear(SiLU(c)) zero-init.
struct DiTBlockImpl : torch::nn::Module {
  DiTBlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio, int64_t cond_dim, double dropout);
  // x [B,L,D], c [B,cond]; cos/sin [L,Dh/2] (undefined: no rotary) -> [B,L,D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& cos,
                        const torch::Tensor& sin);
  int64_t heads;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, attn_out{nullptr}, fc1{nullptr}, fc2{nullptr}, ada{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(DiTBlock);

struct TransformerImpl : DenoiserNetImpl {
  explicit TransformerImpl(const TransformerOptions& options_ = TransformerOptions());
  // x: int64 [B,L] (or its relaxation, float [B,L,vocab_size] probabilities) or float [B,L,input_dim]; t [B];
  // y optional [B] -> [B,L,out_dim]
  torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) override;
  int64_t num_classes() const override { return options.num_classes(); }
  bool uses_time() const override { return options.time_conditioning(); }
  bool self_conditioned() const override { return options.self_condition(); }
  // estimate [B, L, e] or undefined (zeros) -> [B, L, out_dim]
  torch::Tensor forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor y, torch::Tensor estimate) override;
  nlohmann::json config() const override;
  void reset();

  TransformerOptions options;
  torch::nn::Embedding tok_embed{nullptr}, pos_embed{nullptr}, class_embed{nullptr};
  torch::nn::Linear in_proj{nullptr}, sc_proj{nullptr}, t1{nullptr}, t2{nullptr}, final_ada{nullptr}, head{nullptr};
  SinusoidalEmbedding time_embed{nullptr};
  RotaryEmbedding rotary{nullptr};
  std::vector<DiTBlock> blocks;
  torch::nn::LayerNorm norm_final{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace gsdiff
