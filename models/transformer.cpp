// DiT-style bidirectional transformer denoiser (Peebles & Xie 2023; as used by SEDD / MDLM) for sequences.
#include "models/transformer.h"

#include <stdexcept>

#include "models/json_reader.h"

namespace gsdiff {
namespace F = torch::nn::functional;
namespace {
constexpr int64_t kTimeFreqDim = 256;  // sinusoidal features before the time MLP (DiT)

torch::nn::LayerNorm plain_layer_norm(int64_t dim) {  // no affine: adaLN supplies scale/shift
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).elementwise_affine(false).eps(1e-6));
}
// x [B,L,D] * (1 + scale[B,D]) + shift[B,D]
torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}
}  // namespace

TransformerOptions transformer_options_from_json(const nlohmann::json& j) {
  TransformerOptions o;
  ModelJsonReader r(j, "transformer options");
  r.ignore("type");
  r.read("vocab_size", o.vocab_size());
  r.read("input_dim", o.input_dim());
  r.read("out_dim", o.out_dim());
  r.read("dim", o.dim());
  r.read("depth", o.depth());
  r.read("num_heads", o.num_heads());
  r.read("mlp_ratio", o.mlp_ratio());
  r.read("cond_dim", o.cond_dim());
  r.read("dropout", o.dropout());
  r.read("positions", o.positions());
  r.read("max_len", o.max_len());
  r.read("time_scale", o.time_scale());
  r.read("num_classes", o.num_classes());
  r.read("time_conditioning", o.time_conditioning());
  r.read("self_condition", o.self_condition());
  r.finish();
  return o;
}

nlohmann::json transformer_options_to_json(const TransformerOptions& o) {
  nlohmann::json j = {{"type", "transformer"},
          {"vocab_size", o.vocab_size()},
          {"input_dim", o.input_dim()},
          {"out_dim", o.out_dim()},
          {"dim", o.dim()},
          {"depth", o.depth()},
          {"num_heads", o.num_heads()},
          {"mlp_ratio", o.mlp_ratio()},
          {"cond_dim", o.cond_dim()},
          {"dropout", o.dropout()},
          {"positions", o.positions()},
          {"max_len", o.max_len()},
          {"time_scale", o.time_scale()},
          {"num_classes", o.num_classes()}};
  if (!o.time_conditioning()) j["time_conditioning"] = false;  // only when set: older configs stay equal
  if (o.self_condition()) j["self_condition"] = true;
  return j;
}

DiTBlockImpl::DiTBlockImpl(int64_t dim, int64_t h, int64_t mlp_ratio, int64_t cond_dim, double p) : heads(h) {
  norm1 = register_module("norm1", plain_layer_norm(dim));
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)));
  attn_out = register_module("attn_out", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
  norm2 = register_module("norm2", plain_layer_norm(dim));
  fc1 = register_module("fc1", torch::nn::Linear(dim, mlp_ratio * dim));
  fc2 = register_module("fc2", torch::nn::Linear(mlp_ratio * dim, dim));
  ada = register_module("ada", torch::nn::Linear(cond_dim, 6 * dim));
  drop = register_module("drop", torch::nn::Dropout(p));
}

