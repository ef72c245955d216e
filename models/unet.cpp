// U-Net denoiser (DDPM architecture, Ho et al. 2020) for continuous or categorical images.
#include "models/unet.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "models/json_reader.h"
#include "models/onednn_conv.h"

namespace gsdiff {
namespace F = torch::nn::functional;

UNetOptions unet_options_from_json(const nlohmann::json& j) {
  UNetOptions o;
  ModelJsonReader r(j, "unet options");
  r.ignore("type");
  r.read("in_channels", o.in_channels());
  r.read("input_states", o.input_states());
  r.read("input_emb_dim", o.input_emb_dim());
  r.read("ch", o.ch());
  r.read("ch_mult", o.ch_mult());
  r.read("num_res_blocks", o.num_res_blocks());
  r.read("attn_resolutions", o.attn_resolutions());
  r.read("image_size", o.image_size());
  r.read("num_heads", o.num_heads());
  r.read("dropout", o.dropout());
  r.read("num_groups", o.num_groups());
  r.read("resamp_with_conv", o.resamp_with_conv());
  r.read("time_scale", o.time_scale());
  r.read("num_classes", o.num_classes());
  r.read("out_channels", o.out_channels());
  r.read("output_states", o.output_states());
  r.read("learned_variance", o.learned_variance());
  r.read("self_condition", o.self_condition());
  r.finish();
  return o;
}

nlohmann::json unet_options_to_json(const UNetOptions& o) {
  nlohmann::json j = {{"type", "unet"},
          {"in_channels", o.in_channels()},
          {"input_states", o.input_states()},
          {"input_emb_dim", o.input_emb_dim()},
          {"ch", o.ch()},
          {"ch_mult", o.ch_mult()},
          {"num_res_blocks", o.num_res_blocks()},
          {"attn_resolutions", o.attn_resolutions()},
          {"image_size", o.image_size()},
          {"num_heads", o.num_heads()},
          {"dropout", o.dropout()},
          {"num_groups", o.num_groups()},
          {"resamp_with_conv", o.resamp_with_conv()},
          {"time_scale", o.time_scale()},
          {"num_classes", o.num_classes()},
          {"out_channels", o.out_channels()},
          {"output_states", o.output_states()},
          {"learned_variance", o.learned_variance()}};
  if (o.self_condition()) j["self_condition"] = true;  // only when set: older configs stay equal
  return j;
}

UNetImpl::UNetImpl(const UNetOptions& options_) : options(options_) { reset(); }

nlohmann::json UNetImpl::config() const { return unet_options_to_json(options); }

void UNetImpl::reset() {
  const auto& o = options;
  auto fail = [](const std::string& m) { throw ModelConfigError("unet options: " + m); };
  if (o.in_channels() < 1) fail("in_channels must be >= 1");
  if (o.ch() < 1 || o.ch_mult().empty()) fail("ch must be >= 1 and ch_mult non-empty");
  if (o.num_res_blocks() < 1) fail("num_res_blocks must be >= 1");
  if (o.input_states() < 0 || o.output_states() < 0 || o.num_classes() < 0) fail("state/class counts must be >= 0");
  if (o.output_states() > 0 && o.learned_variance())
    fail("learned_variance needs a continuous head (output_states = 0)");
  if (o.dropout() < 0 || o.dropout() >= 1) fail("dropout must be in [0, 1)");
  if (o.self_condition() && o.input_states() > 0 && o.output_states() == 0)
    fail("self_condition with categorical input needs output_states > 0 (the estimate is p(x0 | x_t) over them)");
  const int64_t C = o.in_channels(), ch = o.ch(), temb_ch = 4 * ch, levels = o.ch_mult().size();
  const int64_t c_out = o.out_channels() > 0 ? o.out_channels() : C;

  time_embed = register_module("time_embed", SinusoidalEmbedding(ch, o.time_scale()));
  temb1 = register_module("temb1", torch::nn::Linear(ch, temb_ch));
  temb2 = register_module("temb2", torch::nn::Linear(temb_ch, temb_ch));
  if (o.num_classes() > 0)
    class_embed = register_module("class_embed", torch::nn::Embedding(o.num_classes() + 1, temb_ch));

  int64_t c_in = C;
  if (o.input_states() > 0) {
    input_embed = register_module("input_embed", torch::nn::Embedding(C * o.input_states(), o.input_emb_dim()));
    channel_offset =
        register_buffer("channel_offset", (torch::arange(C, torch::kLong) * o.input_states()).view({1, C, 1, 1}));
    c_in = C * o.input_emb_dim();
  }
  conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c_in, ch, 3).padding(1)));

  auto has_attn = [&](int64_t level) {
    const int64_t res = o.image_size() >> level;
    const auto& a = o.attn_resolutions();
    return std::find(a.begin(), a.end(), res) != a.end();
  };
  std::vector<int64_t> skip_ch{ch};
  int64_t cur = ch;
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t out = ch * o.ch_mult()[l];
    for (int64_t b = 0; b < o.num_res_blocks(); ++b) {
      const std::string n = "down_" + std::to_string(l) + "_" + std::to_string(b);
      down_res.push_back(register_module(n + "_res", ResBlock(cur, out, temb_ch, o.dropout(), o.num_groups())));
      down_attn.push_back(has_attn(l) ? register_module(n + "_attn", AttnBlock(out, o.num_heads(), o.num_groups()))
                                      : nullptr);
      cur = out;
      skip_ch.push_back(cur);
    }
    if (l + 1 < levels) {
      downsample.push_back(
          register_module("down_" + std::to_string(l) + "_sample", Downsample(cur, o.resamp_with_conv())));
      skip_ch.push_back(cur);
    }
  }
  mid1 = register_module("mid_res1", ResBlock(cur, cur, temb_ch, o.dropout(), o.num_groups()));
  mid_attn = register_module("mid_attn", AttnBlock(cur, o.num_heads(), o.num_groups()));
  mid2 = register_module("mid_res2", ResBlock(cur, cur, temb_ch, o.dropout(), o.num_groups()));
  upsample.assign(levels, nullptr);
  for (int64_t l = levels - 1; l >= 0; --l) {
    const int64_t out = ch * o.ch_mult()[l];
    for (int64_t b = 0; b <= o.num_res_blocks(); ++b) {
      const std::string n = "up_" + std::to_string(l) + "_" + std::to_string(b);
      const int64_t in = cur + skip_ch.back();
      skip_ch.pop_back();
      up_res.push_back(register_module(n + "_res", ResBlock(in, out, temb_ch, o.dropout(), o.num_groups())));
      up_attn.push_back(has_attn(l) ? register_module(n + "_attn", AttnBlock(out, o.num_heads(), o.num_groups()))
                                    : nullptr);
      cur = out;
    }
    if (l > 0)
      upsample[l] = register_module("up_" + std::to_string(l) + "_sample", Upsample(cur, o.resamp_with_conv()));
  }
  norm_out =
      register_module("norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(o.num_groups(), cur).eps(1e-6)));
  const int64_t head = o.output_states() > 0 ? c_out * o.output_states() : c_out * (o.learned_variance() ? 2 : 1);
  conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(cur, head, 3).padding(1)));

  // DDPM init: xavier-uniform (fan-avg) weights, zero biases; zero the last conv of each
  // residual branch, each attention projection and the output conv, so the net starts at 0.
  init_xavier_zero_bias(*this);
  for (auto& b : down_res) zero_init(*b->conv2);
  for (auto& b : up_res) zero_init(*b->conv2);
  zero_init(*mid1->conv2);
  zero_init(*mid2->conv2);
  for (auto& a : down_attn)
    if (a) zero_init(*a->proj);
  for (auto& a : up_attn)
    if (a) zero_init(*a->proj);
  zero_init(*mid_attn->proj);
  zero_init(*conv_out);
  // Self-conditioning's input, after every draw above (the other weights are those of the model without it),
  // zero: the model starts as the one without self-conditioning.
  if (o.self_condition() && o.input_states() > 0)
    sc_embed = register_module("sc_embed", torch::nn::Linear(torch::nn::LinearOptions(o.output_states(), o.input_emb_dim()).bias(false)));
  else if (o.self_condition())
    sc_conv = register_module("sc_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(C, ch, 3).padding(1).bias(false)));
  if (sc_embed) zero_init(*sc_embed);
  if (sc_conv) zero_init(*sc_conv);
}

torch::Tensor UNetImpl::forward(torch::Tensor x, torch::Tensor t, torch::Tensor y) {
  return forward_self_cond(x, t, y, {});
}

torch::Tensor UNetImpl::forward_self_cond(torch::Tensor x, torch::Tensor t, torch::Tensor y, torch::Tensor est) {
  const auto& o = options;
  const int64_t levels = o.ch_mult().size(), C = o.in_channels();
  // Shape checks only throw; they never change the computation (safe under tracing).
  const bool cat_in = o.input_states() > 0;
  // Categorical input may also come relaxed: probabilities over the states [B, C, H, W, input_states], embedded as
  // probs @ E per channel (forward(one_hot(x)) = forward(x)); D-CBG's Taylor approximation differentiates through it.
  const bool relaxed = cat_in && x.dim() == 5 && x.is_floating_point() && x.size(4) == o.input_states();
  if (x.dim() != (relaxed ? 5 : 4) || x.size(1) != C)
    throw std::invalid_argument("UNet: expected x of shape [B, " + std::to_string(C) + ", H, W], got " +
                                std::string(c10::str(x.sizes())));
  const int64_t div = int64_t(1) << (levels - 1);
  if (x.size(2) % div != 0 || x.size(3) % div != 0)
    throw std::invalid_argument("UNet: image size " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                                " is not divisible by 2^(levels-1) = " + std::to_string(div) +
                                " (levels = " + std::to_string(levels) + "); use other ch_mult or pad the images");
  if (cat_in && !relaxed && x.scalar_type() != torch::kLong)
    throw std::invalid_argument("UNet: categorical input (input_states > 0) must be int64 class indices [B, C, H, W] or "
                                "float probabilities [B, C, H, W, " + std::to_string(o.input_states()) + "]");
  if (!cat_in && !x.is_floating_point())
    throw std::invalid_argument("UNet: continuous input (input_states = 0) must be floating point");
  if (est.defined()) {  // zeros (undefined) add nothing: skipped
    if (!o.self_condition()) throw std::invalid_argument("UNet: a self-conditioning estimate needs self_condition = true");
    auto want = x.sizes().slice(0, 4).vec();
    if (cat_in) want.push_back(o.output_states());
    if (est.sizes().vec() != want)
      throw std::invalid_argument("UNet: self-conditioning estimate must be " + std::string(c10::str(at::IntArrayRef(want))) +
                                  ", got " + std::string(c10::str(est.sizes())));
  }

  auto temb = temb2(F::silu(temb1(time_embed(t))));  // [B, 4ch]
  if (o.num_classes() > 0) {
    if (!y.defined()) y = torch::full_like(t, o.num_classes(), torch::kLong);  // null class
    temb = temb + class_embed(y);                                              // + [B, 4ch]
  }

  // Every ResBlock adds its own Dense(silu(temb)). All of them at once: silu once, and one GEMM against
  // the blocks' temb_proj weights stacked (the same dot products), split per block in execution order;
  // a few ops and backward nodes instead of ~5 per block.
  std::vector<torch::Tensor> proj;
  {
    std::vector<ResBlockImpl*> blocks;
    for (auto& b : down_res) blocks.push_back(b.get());
    blocks.push_back(mid1.get());
    blocks.push_back(mid2.get());
    for (auto& b : up_res) blocks.push_back(b.get());
    std::vector<torch::Tensor> ws, bs;
    std::vector<int64_t> sizes;
    for (auto* b : blocks) {
      ws.push_back(b->temb_proj->weight);  // [Co, 4ch]
      bs.push_back(b->temb_proj->bias);
      sizes.push_back(b->temb_proj->weight.size(0));
    }
    auto all = torch::addmm(torch::cat(bs), F::silu(temb), torch::cat(ws).t());  // [B, sum of Co]
    proj = all.split_with_sizes(sizes, 1);                                      // [B, Co] each
  }
  size_t next_proj = 0;

  torch::Tensor h;
  if (cat_in) {
    auto e = relaxed ? torch::einsum("bchwk,cke->bchwe", {x.to(input_embed->weight.scalar_type()),
                                                          input_embed->weight.view({C, o.input_states(), -1})})
                     : input_embed(x + channel_offset);  // [B, C, H, W, E]
    if (est.defined()) e = e + sc_embed(est.to(e.scalar_type()));  // + [B, C, H, W, E]
    h = e.permute({0, 1, 4, 2, 3}).flatten(1, 2);  // [B, C*E, H, W]
    h = gsdiff::conv2d(conv_in, h, 1);
  } else {
    h = gsdiff::conv2d(conv_in, x, 1);  // [B, ch, H, W]
    if (est.defined()) h = h + gsdiff::conv2d(sc_conv, est.to(h.scalar_type()), 1);
  }
  std::vector<torch::Tensor> hs{h};
  size_t i = 0;
  for (int64_t l = 0; l < levels; ++l) {
    for (int64_t b = 0; b < o.num_res_blocks(); ++b, ++i) {
      h = down_res[i]->forward_temb_proj(h, proj[next_proj++]);
      if (down_attn[i]) h = down_attn[i](h);
      hs.push_back(h);
    }
    if (l + 1 < levels) {
      h = downsample[l](h);  // [B, c, H/2, W/2]
      hs.push_back(h);
    }
  }
  h = mid1->forward_temb_proj(h, proj[next_proj++]);
  h = mid2->forward_temb_proj(mid_attn(h), proj[next_proj++]);
  i = 0;
  for (int64_t l = levels - 1; l >= 0; --l) {
    for (int64_t b = 0; b <= o.num_res_blocks(); ++b, ++i) {
      // [B, c + c_skip, H, W] -> [B, c, H, W]
      h = up_res[i]->forward_temb_proj(torch::cat({h, hs.back()}, 1), proj[next_proj++]);
      hs.pop_back();
      if (up_attn[i]) h = up_attn[i](h);
    }
    if (l > 0) h = upsample[l](h);  // [B, c, 2H, 2W]
  }
  h = gsdiff::conv2d(conv_out, F::silu(group_norm_in_param_dtype(norm_out, h)), 1);  // [B, head, H, W]
  if (o.output_states() > 0) {
    // [B, C*K, H, W] -> [B, C, K, H, W] -> [B, C, H, W, K] (categories last)
    h = h.unflatten(1, {-1, o.output_states()}).permute({0, 1, 3, 4, 2});
  }
  return h;
}

}  // namespace gsdiff