torch::Tensor DiTBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& cos,
                                    const torch::Tensor& sin) {
  auto mod = ada(F::silu(c)).chunk(6, 1);  // 6 x [B, D]
  // Attention: only model constants (3, heads) enter reshapes; B and L stay symbolic.
  auto h = modulate(norm1(x), mod[0], mod[1]);
  auto qkv_ = qkv(h).unflatten(-1, {3, heads, -1}).permute({2, 0, 3, 1, 4});  // [3, B, H, L, Dh]
  auto q = qkv_.select(0, 0), k = qkv_.select(0, 1), v = qkv_.select(0, 2);   // [B, H, L, Dh]
  if (cos.defined()) {
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  auto a = dot_product_attention(q, k, v).transpose(1, 2).flatten(2);  // [B, L, D]
  auto out = x + mod[2].unsqueeze(1) * drop(attn_out(a));
  h = modulate(norm2(out), mod[3], mod[4]);
  return out + mod[5].unsqueeze(1) * drop(fc2(F::gelu(fc1(h), F::GELUFuncOptions().approximate("tanh"))));
}

TransformerImpl::TransformerImpl(const TransformerOptions& options_) : options(options_) { reset(); }

nlohmann::json TransformerImpl::config() const { return transformer_options_to_json(options); }

void TransformerImpl::reset() {
  const auto& o = options;
  auto fail = [](const std::string& m) { throw ModelConfigError("transformer options: " + m); };
  if (o.dim() < 1 || o.depth() < 0 || o.num_heads() < 1 || o.dim() % o.num_heads() != 0)
    fail("num_heads (" + std::to_string(o.num_heads()) + ") must divide dim (" + std::to_string(o.dim()) + ")");
  if (o.positions() != "rotary" && o.positions() != "learned")
    fail("key 'positions' must be \"rotary\" or \"learned\", got \"" + o.positions() + "\"");
  if (o.positions() == "rotary" && (o.dim() / o.num_heads()) % 2 != 0) fail("rotary positions need an even head dim");
  if (o.input_dim() < 0 || o.out_dim() < 1 || o.num_classes() < 0 || o.cond_dim() < 1) fail("sizes must be positive");
  if (o.input_dim() == 0 && o.vocab_size() < 1) fail("vocab_size must be >= 1 for token input");
  if (o.dropout() < 0 || o.dropout() >= 1) fail("dropout must be in [0, 1)");

  if (o.input_dim() > 0)
    in_proj = register_module("in_proj", torch::nn::Linear(o.input_dim(), o.dim()));
  else
    tok_embed = register_module("tok_embed", torch::nn::Embedding(o.vocab_size(), o.dim()));
  if (o.positions() == "learned")
    pos_embed = register_module("pos_embed", torch::nn::Embedding(o.max_len(), o.dim()));
  else
    rotary = register_module("rotary", RotaryEmbedding(o.dim() / o.num_heads()));
  time_embed = register_module("time_embed", SinusoidalEmbedding(kTimeFreqDim, o.time_scale()));
  t1 = register_module("t1", torch::nn::Linear(kTimeFreqDim, o.cond_dim()));
  t2 = register_module("t2", torch::nn::Linear(o.cond_dim(), o.cond_dim()));
  if (o.num_classes() > 0)
    class_embed = register_module("class_embed", torch::nn::Embedding(o.num_classes() + 1, o.cond_dim()));
  for (int64_t i = 0; i < o.depth(); ++i)
    blocks.push_back(register_module("block_" + std::to_string(i),
                                     DiTBlock(o.dim(), o.num_heads(), o.mlp_ratio(), o.cond_dim(), o.dropout())));
  norm_final = register_module("norm_final", plain_layer_norm(o.dim()));
  final_ada = register_module("final_ada", torch::nn::Linear(o.cond_dim(), 2 * o.dim()));
  head = register_module("head", torch::nn::Linear(o.dim(), o.out_dim()));

  // DiT init: xavier-uniform Linear weights, zero biases, N(0, 0.02) embeddings; adaLN-zero
  // (every modulation Linear zero) and a zero output layer, so each block starts as identity.
  init_xavier_zero_bias(*this);
  torch::NoGradGuard g;
  for (auto* e : {&tok_embed, &pos_embed, &class_embed})
    if (*e) torch::nn::init::normal_((*e)->weight, 0.0, 0.02);
  for (auto& b : blocks) zero_init(*b->ada);
  zero_init(*final_ada);
  zero_init(*head);
  if (o.self_condition()) {  // after the draws above: the other weights are those of the model without it
    const int64_t e = o.input_dim() > 0 ? o.input_dim() : o.out_dim();
    sc_proj = register_module("sc_proj", torch::nn::Linear(torch::nn::LinearOptions(e, o.dim()).bias(false)));
    zero_init(*sc_proj);  // starts as the model without self-conditioning
  }
}

torch::Tensor TransformerImpl::forward(torch::Tensor x, torch::Tensor t, torch::Tensor y) {
  return forward_self_cond(x, t, y, {});
}

torch::Tensor TransformerImpl::forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor y, torch::Tensor est) {
  const auto& o = options;
  const bool tokens = o.input_dim() == 0;
  // Token input may also come relaxed: probabilities over the vocabulary [B, L, vocab_size], embedded as probs @ E
  // (forward(one_hot(x)) = forward(x)); D-CBG's Taylor approximation differentiates through it.
  const bool relaxed = tokens && x.dim() == 3 && x.is_floating_point() && x.size(2) == o.vocab_size();
  if (tokens && !relaxed && (x.dim() != 2 || x.scalar_type() != torch::kLong))
    throw std::invalid_argument("Transformer: token input must be int64 [B, L] or float [B, L, " +
                                std::to_string(o.vocab_size()) + "] probabilities, got " + std::string(c10::str(x.sizes())));
  if (!tokens && (x.dim() != 3 || x.size(2) != o.input_dim() || !x.is_floating_point()))
    throw std::invalid_argument("Transformer: continuous input must be float [B, L, " + std::to_string(o.input_dim()) +
                                "], got " + std::string(c10::str(x.sizes())));
  if (o.positions() == "learned" && x.size(1) > o.max_len())
    throw std::invalid_argument("Transformer: sequence length " + std::to_string(x.size(1)) + " exceeds max_len " +
                                std::to_string(o.max_len()));

  auto h = relaxed ? torch::matmul(x.to(tok_embed->weight.scalar_type()), tok_embed->weight)  // [B, L, D]
            : tokens ? tok_embed(x) : in_proj(x);                                            // [B, L, D]
  if (est.defined()) {  // zeros (undefined) add nothing: skipped
    if (!sc_proj) throw std::invalid_argument("Transformer: a self-conditioning estimate needs self_condition = true");
    const int64_t e = tokens ? o.out_dim() : o.input_dim();
    if (est.dim() != 3 || est.size(0) != x.size(0) || est.size(1) != x.size(1) || est.size(2) != e)
      throw std::invalid_argument("Transformer: self-conditioning estimate must be [B, L, " + std::to_string(e) +
                                  "], got " + std::string(c10::str(est.sizes())));
    h = h + sc_proj(est.to(h.scalar_type()));  // + [B, L, D]
  }
  auto pos = positions_like(tokens && !relaxed ? x.select(0, 0) : x.select(0, 0).select(-1, 0));  // [L] = 0..L-1
  torch::Tensor cos, sin;
  if (pos_embed)
    h = h + pos_embed(pos.to(torch::kLong)).unsqueeze(0);  // + [1, L, D]
  else
    std::tie(cos, sin) = rotary(pos);  // [L, Dh/2] each

  auto c = t2(F::silu(t1(time_embed(o.time_conditioning() ? t : torch::zeros_like(t)))));  // [B, cond]
  if (o.num_classes() > 0) {
    if (!y.defined()) y = torch::full_like(t, o.num_classes(), torch::kLong);  // null class
    c = c + class_embed(y);
  }
  for (auto& b : blocks) h = b(h, c, cos, sin);          // [B, L, D]
  auto mod = final_ada(F::silu(c)).chunk(2, 1);          // 2 x [B, D]
  return head(modulate(norm_final(h), mod[0], mod[1]));  // [B, L, out_dim]
}

}  // namespace gsdiff
